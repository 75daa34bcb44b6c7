"""The training loop: ``train_main`` (behind ``trajforge train``) and ``python -m trainer.train``.

One optimizer step takes ``grad_accum`` packed micro-batches per rank. The loss
is the mean over the step's loss tokens across all micro-batches and ranks
(each micro-batch's summed loss is scaled by world / global loss tokens, or by
the global loss weight under ``inserted_weight``, and DDP/FSDP average gradients
over ranks), so the gradient does not depend on how tokens fall into
micro-batches. Re-running with the same ``out`` resumes from its latest checkpoint.

    torchrun --nproc-per-node 2 -m trainer.train --config F --shards DIR --out DIR
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import torch

from trainer import checkpoint
from trainer.config import TrainConfig, load_train_config
from trainer.loader import PackedLoader
from trainer.model import MLATransformer, count_parameters, training_flops
from trainer.runtime import Runtime, all_sum, init_runtime, peak_flops, shutdown, use_bf16, wrap
from trainer.schedule import make_scheduler
from trainer.shards import ShardSet


def _optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    # No weight decay on norms (1-D gains): decaying them toward 0 only fights the normalisation.
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=device.type == "cuda")


def _micro_step(model, batch, scale: float, rt: Runtime, bf16: bool, sync: bool) -> float:
    dev = rt.device
    no_sync = model.no_sync if hasattr(model, "no_sync") and not sync else contextlib.nullcontext
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2: reduce-scatter only on the last micro-batch
        model.set_requires_gradient_sync(sync)
    weights = batch.get("loss_weights")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 and dev.type == "cuda" \
        else contextlib.nullcontext()
    with no_sync(), autocast:
        loss_sum = model(batch["input_ids"].to(dev, non_blocking=True),
                         batch["position_ids"].to(dev, non_blocking=True),
                         batch["cu_seqlens"].to(dev, non_blocking=True), batch["max_seqlen"],
                         labels=batch["labels"].to(dev, non_blocking=True), reduction="sum",
                         weights=None if weights is None else weights.to(dev, non_blocking=True))
        (loss_sum * scale).backward()
    return float(loss_sum.detach())


class _Log:
    """Rank 0's progress bar and ``train_log.jsonl``; silent elsewhere."""

    def __init__(self, rt: Runtime, out: Path, total: int, start: int, quiet: bool):
        self.on = rt.is_main
        self.file = open(out / "train_log.jsonl", "a") if self.on else None
        self.progress = None
        if self.on and not quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeRemainingColumn())
            self.progress.start()
            self.task = self.progress.add_task("train", total=total, completed=start, info="")

    def step(self, record: dict, show: bool) -> None:
        if not self.on:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.progress is not None:
            info = f"loss {record['loss']:.4f}  lr {record['lr']:.2e}  {record['tokens_per_s']:,.0f} tok/s"
            if record.get("mfu") is not None:
                info += f"  MFU {100 * record['mfu']:.1f}%"
            self.progress.update(self.task, completed=record["step"], info=info)
            if show:
                self.progress.console.log(f"step {record['step']}: {info}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.file is not None:
            self.file.close()


def train_main(config_path: str | Path | TrainConfig, shards_dir: str | Path, out_dir: str | Path,
               tokenizer: str | None = None, *, stop_after: int | None = None, quiet: bool = False) -> dict:
    """Train (or resume) and return a summary: per-step losses of this invocation, throughput, etc.

    ``stop_after`` ends the run after that many total steps as if killed right after a checkpoint
    (checkpoint written first) — for resume tests. Collective across ranks under torchrun.
    """
    cfg = config_path if isinstance(config_path, TrainConfig) else load_train_config(config_path)
    out = Path(out_dir)
    rt = init_runtime(cfg.cpu_threads)
    try:
        return _train(cfg, Path(shards_dir), out, tokenizer, rt, stop_after, quiet)
    finally:
        shutdown(rt)


def _train(cfg: TrainConfig, shards_dir: Path, out: Path, tokenizer, rt: Runtime, stop_after, quiet) -> dict:
    mcfg = cfg.model_cfg
    shards = ShardSet.open(shards_dir, tokenizer, vocab_size=mcfg.vocab_size,
                           token_exact_only=cfg.token_exact_only, inserted_weight=cfg.inserted_weight)
    out.mkdir(parents=True, exist_ok=True)
    if rt.is_main:
        (out / "config.json").write_text(cfg.model_dump_json(indent=2))
    torch.manual_seed(cfg.seed)  # same init on every rank (DDP also broadcasts; FSDP does not)
    model = MLATransformer(mcfg)
    if cfg.compile:
        # Per block: the 32 identical blocks compile once, and the attention kernel stays outside
        # the graphs (see trainer.model._attention). On H100 this took youtu-2b from 28% to 40% MFU.
        for layer in model.layers:
            layer.compile()
    model = wrap(model, cfg, rt)
    optimizer = _optimizer(model, cfg, rt.device)
    scheduler = make_scheduler(optimizer, cfg)
    loader = PackedLoader(shards, seq_len=cfg.seq_len, micro_batch=cfg.micro_batch, seed=cfg.seed,
                          rank=rt.rank, world_size=rt.world, num_workers=cfg.num_workers,
                          pack_group=cfg.pack_group, pin_memory=rt.device.type == "cuda")
    step = 0
    ckpt_root = out / "checkpoints"
    last = checkpoint.latest(ckpt_root)
    if last is not None:
        step = checkpoint.load(last, model, optimizer, scheduler, loader)["step"]
    n_params, bf16, peak = count_parameters(mcfg), use_bf16(cfg, rt.device), peak_flops(cfg, rt.device)
    log = _Log(rt, out, cfg.steps, step, quiet)
    losses, windows, tok_s = [], [], []
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    try:
        while step < end:
            t0 = time.perf_counter()
            batches = [next(loader) for _ in range(cfg.grad_accum)]
            # Normalise by the step's total loss weight (= its loss-token count unless inserted_weight).
            local_weight = sum(b["loss_weight"] for b in batches)
            local_loss_tokens = sum(b["num_loss_tokens"] for b in batches)
            global_weight, global_loss_tokens = all_sum([float(local_weight), float(local_loss_tokens)], rt)
            denom = global_weight if global_weight > 0 else 1.0
            scale = rt.world / denom
            loss_sum = sum(_micro_step(model, b, scale, rt, bf16, sync=i == len(batches) - 1)
                           for i, b in enumerate(batches))
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            pairs = sum(b["attended_pairs"] for b in batches)
            tokens = cfg.grad_accum * loader.tokens_per_batch
            total_loss, total_tokens, total_pairs = all_sum([loss_sum, float(tokens), float(pairs)], rt)
            if rt.device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            loss = total_loss / denom
            flops = training_flops(mcfg, n_params, int(total_tokens), int(total_pairs))
            record = {"step": step, "loss": loss, "lr": scheduler.get_last_lr()[0],
                      "grad_norm": float(grad_norm), "tokens_per_s": total_tokens / dt,
                      "loss_tokens": int(global_loss_tokens), "epoch": int(batches[-1]["epoch"]),
                      "mfu": flops / dt / (peak * rt.world) if peak else None}
            losses.append(loss)
            tok_s.append(record["tokens_per_s"])
            windows.extend(int(w) for b in batches for w in b["window_ids"])
            log.step(record, show=step % max(1, cfg.log_every) == 0 or step == end)
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == end:
                checkpoint.save(ckpt_root, step, model, optimizer, scheduler, loader,
                                extra={"loss": loss}, keep=cfg.keep_checkpoints)
    finally:
        log.close()
        loader.close()
    steady = tok_s[1:] or tok_s  # the first step pays for worker start-up and warm-up
    return {"steps": step, "losses": losses, "windows": windows, "rank": rt.rank, "world_size": rt.world,
            "params": n_params, "skipped_rows": shards.skipped_rows, "tokens_per_s": sum(steady) / len(steady) if steady else 0.0,
            "out": str(out)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the MLA model on trajforge shards (resumes from --out).")
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--shards", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--tokenizer", default=None, help="must match the shards' manifest")
    args = parser.parse_args(argv)
    from trainer.shards import ShardError

    try:
        result = train_main(args.config, args.shards, args.out, tokenizer=args.tokenizer)
    except (ShardError, FileNotFoundError, ValueError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    if result["losses"]:
        print(f"done: {result['steps']} steps, last loss {result['losses'][-1]:.4f}, "
              f"{result['tokens_per_s']:,.0f} tokens/s; checkpoints in {args.out}/checkpoints")
    return 0


if __name__ == "__main__":
    sys.exit(main())
