"""A real multi-node Ray cluster on this machine (a head and a second raylet, one CPU each): a run
with two rollout workers lands them on different nodes (the report says which), ships the code
with the job, and writes the same trajectories and shards as a run on one node."""

from __future__ import annotations

import pytest

from pipelines.config import load_config
from pipelines.run import run_pipeline
from tests.pipelines.test_run import read_store, scripted_config

pytestmark = [pytest.mark.ray, pytest.mark.docker, pytest.mark.slow]


def _content(run_dir):
    return {t.id: ([m.model_dump() for m in t.messages], t.verdict.passed if t.verdict else None)
            for t in read_store(run_dir)}


def _shards(report):
    return [(e["file"], e["rows"], e["sha256"]) for e in report["shards"]] if "shards" in report else None


def test_two_nodes_run_two_workers_and_match_one_node(tmp_path, model_dir):
    from ray.cluster_utils import Cluster

    import json

    cfg = load_config(scripted_config(tmp_path, limit=8, per_unit=2))
    one = run_pipeline(cfg, tmp_path / "one")

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        multi = load_config(scripted_config(tmp_path, limit=8, per_unit=2),
                            **{"ray.address": cluster.address, "ray.num_workers": 2})
        two = run_pipeline(multi, tmp_path / "two")
    finally:
        cluster.shutdown()

    workers = two.report.extra["workers"]
    assert len(workers) == 2 and len({w["node_id"] for w in workers}) == 2  # one worker per node
    assert sum(w["units"] for w in workers) == two.report.units_total == 4 and all(w["units"] for w in workers)
    assert sum(w["trajectories"] for w in workers) == two.report.trajectories
    assert one.report.extra["workers"][0]["units"] == 4

    assert _content(tmp_path / "two") == _content(tmp_path / "one")
    manifests = [json.loads((tmp_path / name / "shards" / "manifest.json").read_text()) for name in ("one", "two")]
    entries = [[(e["file"], e["rows"], e["sha256"]) for e in m["shards"]] for m in manifests]
    assert entries[0] == entries[1] and entries[0]
