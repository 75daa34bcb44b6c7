"""`trajforge reshard`: the post-rollout stages again from a run's store. The rows' ids are the
stored traces' (nothing rolled out or re-rendered); only the mask follows the new policy."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from pipelines.config import ConfigError
from pipelines.reshard import resharded_config
from tests.pipelines.test_cli import trajforge


def _rows(shards):
    manifest = json.loads((shards / "manifest.json").read_text())
    rows = [r for e in manifest["shards"] for r in pq.read_table(shards / e["file"]).to_pylist()]
    return manifest, {r["trajectory_id"]: r for r in rows}


def test_only_post_rollout_settings_may_change(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"fingerprint": "x", "config": {"domain": "math"}}))
    assert resharded_config(tmp_path, {"shards.masking": "none"}).shards.masking == "none"
    assert resharded_config(tmp_path, {"allow_benchmark_seeds": True}).allow_benchmark_seeds
    with pytest.raises(ConfigError, match="cannot change 'sampling.temperature'"):
        resharded_config(tmp_path, {"sampling.temperature": 0.1})
    with pytest.raises(ConfigError, match="no run.json"):
        resharded_config(tmp_path / "nope", {})


@pytest.mark.ray
@pytest.mark.docker
@pytest.mark.slow
def test_reshard_changes_the_mask_and_keeps_the_ids(tmp_path):
    from pipelines.config import load_config
    from pipelines.run import run_pipeline
    from tests.pipelines.test_run import scripted_config

    cfg = load_config(scripted_config(tmp_path, limit=6), **{"engine.model": "python:tests.fakes:ScriptedTokenEngine",
                                                             "agent.assist": "small-model"})
    run_dir = tmp_path / "run"
    run_pipeline(cfg, run_dir)
    before_manifest, before = _rows(run_dir / "shards")
    assert before and all(r["token_exact"] for r in before.values())

    proc = trajforge("reshard", str(run_dir), "--masking", "none", "--out", str(tmp_path / "none"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    manifest, after = _rows(tmp_path / "none" / "shards")
    assert manifest["masking_policy"] == "none" and after.keys() == before.keys()
    for tid, row in after.items():
        assert row["input_ids"] == before[tid]["input_ids"] and row["token_source"] == before[tid]["token_source"]
        # "none": every token but the inserted ones (which stay off unless opted in)
        assert row["loss_mask"] == [int(s != 3) for s in row["token_source"]]
    assert _rows(run_dir / "shards")[0] == before_manifest  # the run's own shards are untouched

    proc = trajforge("reshard", str(run_dir), "--train-on-inserted", "--quiet")
    assert proc.returncode == 0, proc.stderr
    manifest, inserted = _rows(run_dir / "shards")
    assert manifest["train_on_inserted"]
    extra = sum(r["num_loss_tokens"] for r in inserted.values()) - sum(r["num_loss_tokens"] for r in before.values())
    assert extra == sum(1 for r in before.values() for s in r["token_source"] if s == 3) > 0

    refused = trajforge("reshard", str(run_dir), "--masking", "everything")
    assert refused.returncode == 2 and "--masking 'everything' is unknown" in refused.stderr
