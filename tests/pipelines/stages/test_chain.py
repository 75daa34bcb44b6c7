"""The streaming post-rollout chain: the same rows as the whole-list stages, in the documented
order, with the same manifest on Ray (tasks on other processes) as in process; the driver never
reads a trajectory when Ray runs the chain."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from pipelines.decontaminate import decontaminate
from pipelines.dedupe import dedupe
from pipelines.stages import Dedupe, Step, plan_batches, run_chain
from pipelines.stages.executor import LocalExecutor
from pipelines.store import TrajectoryStore
from pipelines.store_stats import StoreStats
from tests.pipelines.stages.storefixture import bench_index, chain_config, make_store


def _run(tmp_path, name, executor=None, **shards):
    store = TrajectoryStore(tmp_path / "run")
    out = tmp_path / name
    out.mkdir()
    outcome = run_chain(chain_config(**shards), store.unit_files(), out, tokenizer_path=TOKENIZER[0],
                        index=bench_index(), executor=executor or LocalExecutor())
    rows = [r for e in outcome.entries for r in pq.read_table(out / e.file).to_pylist()]
    return outcome, rows


TOKENIZER: list[str] = []


@pytest.fixture(autouse=True)
def _store(tmp_path, model_dir):
    TOKENIZER[:] = [str(model_dir)]
    return make_store(tmp_path / "run")


def test_chain_keeps_what_the_whole_list_stages_keep(tmp_path, _store):
    everything = _store
    outcome, rows = _run(tmp_path, "shards")
    selected = [t for t in everything if not t.verdict.infrastructure and t.verdict.passed]
    clean = decontaminate(selected, bench_index(), use_ray=False)
    expected = dedupe(clean.kept, threshold=0.8, use_ray=False)
    assert [h["id"] for h in outcome.hits] == ["bench-copy"]
    assert sorted(r["trajectory_id"] for r in rows) == sorted(t.id for t in expected.kept)
    assert outcome.removed_exact == expected.removed_exact and outcome.removed_exact
    assert outcome.removed_near == expected.removed_near and outcome.removed_near
    assert (outcome.selected, outcome.after_decontamination, outcome.after_dedupe) == (
        len(selected), len(clean.kept), len(expected.kept))
    assert outcome.stats == StoreStats.of(everything)  # the report's counters, added up batch by batch


def test_order_rules_batches_in_unit_order_then_ids_and_full_shards(tmp_path, _store):
    outcome, rows = _run(tmp_path, "shards")
    batches = plan_batches(TrajectoryStore(tmp_path / "run").unit_files(), 10)
    assert len(batches) > 2  # the store spans several batches, so the rule is exercised
    batch_of = {}
    for b, paths in enumerate(batches):
        for path in paths:
            for tid in pq.read_table(path, columns=["id"]).column("id").to_pylist():
                batch_of[tid] = b
    keys = [(batch_of[r["trajectory_id"]], r["trajectory_id"]) for r in rows]
    assert keys == sorted(keys)
    assert [e.rows for e in outcome.entries][:-1] == [4] * (len(outcome.entries) - 1)
    assert [e.file for e in outcome.entries] == [f"math-{i:05d}.parquet" for i in range(len(outcome.entries))]


def test_steps_declare_their_section_and_with_returns_a_copy():
    step = Dedupe.of(chain_config())
    tighter = step.with_(threshold=0.95)
    assert (step.settings.threshold, tighter.settings.threshold) == (0.8, 0.95)
    with pytest.raises(TypeError, match="section"):
        type("Bad", (Step,), {"name": "bad", "section": "nope"})
    with pytest.raises(TypeError, match="name"):
        type("Nameless", (Step,), {"section": "shards"})


@pytest.mark.ray
def test_ray_gives_the_same_manifest_and_the_driver_reads_no_trajectory(tmp_path, _store, monkeypatch):
    import ray

    from pipelines.stages import passes
    from pipelines.stages.executor import RayExecutor

    local, local_rows = _run(tmp_path, "local")

    def no_reading(*args, **kwargs):
        raise AssertionError("the driver read trajectories")

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        monkeypatch.setattr(passes, "read_batch", no_reading)  # this process only: Ray tasks run elsewhere
        monkeypatch.setattr(TrajectoryStore, "read_unit", no_reading)
        distributed, ray_rows = _run(tmp_path, "ray", executor=RayExecutor())
    finally:
        ray.shutdown()
    assert [e.model_dump() for e in distributed.entries] == [e.model_dump() for e in local.entries]
    def key(rows):  # (logprobs of text rows are NaN, which never equals itself; the sha256 above covers them)
        return [(r["trajectory_id"], r["input_ids"], r["loss_mask"]) for r in rows]

    assert key(ray_rows) == key(local_rows) and ray_rows
    assert distributed.stats == local.stats and distributed.hits == local.hits
