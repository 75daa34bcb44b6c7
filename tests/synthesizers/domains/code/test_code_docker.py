"""Code domain in the real sandbox on a real project (cachetools): bug injection keeps only
instances with >= 1 FAIL_TO_PASS and >= 1 PASS_TO_PASS; the tools and a scripted rollout
through the generic TaskRunner reach a verified fix; a failed rollout branches at its first edit."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import replace

import pytest

from schemas import Message, ToolCall
from synthesizers.agent_loop import Budget
from synthesizers.domains.base import ToolContext
from synthesizers.domains.code.domain import CodeDomain, CodeDomainError
from synthesizers.domains.code.instances import instance_to_task, validate_project
from synthesizers.domains.code.mutate import Mutation
from synthesizers.engines.base import Completion, SamplingParams
from tests.synthesizers.domains.code.helpers import (
    BUG_LINE,
    GOOD_LINE,
    LRU_FILE,
    buggy_lru,
    pristine_lru,
)
from verifiers.code_repo import RepoCodeVerifier

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def instances(code_project, tmp_path_factory):
    """Three hand-made mutations through the real validation loop: one real bug, one that breaks
    every test (no PASS_TO_PASS), one that changes nothing observable (no FAIL_TO_PASS)."""
    good = pristine_lru(code_project)
    mk = lambda kind, text: Mutation(LRU_FILE, 1, kind, f"f_{kind}", "", "", text)  # noqa: E731
    candidates = [mk("real", buggy_lru(code_project)), mk("breaks_all", "raise ImportError('boom')\n" + good),
                  mk("harmless", good + "\n_UNUSED = 1\n")]
    out = tmp_path_factory.mktemp("instances")
    rows = validate_project(code_project, quota=3, seed=0, out=out, max_attempts=3, candidates=candidates)
    log = out / "attempts" / f"{code_project.name}-{code_project.version}.jsonl"
    attempts = [json.loads(line) for line in log.open()]
    return rows, attempts


def test_bug_injection_keeps_only_f2p_and_p2p(instances):
    rows, attempts = instances
    assert len(attempts) == 3
    for rec in attempts:
        assert ("row" in rec) == (rec["f2p"] >= 1 and rec["p2p"] >= 1), rec
    assert [r["mutation_kind"] for r in rows] == ["real"]
    row = rows[0]
    assert any("test_lru" in t for t in row["FAIL_TO_PASS"]) and len(row["PASS_TO_PASS"]) > 50
    assert not set(row["FAIL_TO_PASS"]) & set(row["PASS_TO_PASS"])
    assert BUG_LINE.strip() in row["bug_patch"] and GOOD_LINE.strip() in row["fix_patch"]


class FixerEngine:
    """Scripted agent: look, run the failing test, fix (or not), submit, stop."""

    model_id = "scripted-fixer"

    def __init__(self, fix: bool):
        self.fix = fix

    async def chat(self, messages, *, tools=None, params: SamplingParams = SamplingParams()) -> Completion:
        turn = sum(m.role == "assistant" for m in messages)
        new = (GOOD_LINE if self.fix else BUG_LINE.replace("(self.__order)", "(list(self.__order))")).strip()
        reproduce = messages[1].content.split("To see the failure: `", 1)[1].split("`", 1)[0]  # as given
        script = [("view", {"path": LRU_FILE, "start_line": 220, "end_line": 232}),
                  ("bash", {"command": f"{reproduce} 2>&1 | tail -3"}),
                  ("edit", {"path": LRU_FILE, "old_str": BUG_LINE.strip(), "new_str": new}),
                  ("submit", {})]
        if turn >= len(script):
            return Completion(text="Done.", finish_reason="stop", prompt_tokens=10, completion_tokens=2)
        name, args = script[turn]
        call = ToolCall.make(f"call-{turn}-{params.seed}", name, args)
        return Completion(text=f"Step {turn}.", finish_reason="stop", prompt_tokens=10, completion_tokens=5,
                          tool_calls=[call])

    async def close(self):
        return None


def _settings(branches: int):
    from pipelines.rollout import RolloutSettings

    return RolloutSettings(sampling=SamplingParams(max_tokens=64), seed=7, branches=branches,
                           budget=Budget(max_turns=8, max_total_tokens=100_000, max_tool_output_chars=12_000))


def _runner(fix: bool, code_pool, branches: int):
    from pipelines.rollout import TaskRunner

    return TaskRunner(FixerEngine(fix), CodeDomain(), lambda kind: RepoCodeVerifier(), _settings(branches),
                      pools=lambda image: code_pool, concurrency=2)


async def test_scripted_rollout_fixes_and_passes(instances, code_pool):
    task = instance_to_task(instances[0][0])
    trajs = await _runner(True, code_pool, branches=1).run_task(task)
    assert len(trajs) == 1, [t.verdict for t in trajs]
    traj = trajs[0]
    assert traj.verdict.passed, traj.verdict.reason
    tool_out = {m.name: m.content for m in traj.messages if m.role == "tool"}
    assert "Edited" in tool_out["edit"] and "failed" in tool_out["bash"] and "<patch>" in tool_out["submit"]
    # The box's pytest tally, without its wall time (the one part that differs run to run).
    tally = re.search(r"^=* ?\d+ failed[^\n]*$", tool_out["bash"], re.MULTILINE)
    assert tally and not re.search(r" in \d", tally.group(0)), tool_out["bash"]
    assert CodeDomain().first_critical_step(traj.messages) == 4  # the test run comes before the edit


async def test_failed_rollout_branches_at_first_critical_action(instances, code_pool):
    task = instance_to_task(instances[0][0])
    trajs = await _runner(False, code_pool, branches=1).run_task(task)
    root, branch = trajs
    assert not root.verdict.passed and "FAIL_TO_PASS" in root.verdict.reason
    assert branch.parent_id == root.id and branch.branch_step == 4
    assert branch.messages[:4] == root.messages[:4]


def test_tools_refuse_paths_outside_the_repo(instances, code_pool):
    from synthesizers.domains.code.tools import ViewTool
    from synthesizers.domains.base import ToolError

    task = instance_to_task(instances[0][0])
    with code_pool.acquire() as box:
        ctx = ToolContext(task=task, sandbox=box, state={})
        assert "src/" in ViewTool().run({"path": "."}, ctx)
        with pytest.raises(ToolError):
            ViewTool().run({"path": "../../etc/passwd"}, ctx)


def test_function_task_is_validated_reference_passes_blank_fails(code_project, code_pool, tmp_path):
    """A function cut from the real project: blanking it fails the tests that exercise it while the
    rest still pass; through the verifier the reference body passes them and the blank body does not."""
    from sandboxes.project import pristine_files
    from synthesizers.domains.code.function_tasks import function_task_from_row, validate

    with code_pool.acquire() as box:
        rows = validate(code_project, 1, tmp_path, 0, box=box, names={"typedkey"})
    assert len(rows) == 1, rows
    row = rows[0]
    assert any("typed" in t for t in row["FAIL_TO_PASS"]), row["FAIL_TO_PASS"]
    assert len(row["PASS_TO_PASS"]) > 50
    assert "def typedkey(" in row["prompt"] and "raise NotImplementedError" in row["bug_patch"]
    task = function_task_from_row(row)
    source = pristine_files(code_project)[row["path"]].decode()
    node = next(n for n in ast.parse(source).body if getattr(n, "name", "") == "typedkey")
    reference = ast.get_source_segment(source, node) + "\n"
    blank = "def typedkey(*args, **kwargs):\n    raise NotImplementedError\n"

    def answer(code: str) -> list[Message]:
        return [Message(role="user", content=row["prompt"]),
                Message(role="assistant", content=f"```python\n{code}```")]

    with code_pool.acquire() as box:
        good = RepoCodeVerifier().verify(task, answer(reference), box)
    with code_pool.acquire() as box:
        bad = RepoCodeVerifier().verify(task, answer(blank), box)
    assert good.passed, good.reason
    assert not bad.passed and "FAIL_TO_PASS failing" in bad.reason
    # Env QA of the function task: the original function passes, the blanked one fails, 3 verify runs.
    import pyarrow.parquet as pq

    from pipelines.env_qa import check_file
    from synthesizers.domains.code.function_tasks import write_tasks

    write_tasks(rows, tmp_path / "fn" / "function_tasks.parquet")
    qa = check_file(tmp_path / "fn" / "function_tasks.parquet", "function", log=lambda _: None)
    assert (qa["tasks"], qa["kept"]) == (1, 1), qa
    assert pq.read_table(tmp_path / "fn" / "function_tasks.parquet").to_pylist()[0]["qa_outcome"] == "passed"


async def test_worker_runs_a_code_task_in_the_projects_image(instances, code_project, tmp_path):
    """RolloutWorker asks the domain for the task's image: rollout, tools and verification run in
    the project's own pool (not the base image), and the scripted fix passes there."""
    import pyarrow.parquet as pq

    from pipelines.worker import RolloutWorker
    from schemas import table_to_trajectories
    from synthesizers.domains.code.images import ensure_project_image
    from pipelines.env_qa import check_file
    from synthesizers.domains.code.instances import write_parquet

    write_parquet([instances[0][0]], tmp_path / "instances.parquet")
    with pytest.raises(CodeDomainError, match="never checked under the verifier's conditions"):
        next(iter(CodeDomain({"instances": str(tmp_path)}).seed_tasks(limit=1, seed=0)))
    # Env QA: the gold fix passes and the bug fails in each of three verify runs (as `trajforge verify` judges).
    qa = check_file(tmp_path / "instances.parquet", "repo", log=lambda _: None)
    assert (qa["tasks"], qa["kept"], qa["runs"]) == (1, 1, 3), qa
    assert pq.read_table(tmp_path / "instances.parquet").to_pylist()[0]["qa_outcome"] == "passed"
    config = {"domain": "code", "seed": 7,
              "engine": {"model": f"python:{__name__}:FixerEngine", "options": {"fix": True}},
              "agent": {"max_turns": 8, "max_total_tokens": 100_000, "max_tool_output_chars": 12_000},
              "branching": {"enabled": False}, "sandbox": {"pool_size": 1, "memory_mb": 768, "timeout_s": 60},
              "domain_options": {"instances": str(tmp_path)}}
    worker = RolloutWorker(config, run_id="test-worker-image")
    try:
        task = next(iter(CodeDomain({"instances": str(tmp_path)}).seed_tasks(limit=1, seed=0)))
        trajs = table_to_trajectories(await worker.run_unit([task.model_dump()]))
        assert worker.pool.images == [ensure_project_image(code_project)]
    finally:
        await worker.close()
    assert len(trajs) == 1 and trajs[0].verdict.passed, trajs[0].verdict
