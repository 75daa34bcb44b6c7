"""One real end to end run: the embedded model through vLLM in a Ray rollout actor, the math
domain's python tool in a real Docker sandbox, real verification, branching, dedupe and v2
shards. The rows must be the engine's own ids (token-exact, no drift, loss only on sampled
tokens, the store's trace ids) with logprobs the same model reproduces; and a SIGTERM to the
driver of ``trajforge run`` must leave no vLLM engine process behind."""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from pipelines.config import load_config
from pipelines.run import run_pipeline
from pipelines.tokenizer_identity import EMBEDDED_HUB_ID, tokenizer_identity
from schemas import Manifest, ShardRow
from schemas.tokens import TokenSource
from tests.pipelines.test_run import read_store

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.vllm, pytest.mark.ray, pytest.mark.docker, pytest.mark.slow]


def real_config(tmp_path: Path, *, limit: int, max_tokens: int, per_unit: int) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(
        f"""
domain: math
seed: 11
limit: {limit}
engine: {{model: embedded, max_model_len: 4096, kv_cache_gb: 1}}
sampling: {{temperature: 0.7, top_p: 0.95, max_tokens: {max_tokens}}}
agent: {{max_turns: 2, max_total_tokens: 1536, concurrency: 8}}
branching: {{enabled: true, k: 1}}
units: {{tasks_per_unit: {per_unit}}}
sandbox: {{pool_size: 2}}
shards: {{include: all, masking: assistant}}
domain_options: {{sources: [generator]}}
"""
    )
    return path


def read_rows(shard_dir: Path) -> list[ShardRow]:
    rows = []
    for f in sorted(shard_dir.glob("math-*.parquet")):
        table = pq.read_table(f)
        assert table.schema.metadata[b"trajforge_schema_version"].decode().startswith("2.")
        rows.extend(ShardRow.model_validate(r) for r in table.to_pylist())
    return rows


def same_floats(a: list[float], b: list[float]) -> bool:
    """Equal as float32 (shards store float32), NaN equal to NaN."""
    import numpy as np

    x, y = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return x.shape == y.shape and bool(np.all((x == y) | (np.isnan(x) & np.isnan(y))))


async def test_real_run_writes_token_exact_rows_the_model_reproduces(tmp_path, model_dir, request):
    t0 = time.monotonic()
    cfg = load_config(real_config(tmp_path, limit=4, max_tokens=128, per_unit=2))
    run_dir = tmp_path / "run"
    result = run_pipeline(cfg, run_dir)
    run_s = time.monotonic() - t0
    assert not result.failed_units

    # The store: every task, every trajectory verified, every one with a trace of all its messages.
    trajs = read_store(run_dir)
    originals = [t for t in trajs if t.parent_id is None]
    assert len(originals) == 4
    by_id = {t.id: t for t in trajs}
    for t in trajs:
        assert t.verdict is not None, t.id
        trace = t.token_trace
        assert trace is not None and len(trace) > 0, f"{t.id} has no token trace"
        assert sorted(set(trace.message_index)) == list(range(len(t.messages))), t.id
        assert trace.count(TokenSource.SAMPLED) > 0
    for b in (t for t in trajs if t.parent_id):  # a branch keeps its parent's tokens up to the branch step
        parent = by_id[b.parent_id]
        shared = parent.token_trace.before_message(b.branch_step)
        assert b.token_trace.ids[: len(shared)] == shared.ids

    # The shards: v2, one row per kept trajectory, each the store's own ids.
    manifest = Manifest.model_validate(json.loads((run_dir / "shards" / "manifest.json").read_text()))
    assert manifest.schema_version.startswith("2.")
    assert manifest.tokenizer_id == EMBEDDED_HUB_ID
    assert manifest.tokenizer_sha256 and manifest.tokenizer_sha256 == tokenizer_identity(model_dir)[1]
    rows = read_rows(run_dir / "shards")
    assert rows and len(rows) == manifest.total_rows == result.report.shard_rows
    assert len({r.trajectory_id for r in rows}) == len(rows)
    for row in rows:
        t = by_id[row.trajectory_id]
        assert row.token_exact and not row.text_drift, row.trajectory_id
        assert row.input_ids == t.token_trace.ids
        assert row.token_source == t.token_trace.sources
        assert same_floats(row.logprobs, t.token_trace.logprobs)
        assert all(s in (1, 2) for m, s in zip(row.loss_mask, row.token_source) if m), "loss off sources 1/2"
        assert row.num_loss_tokens > 0
        assert all(math.isnan(x) for x, s in zip(row.logprobs, row.token_source) if s in (0, 3))
        assert all(not math.isnan(x) for x, s in zip(row.logprobs, row.token_source) if s in (1, 2))
    assert manifest.token_exact_rows == sum(r.token_exact for r in rows) == len(rows)
    assert manifest.drift_rows == sum(r.text_drift for r in rows) == 0
    assert manifest.inserted_tokens == sum(r.inserted_tokens for r in rows)
    assert manifest.total_tokens == sum(r.num_tokens for r in rows)
    assert sum(s.loss_tokens for s in manifest.shards) == sum(r.num_loss_tokens for r in rows)

    # Stored logprobs against a fresh prompt-logprobs pass of the same model over each row
    # (the run's engine is closed by now; the session engine starts only after the run).
    engine = request.getfixturevalue("vllm_engine")
    diffs: dict[str, list[float]] = {}
    shuffled: list[float] = []  # the same values at the wrong positions: what a mismatch looks like
    for row in rows:
        scored = await engine.score(row.input_ids)
        free = [(a, b) for a, b, s in zip(row.logprobs, scored, row.token_source) if s == TokenSource.SAMPLED]
        diffs[row.trajectory_id] = [abs(a - b) for a, b in free]
        shuffled += [abs(a - b) for a, b in zip(sorted(a for a, _ in free), [b for _, b in free])]
    sample = max(rows, key=lambda r: len(diffs[r.trajectory_id]))  # the row with most free tokens
    sample_diffs = diffs[sample.trajectory_id]
    pooled = [d for ds in diffs.values() for d in ds]
    assert len(sample_diffs) >= 20
    assert statistics.median(sample_diffs) < 0.05
    assert statistics.median(pooled) < 0.05
    assert statistics.median(shuffled) > 0.2  # the comparison can tell a row's logprobs from another's

    print(json.dumps({
        "run_s": round(run_s, 1), "total_s": round(time.monotonic() - t0, 1),
        "trajectories": len(trajs), "originals": len(originals), "branches": len(trajs) - len(originals),
        "passed": sum(bool(t.verdict.passed) for t in trajs), "rows": len(rows),
        "token_exact_rows": manifest.token_exact_rows, "drift_rows": manifest.drift_rows,
        "inserted_tokens": manifest.inserted_tokens, "tokens": manifest.total_tokens,
        "tool_calls": sum(len(m.tool_calls) for t in trajs for m in t.messages),
        "sampled_tokens_scored": len(pooled),
        "sample_median": round(statistics.median(sample_diffs), 4),
        "pooled_median": round(statistics.median(pooled), 4),
        "pooled_p90": round(sorted(pooled)[int(0.9 * (len(pooled) - 1))], 4),
        "pooled_max": round(max(pooled), 4), "shuffled_median": round(statistics.median(shuffled), 4),
    }))


