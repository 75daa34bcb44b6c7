"""Model presets and the training config (YAML -> pydantic).

``MODELS`` holds the named architectures: ``youtu-2b`` (the Youtu-LLM-sized MLA
model, ~1.96B parameters) and ``tiny`` (CPU smoke runs and tests). A training
YAML names a preset under ``model:`` and may override any of its fields under
``model_overrides:``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class ModelConfig(BaseModel):
    """A DeepSeek-V3-style MLA decoder (see ``trainer.model``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_layers: int
    hidden: int
    mlp_hidden: int
    n_heads: int
    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_dim: int
    qk_rope_dim: int
    v_dim: int
    vocab_size: int
    rope_theta: float = 10_000.0
    norm_eps: float = 1e-6
    init_std: float = 0.02

    @property
    def qk_dim(self) -> int:
        return self.qk_nope_dim + self.qk_rope_dim

    @model_validator(mode="after")
    def _even_rope(self) -> "ModelConfig":
        if self.qk_rope_dim % 2:
            raise ValueError("qk_rope_dim must be even (rotary pairs)")
        return self


MODELS: dict[str, ModelConfig] = {
    "youtu-2b": ModelConfig(
        n_layers=32, hidden=2048, mlp_hidden=6144, n_heads=16, q_lora_rank=1536, kv_lora_rank=512,
        qk_nope_dim=128, qk_rope_dim=64, v_dim=128, vocab_size=128256, rope_theta=1.6e6,
    ),
    # Vocab covers the embedded SmolLM2 tokenizer (49152 ids) so `make demo` shards train as they are.
    # Head dims stay kernel-friendly (48 = 32 + 16, 32) so the Triton path also runs it on a GPU.
    "tiny": ModelConfig(
        n_layers=2, hidden=128, mlp_hidden=384, n_heads=4, q_lora_rank=96, kv_lora_rank=64,
        qk_nope_dim=32, qk_rope_dim=16, v_dim=32, vocab_size=49152, rope_theta=10_000.0,
    ),
}


def model_config(name: str, **overrides) -> ModelConfig:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name].model_copy(update=overrides) if overrides else MODELS[name]


class TrainConfig(BaseModel):
    """One training run. Token budget per optimizer step = micro_batch * seq_len * grad_accum * world."""

    model_config = ConfigDict(extra="forbid")

    model: str = "tiny"
    model_overrides: dict = Field(default_factory=dict)

    # Optimizer and schedule.
    lr: float = 3e-4
    min_lr_ratio: float = 0.1  # final LR = lr * min_lr_ratio (mid-training decays low)
    warmup_steps: int = 10
    schedule: Literal["cosine", "wsd"] = "cosine"
    decay_fraction: float = 0.2  # wsd: last fraction of steps spent decaying
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0

    # Data.
    seq_len: int = 512  # packed window length
    micro_batch: int = 4  # windows per micro-step per rank
    grad_accum: int = 1
    num_workers: int = 0
    pack_group: int = 8192  # documents packed together (best-fit decreasing) per group
    # Token provenance (schema 2 shards; both refuse schema 1 shards). Defaults train on loss_mask as written.
    token_exact_only: bool = False  # skip rows tokenised from text (token_exact false)
    inserted_weight: float | None = None  # loss weight of every inserted token (source 3); 0 drops them

    # Run.
    steps: int = 100
    seed: int = 0
    checkpoint_every: int = 50  # 0: only at the end
    keep_checkpoints: int = 2
    log_every: int = 10
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    parallel: Literal["ddp", "fsdp"] = "ddp"  # fsdp: FSDP2 fully_shard (CUDA/nccl or CPU/gloo)
    compile: bool = False
    cpu_threads: int | None = None  # CPU only; None: cores / local ranks (oversubscribed OpenMP crawls)
    peak_tflops: float | None = None  # for MFU; None: guessed from the device

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        model_config(self.model, **self.model_overrides)  # fail early on a bad name/override
        if self.warmup_steps > self.steps:
            raise ValueError("warmup_steps exceeds steps")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError("min_lr_ratio must be in [0, 1]")
        if self.inserted_weight is not None and not 0.0 <= self.inserted_weight < float("inf"):
            raise ValueError("inserted_weight must be a finite number >= 0 (or unset: loss_mask as written)")
        return self

    @property
    def model_cfg(self) -> ModelConfig:
        return model_config(self.model, **self.model_overrides)


def load_train_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return TrainConfig.model_validate(data)
