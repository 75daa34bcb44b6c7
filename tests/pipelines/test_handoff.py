"""Pipeline-to-trainer hand-off: a real run (scripted token-exact engine, real tokenizer, real Ray
and Docker) writes shards, and ``trajforge train`` trains the ``tiny`` model on them on CPU: the
manifest's tokenizer is checked, the loss falls, and every label of every batch is a loss-carrying
token of its own shard row, one position on (never across a document boundary)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.config import load_config
from pipelines.run import run_pipeline
from pipelines.tokenizer_identity import EMBEDDED_HUB_ID
from schemas import Manifest
from trainer.config import load_train_config
from trainer.loader import PackedLoader
from trainer.packing import IGNORE
from trainer.shards import ShardSet, TokenizerMismatch
from trainer.tokenizer import files_sha256

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.ray, pytest.mark.docker, pytest.mark.slow]
STEPS = 10


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("handoff")
    (tmp / "run.yaml").write_text(
        """
domain: math
seed: 3
limit: 8
engine: {model: "python:tests.fakes:ScriptedTokenEngine"}
agent: {max_turns: 3, concurrency: 8}
branching: {enabled: false}
units: {tasks_per_unit: 4}
sandbox: {pool_size: 2}
shards: {include: all, rows_per_shard: 3}
domain_options: {sources: [generator]}
"""
    )
    result = run_pipeline(load_config(tmp / "run.yaml"), tmp / "run")
    assert result.report.shard_rows >= 4, result.report
    return tmp / "run" / "shards"


def _train_config(tmp: Path) -> Path:
    """configs/train-tiny.yaml, shortened to a few steps."""
    cfg = yaml.safe_load((REPO / "configs" / "train-tiny.yaml").read_text())
    cfg.update(steps=STEPS, warmup_steps=2, checkpoint_every=0, log_every=1,
               num_workers=0)
    path = tmp / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _trajforge_train(config: Path, shards: Path, out: Path, tokenizer: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.cli", "train", "--config", str(config),
                           "--shards", str(shards), "--out", str(out), "--tokenizer", tokenizer],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_manifest_names_the_tokenizer_the_trainer_checks(shards, model_dir, tmp_path):
    manifest = Manifest.model_validate(json.loads((shards / "manifest.json").read_text()))
    assert manifest.tokenizer_id == EMBEDDED_HUB_ID
    assert manifest.tokenizer_sha256 == files_sha256(model_dir)  # the trainer hashes as the pipeline does
    assert manifest.token_exact_rows == manifest.total_rows  # the token engine's rows are exact
    ShardSet.open(shards, str(model_dir))  # the embedded folder: same files
    ShardSet.open(shards, EMBEDDED_HUB_ID)  # the hub id, by name
    fake = tmp_path / "SmolLM2-135M-Instruct"  # right name, other files: refused by the hash
    shutil.copytree(model_dir, fake, ignore=shutil.ignore_patterns("*.safetensors"))
    (fake / "tokenizer_config.json").write_text("{}")
    with pytest.raises(TokenizerMismatch, match="differ from the shards' tokenizer"):
        ShardSet.open(shards, str(fake))


def test_trajforge_train_refuses_a_wrong_tokenizer_then_trains(shards, model_dir, tmp_path):
    config = _train_config(tmp_path)
    wrong = _trajforge_train(config, shards, tmp_path / "wrong", "gpt2")
    assert wrong.returncode == 2, wrong.stderr
    assert wrong.stderr.count("\n") == 1 and "does not match the shards' tokenizer" in wrong.stderr
    assert not (tmp_path / "wrong" / "checkpoints").exists()

    done = _trajforge_train(config, shards, tmp_path / "out", str(model_dir))
    assert done.returncode == 0, done.stderr[-2000:]
    log = [json.loads(line) for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log]
    assert [r["step"] for r in log] == list(range(1, STEPS + 1)) and all(r["loss_tokens"] > 0 for r in log)
    assert losses[0] > 9.0  # ~ln(49152) = 10.8 at init
    assert sum(losses[-3:]) / 3 < losses[0] - 1.0, losses
    assert (tmp_path / "out" / "checkpoints" / f"step-{STEPS:08d}" / "meta.json").exists()


def test_every_label_is_a_loss_token_of_its_own_row(shards, tmp_path):
    """The batches ``trajforge train`` takes (same seed and shapes), against the shard rows as Parquet
    has them: each label is the next token of the same row and carries loss there; the last token of
    a row never predicts the next row's first; over an epoch each loss token is a label once."""
    cfg = load_train_config(_train_config(tmp_path))
    manifest = Manifest.model_validate(json.loads((shards / "manifest.json").read_text()))
    rows = [r for s in manifest.shards for r in pq.read_table(shards / s.file).to_pylist()]
    shard_set = ShardSet.open(shards)
    assert len(rows) == shard_set.num_docs
    loader = PackedLoader(shard_set, seq_len=cfg.seq_len, micro_batch=cfg.micro_batch, seed=cfg.seed,
                          pack_group=cfg.pack_group)
    # doc index -> its row: docs are numbered in manifest order, rows within each shard in order
    row_of = {d: rows[d] for d in range(shard_set.num_docs)}
    expected = Counter((d, i) for d, r in row_of.items()
                       for i in range(1, len(r["input_ids"])) if r["loss_mask"][i])
    assert sum(expected.values()) > 0
    seen: Counter = Counter()
    boundaries = 0
    for n in range(10_000):
        batch = next(loader)
        if batch["epoch"] > 0 and n >= STEPS:  # all of epoch 0 and every batch the run trained on
            break
        ids, labels = batch["input_ids"].tolist(), batch["labels"].tolist()
        pos = 0
        for w in batch["window_ids"]:
            start = pos
            for d, s, e in loader.segments(w):
                row = row_of[d]
                assert ids[pos:pos + e - s] == row["input_ids"][s:e]
                for k in range(e - s):
                    i = s + k + 1  # the row position label k predicts
                    if i < len(row["input_ids"]) and row["loss_mask"][i]:
                        assert labels[pos + k] == row["input_ids"][i]
                        assert row["token_source"][i] in (1, 2)  # sampled, never context or inserted
                        seen[(d, i)] += batch["epoch"] == 0
                    else:
                        assert labels[pos + k] == IGNORE, (d, i)
                # A row's last token (checked to be IGNORE above): counted to prove rows do end in windows.
                boundaries += batch["epoch"] == 0 and e == len(row["input_ids"])
                pos += e - s
            assert all(x == IGNORE for x in labels[pos:start + cfg.seq_len])  # padding
            pos = start + cfg.seq_len
    assert seen == expected
    assert boundaries == shard_set.num_docs
