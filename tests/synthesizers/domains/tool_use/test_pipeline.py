"""`trajforge run tool-use` end to end with the scripted agent+user engine (real
Ray, real tokenizer): trajectories for every task, simulated-user turns in
them, verdicts from both verifiers, branches cut at the first write, masked
shards and a manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.config import load_config
from pipelines.run import run_pipeline
from schemas import Manifest, table_to_trajectories
from synthesizers.domains.tool_use.domain import WRITE_TOOLS, ToolUseDomain

pytestmark = [pytest.mark.ray, pytest.mark.slow]
OPTIONS = {"sources": ["tau2-retail", "calls", "files"], "counts": {"tau2-retail": 4, "calls": 4, "files": 2}}


def test_tool_use_run_writes_verified_branched_shards(tmp_path: Path, model_dir):
    config = tmp_path / "run.yaml"
    config.write_text(f"""
domain: tool-use
seed: 11
allow_benchmark_seeds: true  # the tau2 environments come with tau2-bench's own tasks only
engine:
  model: "python:tests.synthesizers.domains.tool_use.scripted:ScriptedToolEngine"
  options: {{seed: 11, options: {json.dumps(OPTIONS)}, wrong_every: 2}}
agent: {{max_turns: 16, max_total_tokens: 100000, concurrency: 8}}
branching: {{enabled: true, k: 2}}
units: {{tasks_per_unit: 5}}
shards: {{include: passed}}
domain_options: {json.dumps(OPTIONS)}
""")
    run_dir = tmp_path / "run"
    result = run_pipeline(load_config(config), run_dir)
    trajs = [t for f in sorted((run_dir / "trajectories").glob("unit-*.parquet")) for t in table_to_trajectories(pq.read_table(f))]
    originals = [t for t in trajs if t.parent_id is None]
    assert len(originals) == 10
    kinds = {t.task.kind for t in originals}
    assert kinds == {"stateful", "calls"}
    assert any(t.verdict.passed for t in trajs) and any(not t.verdict.passed for t in trajs)
    stateful = [t for t in originals if t.task.kind == "stateful"]
    assert all(t.stop_reason == "user_ended" for t in stateful)
    assert all(m.role == "user" for t in stateful for m in t.messages[3:4])  # the simulated user spoke
    domain, by_id = ToolUseDomain(), {t.id: t for t in trajs}
    branches = [t for t in trajs if t.parent_id]
    assert branches
    for b in branches:
        parent = by_id[b.parent_id]
        assert b.branch_step == domain.first_critical_step(parent.messages)
        assert b.messages[: b.branch_step] == parent.messages[: b.branch_step]
        writes = [i for i, m in enumerate(parent.messages) if any(c.function.name in WRITE_TOOLS for c in m.tool_calls)]
        # cut before the first state-changing call; a failure that never wrote re-rolls from the start
        assert b.branch_step == (writes[0] if writes else 2)
    assert any(b.branch_step > 2 for b in branches)
    manifest = Manifest.model_validate(json.loads((run_dir / "shards" / "manifest.json").read_text()))
    passed = sum(1 for t in trajs if t.verdict.passed)
    assert 0 < manifest.total_rows <= passed == result.report.passed
    rows = pq.read_table(run_dir / "shards" / manifest.shards[0].file).to_pylist()
    assert all(0 < r["num_loss_tokens"] < r["num_tokens"] for r in rows)
    # Seed-time environment QA ran on the six stateful tasks (retail + files) and the report says so.
    assert json.loads((run_dir / "seed_qa.json").read_text()) == result.report.extra["seed_qa"]
    assert result.report.extra["seed_qa"]["checked"] == 6 and result.report.extra["seed_qa"]["seeded"] == 10