# ---- SIGTERM leaves no engine behind ------------------------------------------------------------

def _tagged(tag: str) -> list[psutil.Process]:
    """Live processes whose environment carries ``tag`` (inherited by every process the run
    starts: Ray's daemons and workers, the vLLM engine core, even once reparented)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("TRAJFORGE_TEST_RUN") == tag and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _describe(procs: list[psutil.Process]) -> str:
    out = []
    for p in procs:
        try:
            out.append(f"{p.pid} {p.name()!r} {' '.join(p.cmdline())[:120]!r}")
        except psutil.Error:
            continue
    return "\n".join(out)


def _is_engine_core(proc: psutil.Process) -> bool:
    try:
        return "EngineCore" in proc.name() or "EngineCore" in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def test_sigterm_to_a_real_run_leaves_no_vllm_engine_behind(tmp_path):
    sigterm_run(tmp_path, when="generating")


def sigterm_run(tmp_path: Path, when: str) -> dict:
    """Start ``trajforge run``, SIGTERM the driver once the engine core exists (``starting``) or
    once the engine has finished a unit (``generating``), and check nothing the run started lives on."""
    t0 = time.monotonic()
    tag = uuid.uuid4().hex
    config = real_config(tmp_path, limit=12, max_tokens=128, per_unit=2)
    run_dir = tmp_path / "run"
    cli = REPO / ".venv" / "bin" / "trajforge"
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "pipelines.cli"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local run: its processes are ours
    proc = subprocess.Popen(
        [*command, "run", "math", "--config", str(config), "--out", str(run_dir), "--quiet"],
        cwd=REPO, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**env, "PYTHONPATH": str(REPO), "TRAJFORGE_TEST_RUN": tag, "VLLM_CPU_KVCACHE_SPACE": "1"},
    )
    seen: dict[int, float] = {}  # every descendant of the driver seen while it ran: pid -> create_time
    driver = psutil.Process(proc.pid)
    engine_seen = False
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                for child in driver.children(recursive=True):
                    seen.setdefault(child.pid, child.create_time())
                    engine_seen = engine_seen or _is_engine_core(child)
            except psutil.Error:
                pass
            # The engine is up and generating once a unit is written (two more are in flight).
            if engine_seen and (when == "starting" or any(run_dir.glob("trajectories/unit-*.parquet"))):
                break
            time.sleep(0.5)
        assert proc.poll() is None, f"run ended before it could be stopped:\n{proc.stdout.read()}"
        assert engine_seen, "no vLLM EngineCore process under the driver"
        assert any(_is_engine_core(p) for p in _tagged(tag)), "the engine core does not carry the run's environment"
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # the driver only, as `kill PID` does
        output, _ = proc.communicate(timeout=150)
        exit_s = time.monotonic() - signalled
        assert proc.returncode == 130, output
        assert "interrupted: re-run the same command to resume" in output

        grace = time.monotonic() + 10
        left: list[psutil.Process] = []
        while time.monotonic() < grace:
            left = _tagged(tag) + [p for p in map(_alive, seen.items()) if p is not None]
            left = list({p.pid: p for p in left}.values())
            if not left:
                break
            time.sleep(0.5)
        assert not left, f"processes outlived the run (SIGTERM exit took {exit_s:.1f} s):\n{_describe(left)}"
        measured = {"when": when, "wall_s": round(time.monotonic() - t0, 1), "exit_after_sigterm_s": round(exit_s, 1),
                    "descendants_seen": len(seen),
                    "units_written": len(list(run_dir.glob("trajectories/unit-*.parquet")))}
        print(json.dumps(measured))
        return measured
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for p in _tagged(tag):  # never leave a stray engine to the next test
            try:
                p.kill()
            except psutil.Error:
                pass


def _alive(item: tuple[int, float]) -> psutil.Process | None:
    pid, created = item
    try:
        p = psutil.Process(pid)
        if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
            return p
    except psutil.Error:
        pass
    return None
