"""Process-level setup for training: torchrun environment, device, parallel wrapping, peak FLOPs.

``torchrun`` (or any launcher) sets RANK / WORLD_SIZE / LOCAL_RANK; without
them the run is a single process. The process group is gloo on CPU and nccl on
CUDA. ``wrap`` applies DDP, or FSDP2 (``fully_shard`` per block, then the root)
when the config asks for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from trainer.config import TrainConfig

# Dense bf16 tensor-core peaks (TFLOPS) by device-name substring, for MFU.
_PEAKS = {"H200": 989.0, "H100": 989.0, "H800": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0,
          "4090": 165.0, "A10": 125.0}


@dataclass
class Runtime:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def init_runtime(cpu_threads: int | None = None) -> Runtime:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        if cpu_threads or local_world > 1:
            torch.set_num_threads(cpu_threads or max(1, (os.cpu_count() or 1) // local_world))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    return Runtime(rank, world, local_rank, device)


def shutdown(rt: Runtime) -> None:
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()


def use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.precision == "bf16":
        return True
    return cfg.precision == "auto" and device.type == "cuda"


def wrap(model: torch.nn.Module, cfg: TrainConfig, rt: Runtime) -> torch.nn.Module:
    """Move to the device and apply the configured data parallelism."""
    model = model.to(rt.device)
    if cfg.parallel == "fsdp":
        # FSDP2 runs on CPU with gloo too (torch 2.13; proven against DDP in tests/trainer/test_fsdp.py).
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        # Params gathered in bf16 for compute, gradients reduced in fp32: the usual mid-training setup.
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) \
            if use_bf16(cfg, rt.device) else MixedPrecisionPolicy()
        for block in model.layers:
            fully_shard(block, mp_policy=mp)
        fully_shard(model, mp_policy=mp)
        return model
    if rt.distributed:
        ids = [rt.local_rank] if rt.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return model


def peak_flops(cfg: TrainConfig, device: torch.device) -> float | None:
    """Peak FLOP/s of one device for MFU; None when unknown (CPU without ``peak_tflops``)."""
    if cfg.peak_tflops:
        return cfg.peak_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in _PEAKS.items():
        if key in name:
            return tflops * 1e12 if use_bf16(cfg, device) else tflops * 1e12 / 2
    return None


def all_sum(values: list[float], rt: Runtime) -> list[float]:
    """Sum small scalars over ranks (one collective)."""
    if not rt.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=rt.device)
    dist.all_reduce(t)
    return t.tolist()
