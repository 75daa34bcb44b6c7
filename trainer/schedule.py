"""Learning-rate schedules: linear warmup, then cosine or WSD down to ``lr * min_lr_ratio``.

Mid-training ends at a low LR, so both schedules finish at the configured floor
instead of zero. WSD (warmup-stable-decay) holds the peak LR and decays linearly
over the last ``decay_fraction`` of the steps.
"""

from __future__ import annotations

import math

import torch

from trainer.config import TrainConfig


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of ``cfg.lr`` for optimizer step ``step`` (0-based)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    floor = cfg.min_lr_ratio
    if cfg.schedule == "cosine":
        span = max(1, cfg.steps - cfg.warmup_steps - 1)
        p = min(1.0, (step - cfg.warmup_steps) / span)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * p))
    decay_steps = max(1, min(cfg.steps - cfg.warmup_steps, round(cfg.decay_fraction * cfg.steps)))
    decay_start = cfg.steps - decay_steps
    if step < decay_start:
        return 1.0
    p = min(1.0, (step - decay_start + 1) / decay_steps)
    return 1.0 - (1.0 - floor) * p


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))
