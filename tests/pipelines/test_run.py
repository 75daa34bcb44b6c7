"""The Ray DAG end to end with a scripted engine (real Ray, real Docker, real
tokenizer): shards appear, every task is accounted for, branching keeps
lineage, and a run killed with SIGKILL resumes to the same shards as an
uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.config import load_config
from pipelines.run import run_pipeline
from pipelines.store import TrajectoryStore
from pipelines.tokenizer_identity import EMBEDDED_HUB_ID
from schemas import Manifest, table_to_trajectories

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.ray, pytest.mark.docker, pytest.mark.slow]


def scripted_config(tmp_path: Path, *, limit: int, delay: float = 0.0, per_unit: int = 4, marker: str = "") -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(
        f"""
domain: math
seed: 7
limit: {limit}
engine:
  model: "python:tests.fakes:ScriptedEngine"
  options: {{delay_s: {delay}, closed_marker: "{marker}"}}
agent: {{max_turns: 3, concurrency: 8}}
branching: {{enabled: true, k: 2}}
units: {{tasks_per_unit: {per_unit}}}
sandbox: {{pool_size: 2}}
shards: {{include: all}}
domain_options: {{sources: [generator]}}
"""
    )
    return path


def read_store(run_dir: Path):
    trajs = []
    for f in sorted((run_dir / "trajectories").glob("unit-*.parquet")):
        trajs.extend(table_to_trajectories(pq.read_table(f)))
    return trajs


def test_pipeline_writes_store_shards_manifest_and_report(tmp_path, model_dir):
    cfg = load_config(scripted_config(tmp_path, limit=8))
    result = run_pipeline(cfg, tmp_path / "run")
    run_dir = tmp_path / "run"
    trajs = read_store(run_dir)
    originals = [t for t in trajs if t.parent_id is None]
    assert sorted({t.task_id for t in originals}) == sorted({t.task_id for t in trajs})
    assert len(originals) == 8
    by_id = {t.id: t for t in trajs}
    branches = [t for t in trajs if t.parent_id]
    assert branches, "the scripted engine fails some tasks: their parents must be branched (branching.k: 2)"
    for b in branches:
        parent = by_id[b.parent_id]
        assert not parent.verdict.passed
        assert b.messages[: b.branch_step] == parent.messages[: b.branch_step]
    assert all(t.verdict is not None for t in trajs)
    manifest = Manifest.model_validate(json.loads((run_dir / "shards" / "manifest.json").read_text()))
    assert manifest.tokenizer_id == EMBEDDED_HUB_ID  # the embedded folder is named by its hub id
    assert manifest.total_rows == result.report.shard_rows > 0
    # math's field is checked by default and the manifest says so (generated seeds hit nothing)
    assert manifest.decontamination == {"checked": {"mmath": 374, "champ": 270}, "hits": {"mmath": 0, "champ": 0},
                                        "benchmark_seeds": {}}
    report = json.loads((run_dir / "report.json").read_text())
    assert report["trajectories"] == len(trajs)
    assert report["originals"] == 8 and report["branches"] == len(trajs) - 8
    # a second run on the same folder does no rollout work
    again = run_pipeline(cfg, run_dir)
    assert again.report.units_run_now == 0 and again.report.trajectories == len(trajs)


def _launch(config: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", "math", "--config", str(config), "--out", str(out), "--quiet"],
        cwd=REPO, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _wait_for_units(proc: subprocess.Popen, run_dir: Path, count: int, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = list((run_dir / "trajectories").glob("unit-*.parquet")) if (run_dir / "trajectories").exists() else []
        if len(done) >= count or proc.poll() is not None:
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"run finished before it could be stopped:\n{proc.stdout.read()}"


def test_sigterm_unwinds_like_ctrl_c_and_closes_the_engines(tmp_path):
    """A scheduler's stop (SIGTERM to the driver) closes every rollout worker's engine (a vLLM
    engine's processes would otherwise outlive the run) and says how to resume."""
    marker = tmp_path / "engine-closed"
    config = scripted_config(tmp_path, limit=24, delay=0.25, per_unit=2, marker=str(marker))
    proc = _launch(config, tmp_path / "run")
    _wait_for_units(proc, tmp_path / "run", 1)
    proc.send_signal(signal.SIGTERM)  # the driver only, as `kill PID` does
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert "interrupted: re-run the same command to resume" in output
    assert marker.read_text() == "closed"


def test_sigkill_midway_then_resume_loses_and_duplicates_nothing(tmp_path):
    config = scripted_config(tmp_path, limit=24, delay=0.25, per_unit=2)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = _launch(config, killed)
    _wait_for_units(proc, killed, 2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    units_before = len(list((killed / "trajectories").glob("unit-*.parquet")))
    assert 0 < units_before < 12
    assert not (killed / "shards" / "manifest.json").exists()

    for out in (killed, clean):
        p = _launch(config, out)
        output, _ = p.communicate(timeout=600)
        assert p.returncode == 0, output

    resumed, reference = read_store(killed), read_store(clean)
    ids = [t.id for t in resumed]
    assert len(ids) == len(set(ids)), "a trajectory was written twice"
    assert sorted(ids) == sorted(t.id for t in reference), "a trajectory was lost"
    assert {t.id: t.messages for t in resumed} == {t.id: t.messages for t in reference}
    m1 = Manifest.model_validate(json.loads((killed / "shards" / "manifest.json").read_text()))
    m2 = Manifest.model_validate(json.loads((clean / "shards" / "manifest.json").read_text()))
    assert [(s.file, s.sha256) for s in m1.shards] == [(s.file, s.sha256) for s in m2.shards]
    report = json.loads((killed / "report.json").read_text())
    assert report["units_resumed"] == units_before
