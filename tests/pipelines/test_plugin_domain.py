"""A domain written in a test file plugs in through a run's ``plugins`` and runs the whole
pipeline (real Ray, real tokenizer) with a scripted engine: this file is the shape of a domain."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from schemas import Message, Task, Verdict
from synthesizers.domains.base import Domain, DomainOptions
from synthesizers.domains.registry import register_domain
from verifiers.registry import register_verifier

pytestmark = [pytest.mark.ray, pytest.mark.slow]
BOXED = re.compile(r"\\boxed\{(-?\d+)\}")


class SumOptions(DomainOptions):
    count: int = 6


@register_domain
class SumDomain(Domain):
    name, Options, needs_sandbox = "sums", SumOptions, False

    def seed_tasks(self, *, limit, seed):
        tasks = [Task(id=f"sum-{seed}-{i}", domain=self.name, source="test", payload={
                 "question": f"What is {i} + {2 * i}?", "answer": 3 * i}) for i in range(self.options.count)]
        return iter(tasks[:limit])

    def initial_messages(self, task):
        return [Message(role="system", content="Box the answer."), Message(role="user", content=task.payload["question"])]

    def tools(self, task):
        return []

    def is_final(self, message):
        return message.role == "assistant" and bool(BOXED.search(message.content))


@register_verifier("sums", "default")
class SumVerifier:
    domain, needs_sandbox = "sums", False

    def verify(self, task, messages, sandbox=None):
        boxed = BOXED.findall(messages[-1].content) if messages and messages[-1].role == "assistant" else []
        ok = bool(boxed) and int(boxed[-1]) == task.payload["answer"]
        return Verdict(passed=ok, score=float(ok), reason="right" if ok else f"boxed {boxed or 'nothing'}")


def test_a_domain_from_a_test_file_runs_through_the_pipeline(tmp_path: Path, model_dir):
    from pipelines.config import RunConfig
    from pipelines.run import run_pipeline
    from schemas import table_to_trajectories

    config = RunConfig(domain="sums", plugins=[__name__], domain_options={"count": 8}, seed=5,
                       engine={"model": "python:tests.fakes:ScriptedTokenEngine"}, agent={"max_turns": 2},
                       branching={"enabled": True, "k": 1}, units={"tasks_per_unit": 4})
    result = run_pipeline(config, tmp_path / "run")
    trajs = [t for f in sorted((tmp_path / "run" / "trajectories").glob("unit-*.parquet"))
             for t in table_to_trajectories(pq.read_table(f))]
    originals = [t for t in trajs if t.parent_id is None]
    assert not result.failed_units and len(originals) == 8 and all(t.domain == "sums" for t in trajs)
    assert all(t.verdict.reason.startswith(("right", "boxed")) for t in trajs)  # SumVerifier judged each
    passed = [t for t in trajs if t.verdict.passed]
    assert passed and len(passed) < len(trajs)
    assert all(t.branch_step == 2 for t in trajs if t.parent_id)  # the default critical step: the first answer
    rows = pq.read_table(tmp_path / "run" / "shards" / "sums-00000.parquet").to_pylist()
    assert 0 < len(rows) == result.report.shard_rows <= len(passed) and all(r["token_exact"] for r in rows)
