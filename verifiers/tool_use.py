"""Tool-use verifiers.

``StateVerifier`` (kind ``stateful``, τ-bench style): replay every tool call of
the trajectory's assistant turns on a fresh environment built from the task,
apply the task's expected actions to another fresh copy, and compare the two
state hashes. The rollout's own environment is never trusted (it lived in
another process and may be gone); deterministic tools make the replay exact.
Then every ``communicate_info`` string must appear in what the agent told the
user. Payload: ``{"env", "env_spec"?, "expected_actions": [{"name",
"arguments"}], "communicate_info"?: [str]}``.

``CallMatchVerifier`` (kind ``calls``): DESIGN.md's ``trajforge verify`` format
``{"tools", "expected_calls": [{"name", "arguments": {arg: [acceptable]}}]}``.
All tool calls of the assistant turns, as a multiset, must match the expected
calls one to one in any order (parallel calls included): same name, every
argument's value in its list, an argument may be left out only when its list
holds null, no extra calls, no extra arguments, no unknown tools.
"""

from __future__ import annotations

import json
import re
from typing import Any

from environments.base import make_env, replay
from sandboxes.base import Sandbox
from schemas import Message, Task, Verdict

_MISSING = object()


class StateVerifier:
    domain = "tool-use"
    needs_sandbox = False

    def verify(self, task: Task, messages: list[Message], sandbox: Sandbox | None = None) -> Verdict:
        payload = task.payload
        try:
            expected = make_env(payload)
            expected.apply(list(payload.get("expected_actions") or []))
            actual = make_env(payload)
        except Exception as exc:  # a broken task, not a model failure: say so
            return Verdict(passed=False, reason=f"bad task: {type(exc).__name__}: {exc}")
        calls = replay(actual, messages)
        if actual.state_hash() != expected.state_hash():
            return Verdict(passed=False, reason=f"final state differs from the expected one ({calls} calls replayed)")
        told = _normalise(" ".join(m.content for m in messages if m.role == "assistant"))
        missing = [info for info in payload.get("communicate_info") or [] if _normalise(str(info)) not in told]
        if missing:
            return Verdict(passed=False, score=0.5, reason=f"state matches, but the user was not told: {missing}")
        return Verdict(passed=True, score=1.0, reason=f"final state matches ({calls} calls replayed)")


def _normalise(text: str) -> str:
    # τ-bench style: case and thousands separators do not matter ("1,000" tells "1000").
    return re.sub(r"(?<=\d),(?=\d)", "", text).lower()


class CallMatchVerifier:
    domain = "tool-use"
    needs_sandbox = False

    def verify(self, task: Task, messages: list[Message], sandbox: Sandbox | None = None) -> Verdict:
        expected = task.payload.get("expected_calls")
        if not isinstance(expected, list):
            return Verdict(passed=False, reason="bad task: expected_calls must be a list")
        known = {t.get("function", t).get("name") for t in task.payload.get("tools") or [] if isinstance(t, dict)}
        calls: list[tuple[str, dict[str, Any]]] = []
        for message in messages:
            if message.role != "assistant":
                continue
            for call in message.tool_calls:
                try:
                    arguments = call.parsed_arguments()
                except ValueError:
                    return Verdict(passed=False, reason=f"arguments of {call.function.name!r} are not a JSON object")
                if known and call.function.name not in known:
                    return Verdict(passed=False, reason=f"call to unknown tool {call.function.name!r}")
                calls.append((call.function.name, arguments))
        if len(calls) != len(expected):
            return Verdict(passed=False, reason=f"{len(calls)} call(s) made, {len(expected)} expected")
        if not _perfect_match(calls, expected):
            return Verdict(passed=False, reason=f"calls do not match the expected ones: {json.dumps(calls)[:300]}")
        return Verdict(passed=True, score=1.0, reason=f"all {len(calls)} call(s) match")


def call_matches(name: str, arguments: dict[str, Any], spec: dict[str, Any]) -> bool:
    if name != spec.get("name"):
        return False
    accepted: dict[str, list[Any]] = spec.get("arguments") or {}
    if set(arguments) - set(accepted):
        return False  # an argument nobody asked for
    for arg, values in accepted.items():
        values = values if isinstance(values, list) else [values]
        value = arguments.get(arg, _MISSING)
        if value is _MISSING:
            if None not in values:
                return False
        elif not any(_same(value, v) for v in values):
            return False
    return True


def _same(value: Any, accepted: Any) -> bool:
    if isinstance(value, bool) or isinstance(accepted, bool):
        return type(value) is type(accepted) and value == accepted  # True is not 1
    if isinstance(value, (int, float)) and isinstance(accepted, (int, float)):
        return abs(value - accepted) < 1e-9
    if isinstance(value, str) and isinstance(accepted, str):
        return value.strip().casefold() == accepted.strip().casefold()
    if isinstance(value, list) and isinstance(accepted, list):
        return len(value) == len(accepted) and all(_same(a, b) for a, b in zip(value, accepted))
    if isinstance(value, dict) and isinstance(accepted, dict):
        return value.keys() == accepted.keys() and all(_same(value[k], accepted[k]) for k in value)
    return value == accepted


def _perfect_match(calls: list[tuple[str, dict[str, Any]]], expected: list[dict[str, Any]]) -> bool:
    """A one-to-one assignment of calls to expected specs (augmenting paths: a call that
    fits two specs must not starve another call that fits only one)."""
    fits = [[j for j, spec in enumerate(expected) if call_matches(n, a, spec)] for n, a in calls]
    owner: dict[int, int] = {}

    def assign(i: int, seen: set[int]) -> bool:
        for j in fits[i]:
            if j not in seen:
                seen.add(j)
                if j not in owner or assign(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return all(assign(i, set()) for i in range(len(calls)))
