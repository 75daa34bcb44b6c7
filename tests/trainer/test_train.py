"""Training loop: schedules, bit-identical resume, 2-process DDP (gloo), CLI errors, shipped config."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.trainer.shard_factory import TOKENIZER, pattern_docs, write_shards
from trainer.config import TrainConfig, load_train_config
from trainer.schedule import lr_factor
from trainer.shards import TokenizerMismatch
from trainer.train import train_main

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"vocab_size": 64, "hidden": 64, "mlp_hidden": 128, "n_heads": 2, "q_lora_rank": 32,
         "kv_lora_rank": 32, "qk_nope_dim": 16, "qk_rope_dim": 16, "v_dim": 16}


def _cfg(**kw) -> TrainConfig:
    args = dict(model="tiny", model_overrides=SMALL, steps=6, warmup_steps=2, lr=3e-3, seq_len=64,
                micro_batch=2, grad_accum=2, checkpoint_every=3, cpu_threads=1, log_every=100)
    args.update(kw)
    return TrainConfig(**args)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    write_shards(d, pattern_docs(40, length=50, vocab=64), rows_per_shard=10)
    return d


def test_schedules_warm_up_and_end_at_the_floor():
    for schedule in ("cosine", "wsd"):
        cfg = TrainConfig(steps=100, warmup_steps=10, schedule=schedule, min_lr_ratio=0.05, decay_fraction=0.2)
        f = [lr_factor(s, cfg) for s in range(100)]
        assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
        assert f[-1] == pytest.approx(0.05)
        assert all(a >= b - 1e-12 for a, b in zip(f[9:], f[10:]))  # never rises after warmup
    wsd = TrainConfig(steps=100, warmup_steps=10, schedule="wsd", decay_fraction=0.2)
    assert [lr_factor(s, wsd) for s in (10, 50, 79)] == [1.0, 1.0, 1.0] and lr_factor(80, wsd) < 1.0


def test_resume_gives_bit_identical_losses(shards, tmp_path):
    whole = train_main(_cfg(), shards, tmp_path / "whole", quiet=True)
    assert whole["steps"] == 6 and len(whole["losses"]) == 6
    first = train_main(_cfg(), shards, tmp_path / "split", quiet=True, stop_after=4)  # ckpt at 3 and 4
    ckpts = tmp_path / "split" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["step-00000003", "step-00000004"]  # no temp left
    # A crash after step 4's checkpoint but before anything else: resume picks the latest.
    second = train_main(_cfg(), shards, tmp_path / "split", quiet=True)
    assert first["losses"] + second["losses"] == whole["losses"]  # exact float equality
    assert first["windows"] + second["windows"] == whole["windows"]
    log = [json.loads(line) for line in (tmp_path / "split" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]


def test_training_lowers_the_loss(shards, tmp_path):
    r = train_main(_cfg(steps=30, checkpoint_every=0, grad_accum=1), shards, tmp_path, quiet=True)
    assert sum(r["losses"][-5:]) / 5 < r["losses"][0] - 0.4, r["losses"]  # ln(64) = 4.16 at the start


def test_tokenizer_mismatch_refused(shards, tmp_path):
    with pytest.raises(TokenizerMismatch):
        train_main(_cfg(), shards, tmp_path, tokenizer="gpt2", quiet=True)
    assert not (tmp_path / "checkpoints").exists()


def test_cli_errors_are_one_line(shards, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: tiny\nsteps: 2\nwarmup_steps: 0\n")
    proc = subprocess.run([sys.executable, "-m", "trainer.train", "--config", str(cfg), "--shards", str(shards),
                           "--out", str(tmp_path / "o"), "--tokenizer", "gpt2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "does not match the shards' tokenizer" in proc.stderr


def test_shipped_tiny_config_loads():
    cfg = load_train_config(ROOT / "configs" / "train-tiny.yaml")
    assert cfg.model == "tiny" and cfg.steps >= 50
    assert cfg.token_exact_only is False and cfg.inserted_weight is None  # the shards' loss_mask as written


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, shards: str, out: str, results: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    r = train_main(_cfg(steps=3, checkpoint_every=2), shards, out, quiet=True)
    Path(results, f"rank{rank}.json").write_text(json.dumps(r))


@pytest.mark.slow  # two fresh interpreters importing torch: ~10 s idle, much more on a loaded machine
def test_two_process_ddp_gloo(shards, tmp_path):
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), str(shards), str(tmp_path / "out"),
                                                   str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert r0["steps"] == r1["steps"] == 3 and r0["world_size"] == 2
    assert r0["losses"] == r1["losses"]  # the global loss, reduced across ranks
    assert set(r0["windows"]).isdisjoint(r1["windows"])
    assert sorted(r0["windows"] + r1["windows"]) == list(range(3 * 2 * 2 * 2))  # steps·accum·batch·world
    assert (tmp_path / "out" / "checkpoints" / "step-00000003" / "rng-rank1.pt").exists()
