"""Atomic, resumable checkpoints: model, optimizer, scheduler, loader and RNG state.

A checkpoint is a folder ``<out>/checkpoints/step-XXXXXXXX`` written first under
a ``.tmp-`` name and renamed when complete, so a killed run never leaves a
half-written checkpoint that resume would pick. Model and optimizer are saved as
full (unsharded) state dicts through ``torch.distributed.checkpoint.state_dict``,
which works the same for a plain module, DDP and FSDP2; every rank saves its own
RNG state. Ranks share one filesystem (one node, or a shared mount).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

PREFIX = "step-"


def _dist() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier() -> None:
    if _dist()[1] > 1:
        dist.barrier()


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def latest(ckpt_root: Path) -> Path | None:
    done = sorted(p for p in Path(ckpt_root).glob(f"{PREFIX}*") if p.is_dir() and (p / "meta.json").exists())
    return done[-1] if done else None


def save(ckpt_root: Path, step: int, model, optimizer, scheduler, loader, extra: dict | None = None,
         keep: int = 2) -> Path:
    """Collective: every rank calls it. Returns the final folder."""
    rank, world = _dist()
    ckpt_root = Path(ckpt_root)
    final = ckpt_root / f"{PREFIX}{step:08d}"
    tmp = ckpt_root / f".tmp-{PREFIX}{step:08d}"
    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_sd = get_model_state_dict(model, options=opts)  # collective under FSDP
    optim_sd = get_optimizer_state_dict(model, optimizer, options=opts)
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier()
    torch.save(rng_state(), tmp / f"rng-rank{rank}.pt")
    if rank == 0:
        torch.save(model_sd, tmp / "model.pt")
        torch.save(optim_sd, tmp / "optim.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        meta = {"step": step, "world_size": world, "loader": loader.state_dict(), **(extra or {})}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))  # written last: marks completeness
    _barrier()
    if rank == 0:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in sorted(p for p in ckpt_root.glob(f"{PREFIX}*") if p.is_dir())[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return final


def load(path: Path, model, optimizer, scheduler, loader) -> dict:
    """Restore everything from ``path`` (every rank reads the full files); returns the meta dict."""
    rank, world = _dist()
    path = Path(path)
    meta = json.loads((path / "meta.json").read_text())
    opts = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, torch.load(path / "model.pt", map_location="cpu", weights_only=True),
                         options=opts)
    set_optimizer_state_dict(model, optimizer, torch.load(path / "optim.pt", map_location="cpu",
                                                          weights_only=True), options=opts)
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    loader.load_state_dict(meta["loader"])
    rng_file = path / f"rng-rank{rank}.pt"
    if rng_file.exists():  # a resume on more ranks than saved keeps fresh RNG on the new ones
        set_rng_state(torch.load(rng_file, weights_only=False))
    return meta
