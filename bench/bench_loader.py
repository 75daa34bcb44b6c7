"""Benchmark: packed shard loader throughput vs the model's training consumption.

CPU: tokens/s the loader produces (one process, no workers — the conservative
figure; workers multiply it) against tokens/s the ``tiny`` model consumes in
training steps (forward, backward, AdamW) on the same batch shape. Goal: the
loader is at least 10x faster, so it never starves the trainer.

GPU (skipped on CPU): ``youtu-2b`` training-step MFU in bf16 with the Triton MLA
kernel, one device, packed documents (goal >= 45% on H100), blocks compiled with torch.compile.

    python -m bench.bench_loader
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SEQ_LEN, MICRO_BATCH = 512, 4
GOAL_RATIO = 10.0
GOAL_MFU_H100 = 0.45


def _write_shards(root: Path, n_docs: int = 3000, vocab: int = 49152) -> None:
    from tests.trainer.shard_factory import write_shards

    rng = np.random.default_rng(0)
    # Trajectory-like lengths: mostly a few hundred tokens, a long tail past the window.
    lengths = np.clip(rng.lognormal(5.8, 0.8, n_docs).astype(int), 8, 8000)
    docs = []
    for n in lengths:
        mask = np.zeros(n, dtype=int)
        mask[n // 3:] = 1
        docs.append((rng.integers(0, vocab, n).tolist(), mask.tolist()))
    write_shards(root, docs, rows_per_shard=500)


def _loader_tokens_per_s(shards_dir: Path, batches: int = 200) -> float:
    from trainer.loader import PackedLoader
    from trainer.shards import ShardSet

    loader = PackedLoader(ShardSet.open(shards_dir), seq_len=SEQ_LEN, micro_batch=MICRO_BATCH, seed=0)
    next(loader)  # plan and first shard decode are one-off costs
    t0 = time.perf_counter()
    for _ in range(batches):
        next(loader)
    return batches * SEQ_LEN * MICRO_BATCH / (time.perf_counter() - t0)


def _model_tokens_per_s(shards_dir: Path, steps: int = 4) -> float:
    from trainer.config import MODELS
    from trainer.loader import PackedLoader
    from trainer.model import MLATransformer
    from trainer.shards import ShardSet

    torch.manual_seed(0)
    model = MLATransformer(MODELS["tiny"])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = PackedLoader(ShardSet.open(shards_dir), seq_len=SEQ_LEN, micro_batch=MICRO_BATCH, seed=0)
    batches = [next(loader) for _ in range(steps + 1)]

    def step(b):
        loss = model(b["input_ids"], b["position_ids"], b["cu_seqlens"], b["max_seqlen"], labels=b["labels"])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step(batches[0])  # warm-up
    t0 = time.perf_counter()
    for b in batches[1:]:
        step(b)
    return steps * SEQ_LEN * MICRO_BATCH / (time.perf_counter() - t0)


def _gpu_mfu(shards_dir: Path, seq_len: int = 4096, micro_batch: int = 2, steps: int = 8) -> dict:
    from trainer.config import MODELS, TrainConfig
    from trainer.loader import PackedLoader
    from trainer.model import MLATransformer, count_parameters, training_flops
    from trainer.runtime import peak_flops
    from trainer.shards import ShardSet

    cfg = MODELS["youtu-2b"]
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = MLATransformer(cfg).to(dev)
    for layer in model.layers:  # as `compile: true` does in training (eager measured 28% MFU on H100)
        layer.compile()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    loader = PackedLoader(ShardSet.open(shards_dir), seq_len=seq_len, micro_batch=micro_batch, seed=0,
                          pin_memory=True)
    n_params = count_parameters(cfg)
    peak = peak_flops(TrainConfig(), dev)

    def step(b):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(b["input_ids"].to(dev), b["position_ids"].to(dev), b["cu_seqlens"].to(dev),
                         b["max_seqlen"], labels=b["labels"].to(dev))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):  # compile and autotune
        step(next(loader))
    batches = [next(loader) for _ in range(steps)]
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for b in batches:
        step(b)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    tokens = steps * seq_len * micro_batch
    flops = training_flops(cfg, n_params, tokens, sum(b["attended_pairs"] for b in batches))
    return {"device": torch.cuda.get_device_name(dev), "seq_len": seq_len, "micro_batch": micro_batch,
            "tokens_per_s": tokens / dt, "tflops": flops / dt / 1e12,
            "mfu": flops / dt / peak if peak else None, "peak_tflops": peak / 1e12 if peak else None,
            "max_memory_gib": torch.cuda.max_memory_allocated(dev) / 2**30}


def run(model_steps: int | None = None) -> dict:
    """``model_steps`` (env ``BENCH_LOADER_MODEL_STEPS``, default 2): timed CPU training steps per thread count."""
    model_steps = model_steps or int(os.environ.get("BENCH_LOADER_MODEL_STEPS", "2"))
    with tempfile.TemporaryDirectory() as tmp:
        shards = Path(tmp) / "shards"
        _write_shards(shards)
        result: dict = {"seq_len": SEQ_LEN, "micro_batch": MICRO_BATCH,
                        "torch_threads": torch.get_num_threads()}
        result["loader_tokens_per_s"] = _loader_tokens_per_s(shards)
        # The model gets its best thread count (on a shared CPU one thread can beat all of them),
        # so the ratio is never flattered by a slowed-down model.
        threads = torch.get_num_threads()
        per_threads = {}
        for n in sorted({1, threads}):
            torch.set_num_threads(n)
            per_threads[n] = _model_tokens_per_s(shards, steps=model_steps)
        torch.set_num_threads(threads)
        result["tiny_train_tokens_per_s_by_threads"] = per_threads
        result["tiny_train_tokens_per_s"] = max(per_threads.values())
        result["ratio"] = result["loader_tokens_per_s"] / result["tiny_train_tokens_per_s"]
        result["figures"] = [
            {"figure": "loader tokens/s (1 process)", "value": result["loader_tokens_per_s"], "goal": "-"},
            {"figure": "tiny model train tokens/s (CPU)", "value": result["tiny_train_tokens_per_s"], "goal": "-"},
            {"figure": "loader / model", "value": result["ratio"], "goal": f">= {GOAL_RATIO:g}x"},
        ]
        if torch.cuda.is_available():
            gpu = _gpu_mfu(shards)
            result["youtu_2b"] = gpu
            result["figures"].append({"figure": f"youtu-2b MFU ({gpu['device']})", "value": gpu["mfu"],
                                      "goal": f">= {GOAL_MFU_H100:.0%} on H100"})
        else:
            reason = "no CUDA GPU here (torch.cuda.is_available() is False)"
            result["youtu_2b"] = {"skipped": reason}
            result["figures"].append({"figure": "youtu-2b training MFU (GPU)", "value": None,
                                      "goal": f">= {GOAL_MFU_H100:.0%} on H100", "skipped": reason})
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, default=str))
