"""A guided repo rollout end to end in the real sandbox: a one-token bug in cachetools (its size
check flipped from ``>`` to ``>=``), the localized turns fed by the real tools' output, a wrong
repair checked and undone, the right one, and the real verifier's pass."""

from __future__ import annotations

import pytest

from schemas import Message
from synthesizers.agent_loop import Budget
from synthesizers.domains.code.domain import reproduce_command
from synthesizers.domains.code.instances import instance_to_task, validate_project
from synthesizers.domains.code.localize import calls_and_results, frame_windows
from synthesizers.domains.code.mutate import Mutation
from synthesizers.engines.base import SamplingParams
from synthesizers.guided_calls import TRIGGER
from tests.fakes import FakeEngine
from tests.synthesizers.domains.code.helpers import LRU_FILE, pristine_lru
from tests.synthesizers.domains.code.test_controllers import RecordingCodeDomain, allowed_tools, call, turn_admits
from verifiers.code_repo import RepoCodeVerifier

pytestmark = pytest.mark.docker

GOOD, BUG = "        if size > maxsize:", "        if size >= maxsize:"
NEAR = "            while self.__currsize + size > maxsize:"  # a line of the same window, not the bug


@pytest.fixture(scope="module")
def slip(code_project, tmp_path_factory):
    """The flipped size check through the real validation loop: items as large as the cache now
    raise ValueError inside the library, so the traceback has a library frame."""
    good = pristine_lru(code_project)
    assert good.count(GOOD + "\n") == 1 and good.count(NEAR + "\n") == 1
    line = good.splitlines().index(GOOD) + 1
    mutation = Mutation(LRU_FILE, line, "compare", "Cache.__setitem__", GOOD.strip(), BUG.strip(),
                        good.replace(GOOD + "\n", BUG + "\n"))
    rows = validate_project(code_project, quota=1, seed=0, out=tmp_path_factory.mktemp("slip"), max_attempts=1,
                            candidates=[mutation])
    assert len(rows) == 1, "the flipped size check must fail some tests and keep others"
    return rows[0], line


def _script(task, line):
    project, f2p = task.payload["project"], task.payload["FAIL_TO_PASS"]
    reproduce, check = reproduce_command(project, f2p), reproduce_command(project, f2p, traceback="line")
    wrong = NEAR.replace("> maxsize", ">= maxsize")

    def reply(messages: list[Message]) -> str:
        done = calls_and_results(messages)
        if not done:
            return call("bash", command=reproduce)
        if len(done) == 1:  # the frame window that holds the buggy line
            window = next(w for w in frame_windows(done[0].text) if w.path == LRU_FILE and w.start_line <= line <= w.end_line)
            return call("view", **window.arguments())
        steps = [call("edit", path=LRU_FILE, old_str=NEAR, new_str=wrong), call("bash", command=check),
                 call("edit", path=LRU_FILE, old_str=wrong, new_str=NEAR), call("edit", path=LRU_FILE, old_str=BUG, new_str=GOOD),
                 call("bash", command=check), call("submit")]
        return steps[len(done) - 2] if len(done) - 2 < len(steps) else "Fixed the size check."

    return reply


async def test_guided_rollout_repairs_a_one_token_bug_checks_undoes_and_passes(slip, code_pool):
    from pipelines.rollout import RolloutSettings, TaskRunner

    row, line = slip
    task = instance_to_task(row)
    engine = FakeEngine(_script(task, line))
    settings = RolloutSettings(sampling=SamplingParams(max_tokens=256), seed=3, branches=0,
                               budget=Budget(max_turns=16, max_total_tokens=100_000, max_tool_output_chars=12_000))
    domain = RecordingCodeDomain({"guided": True})
    runner = TaskRunner(engine, domain, lambda kind: RepoCodeVerifier(), settings, pools=lambda image: code_pool, concurrency=1)
    (traj,) = await runner.run_task(task)
    assert traj.verdict.passed, traj.verdict.reason
    sent = [SamplingParams(**fields) for fields in domain.sent]  # every turn's, forced ones included
    # one library frame, viewed at once: after that every choice is an edit of its window
    assert [allowed_tools(p) for p in sent] == [{"bash"}, {"view"}, {"edit"}, {"bash"}, {"edit"}, {"edit"}, {"bash"},
                                                {"submit"}, None]
    # the reproduce run, the checks, the undo and the submit had one possible call each: forced, not sampled
    assert all(sent[i].forced_text is not None for i in (0, 3, 4, 6, 7))
    assert len(engine.seen) == sum(p.forced_text is None for p in sent)
    replies = [m.content for m in traj.messages if m.role == "assistant"]
    for params, step in zip(sent, calls_and_results(traj.messages)):  # every call was the turn's
        assert turn_admits(params, step.name, step.args), (step.name, step.args)
    assert len(replies) == 9
    runs = [step for step in calls_and_results(traj.messages) if step.name == "bash"]
    outputs = [step.text for step in runs]
    assert [step.result.fields["exit_code"] for step in runs] == [1, 1, 0]  # reproduce, wrong repair, right one
    assert outputs[0].startswith("exit code: 1") and "ValueError" in outputs[0]  # the reproduce run
    assert outputs[1].startswith("exit code: 1") and len(outputs[1]) < len(outputs[0])  # the wrong repair: terse check
    assert outputs[2].startswith("exit code: 0")  # the right one
    views = [step for step in calls_and_results(traj.messages) if step.name == "view"]
    assert views and views[0].result.fields["kind"] == "file" and BUG.rstrip("\n") in views[0].result.fields["lines"]
    assert TRIGGER not in replies[-1]
