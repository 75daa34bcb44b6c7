"""End to end with the real service: a scripted agent through the real agent loop
and tools passes the verifier; and the Ray pipeline (`trajforge run deep-research`
logic) turns scripted rollouts into verified, branched, masked shards."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from schemas import Manifest, table_to_trajectories
from synthesizers.agent_loop import Budget, run_agent
from synthesizers.domains.base import ToolContext
from synthesizers.domains.deep_research.domain import DeepResearchDomain
from synthesizers.engines.base import SamplingParams
from tests.synthesizers.domains.deep_research.scripted import ResearchEngine, answers_for
from verifiers.deep_research import DeepResearchVerifier

OPTIONS = {"questions": {"count": 6, "seed": 4}}


def _domain(service_url: str | None = None) -> DeepResearchDomain:
    opts = dict(OPTIONS)
    if service_url:
        opts["search"] = {"backend": "http", "url": service_url}
    return DeepResearchDomain(opts)


def _tasks(service_url: str | None = None):
    return list(_domain(service_url).seed_tasks(limit=None, seed=0))


@pytest.mark.parametrize(
    "wrong_every, cite_evidence, passed",
    [(0, True, True), (1, True, False), (0, False, False)],
    ids=["right-answer-with-evidence", "wrong-answer", "right-answer-without-evidence"],
)
def test_scripted_agent_through_real_loop_and_tools(service, tmp_path, wrong_every, cite_evidence, passed):
    tasks = _tasks(service.url)
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps(answers_for(tasks)))
    engine = ResearchEngine(str(answers), wrong_every=wrong_every, cite_evidence=cite_evidence)
    domain, verifier = _domain(service.url), DeepResearchVerifier()

    async def roll(task):
        return await run_agent(
            engine, domain.initial_messages(task), domain.tools(task), ctx=ToolContext(task=task, state={}),
            params=SamplingParams(seed=1), budget=Budget(max_turns=5), is_final=domain.is_final,
        )

    async def all_tasks():
        return await asyncio.wait_for(asyncio.gather(*(roll(t) for t in tasks)), 120)

    results = asyncio.run(all_tasks())
    for task, result in zip(tasks, results):
        assert result.stop_reason == "final_answer"
        tool_text = [m.content for m in result.messages if m.role == "tool"]
        assert any(task.payload["answer_doc_ids"][0] in text for text in tool_text)  # the real service answered
        verdict = verifier.verify(task, result.messages)
        assert verdict.passed is passed, verdict.reason
        if not cite_evidence:
            assert verdict.score == 1.0 and "cites none of the evidence" in verdict.reason  # right, but unsupported
        assert domain.first_critical_step(result.messages) == 2


@pytest.mark.ray
@pytest.mark.slow
def test_pipeline_runs_deep_research_into_shards(tmp_path, model_dir):
    from pipelines.config import load_config
    from pipelines.run import run_pipeline

    tasks = _tasks()
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps(answers_for(tasks)))
    config = tmp_path / "run.yaml"
    config.write_text(
        f"""
domain: deep-research
seed: 3
engine:
  model: "python:tests.synthesizers.domains.deep_research.scripted:ResearchEngine"
  options: {{answers: "{answers}", wrong_every: 3}}
agent: {{max_turns: 5, concurrency: 8}}
branching: {{enabled: true, k: 2}}
units: {{tasks_per_unit: 3}}
shards: {{include: passed}}
domain_options: {json.dumps(OPTIONS)}
"""
    )
    result = run_pipeline(load_config(config), tmp_path / "run")
    run_dir = Path(result.run_dir)
    trajs = [t for f in sorted((run_dir / "trajectories").glob("unit-*.parquet")) for t in table_to_trajectories(pq.read_table(f))]
    originals = [t for t in trajs if t.parent_id is None]
    assert len(originals) == 6 and not result.failed_units
    assert all(t.stop_reason == "final_answer" and t.error is None for t in trajs)
    assert any(t.verdict.passed for t in originals) and any(not t.verdict.passed for t in originals)
    by_id = {t.id: t for t in trajs}
    branches = [t for t in trajs if t.parent_id]
    assert len(branches) == 2 * sum(not t.verdict.passed for t in originals)
    for b in branches:  # cut at the first search: the system + user prompt is kept, the search re-rolled
        assert b.branch_step == 2 and b.messages[:2] == by_id[b.parent_id].messages[:2]
    manifest = Manifest.model_validate(json.loads((run_dir / "shards" / "manifest.json").read_text()))
    passed = sum(t.verdict.passed for t in trajs)
    assert manifest.total_rows == result.report.shard_rows > 0 and manifest.total_rows <= passed
