"""Fused MLA attention for the trainer: Triton kernel on CUDA, pure-torch reference elsewhere.

``mla_attention`` is the contract in ``shared/DESIGN.md`` ("Trainer kernel contract"):
varlen packed q, k (total, heads, 192), v (total, heads, 128) and int32
``cu_seqlens``; returns (total, heads, 128); differentiable.
"""

from __future__ import annotations

import os

import torch

from .reference import mla_attention_reference

__all__ = ["mla_attention", "mla_attention_reference"]


def _interpret_requested() -> bool:
    # Must match what triton saw when trainer.kernels.mla_triton was first imported.
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def mla_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_seqlen: int,
    softmax_scale: float | None = None,
    causal: bool = True,
) -> torch.Tensor:
    """Attention within each packed document.

    CUDA tensors run the Triton kernel. CPU tensors run the Triton interpreter
    when ``TRITON_INTERPRET=1`` was set before import (tests), else the
    reference, which is much faster on CPU than the interpreter.
    ``cu_seqlens[-1]`` must equal ``q.shape[0]``; ``max_seqlen`` bounds every document.
    """
    if q.is_cuda or _interpret_requested():
        # Imported lazily so CPU-only installs never need a working triton.
        from .mla_triton import mla_attention_triton

        return mla_attention_triton(q, k, v, cu_seqlens, max_seqlen, softmax_scale, causal)
    return mla_attention_reference(q, k, v, cu_seqlens, max_seqlen, softmax_scale, causal)
