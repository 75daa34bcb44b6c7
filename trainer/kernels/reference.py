"""Pure-torch reference for varlen causal MLA attention.

The ground truth the Triton kernel is tested against, and the path the model
takes on CPU. Layout as in flash-attn's varlen API: ``q``, ``k`` are
(total_tokens, heads, 192) — 128 no-position + 64 rotary dims, concatenated —
``v`` is (total_tokens, heads, 128), and ``cu_seqlens`` (int32, batch+1) marks
document boundaries; a token attends only to tokens of its own document.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Below this many packed tokens one SDPA call with a block-diagonal mask beats a
# Python loop over documents (many short documents per window is the common
# case); above it the (T, T) mask costs more memory than the loop costs time.
_MASKED_MAX_TOKENS = 4096


def mla_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens: torch.Tensor,
    max_seqlen: int | None = None,
    softmax_scale: float | None = None,
    causal: bool = True,
    *,
    upcast: bool = True,
) -> torch.Tensor:
    """Attention within each document of a packed batch; returns (total, heads, dv).

    Computes in fp32 and returns the input dtype. ``upcast=False`` computes in the
    input dtype instead — only used to measure PyTorch's own low-precision error.
    Differentiable by autograd. ``max_seqlen`` is accepted for API parity.
    """
    del max_seqlen
    if q.dim() != 3 or k.shape[:2] != q.shape[:2] or v.shape[:2] != q.shape[:2]:
        raise ValueError(f"expected (total, heads, dim) tensors, got {q.shape}, {k.shape}, {v.shape}")
    scale = softmax_scale if softmax_scale is not None else q.shape[-1] ** -0.5
    dtype = q.dtype
    bounds = [int(x) for x in cu_seqlens.tolist()]
    total = q.shape[0]
    if bounds[0] != 0 or bounds[-1] != total:
        raise ValueError(f"cu_seqlens must run from 0 to total_tokens={total}, got {bounds[0]}..{bounds[-1]}")
    if not upcast:
        return _attention_in_dtype(q, k, v, bounds, scale, causal)
    q, k, v = q.float(), k.float(), v.float()

    # (heads, tokens, dim) is SDPA's (batch..., L, E) layout.
    qh, kh, vh = (t.transpose(0, 1) for t in (q, k, v))
    if len(bounds) > 2 and total <= _MASKED_MAX_TOKENS:
        out = F.scaled_dot_product_attention(
            qh, kh, vh, attn_mask=_block_mask(bounds, causal, q.device), scale=scale
        )
    else:
        parts = [
            F.scaled_dot_product_attention(
                qh[:, s:e], kh[:, s:e], vh[:, s:e], is_causal=causal, scale=scale
            )
            for s, e in zip(bounds[:-1], bounds[1:])
            if e > s
        ]
        out = torch.cat(parts, dim=1) if parts else vh.new_zeros(vh.shape)
    return out.transpose(0, 1).to(dtype)


def _attention_in_dtype(q, k, v, bounds, scale, causal):
    """Plain PyTorch ops in the input dtype: every matmul and the softmax output rounded to it.

    SDPA can't serve here: its math backend upcasts half types to fp32 inside.
    """
    parts = []
    for s, e in zip(bounds[:-1], bounds[1:]):
        if e == s:
            continue
        scores = torch.einsum("thd,shd->hts", q[s:e] * scale, k[s:e])
        if causal:
            keep = torch.ones(e - s, e - s, dtype=torch.bool, device=q.device).tril()
            scores = scores.masked_fill(~keep, float("-inf"))
        parts.append(torch.einsum("hts,shd->thd", scores.softmax(dim=-1), v[s:e]))
    return torch.cat(parts, dim=0) if parts else v.new_zeros(v.shape)


def _block_mask(bounds: list[int], causal: bool, device: torch.device) -> torch.Tensor:
    """Boolean (T, T) mask: True where query row may attend key column."""
    total = bounds[-1]
    lengths = torch.tensor([e - s for s, e in zip(bounds[:-1], bounds[1:])], device=device)
    doc = torch.repeat_interleave(torch.arange(len(lengths), device=device), lengths)
    mask = doc[:, None] == doc[None, :]
    if causal:
        idx = torch.arange(total, device=device)
        mask &= idx[:, None] >= idx[None, :]
    return mask
