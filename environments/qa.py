"""Environment QA of a stateful task, before any rollout: can the verifier judge it?

``StateVerifier`` passes a trajectory when its replayed calls reach the state the
task's expected actions reach (and the agent told the user every
``communicate_info``). That judgement means something only if the expected
actions themselves replay: on fresh environments, twice, to the same state, with
every expected *write* succeeding (a read may fail on purpose, as when τ²'s gold
looks up an id the user got wrong), and with the writes changing the state. A task
whose expected state is the initial one and that asks nothing to be told passes
with no action at all: it is sound (τ² has refusal tasks of that shape) but
marked, so a run can count how many of its passes an idle agent would get.

Cheap (copy-on-write environments, no model): run at seed time for every task.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from environments.base import make_env


@dataclass(frozen=True)
class TaskQA:
    unsound: str | None  # why the verifier cannot judge the task; None when it can
    noop_passes: bool = False  # doing nothing already reaches the expected state, nothing must be told
    writes: int = 0  # expected write calls (all succeeded when sound)

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)


def check_stateful(payload: dict[str, Any]) -> TaskQA:
    """Replay ``payload["expected_actions"]`` on fresh environments built from the payload."""
    try:
        start = make_env(payload)
        one, two = make_env(payload), make_env(payload)
    except Exception as exc:  # the environment cannot even be built: nothing can be judged
        return TaskQA(f"environment does not build: {type(exc).__name__}: {exc}"[:200])
    actions = list(payload.get("expected_actions") or [])
    writes = one.write_tool_names()
    written = 0
    for index, action in enumerate(actions):
        try:
            one.call(action["name"], action.get("arguments") or {})
        except Exception as exc:  # noqa: BLE001 - the environment's refusal is the finding
            if action["name"] in writes:
                return TaskQA(f"expected write {index} ({action['name']}) fails: {exc}"[:200])
            continue
        written += action["name"] in writes
    two.apply(actions)
    if one.state_hash() != two.state_hash():
        return TaskQA("expected actions are not deterministic (two replays, two states)", writes=written)
    unchanged = one.state_hash() == start.state_hash()
    if written and unchanged:
        return TaskQA("expected writes leave the state as it was", writes=written)
    return TaskQA(None, noop_passes=unchanged and not payload.get("communicate_info"), writes=written)
