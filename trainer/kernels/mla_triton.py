"""Fused MLA attention in Triton: varlen, causal, forward and backward.

FlashAttention-2 scheme for the MLA head shape — q/k 192 dims (128 no-position
+ 64 rotary), v 128 dims — on flash-attn's packed varlen layout:

* forward: one program per (q block, head, document); online softmax in fp32,
  writes O and the base-2 log-sum-exp per row;
* backward: ``delta = rowsum(dO * O)``; a dK/dV kernel that walks the q blocks of
  its k block; a dQ kernel that walks the k blocks of its q block (no atomics).

192 is not a power of two, so q·k is two ``tl.dot``s: the leading ``D1`` (128)
dims and the trailing ``D2`` (64) dims, accumulated into one score tile.
Under ``TRITON_INTERPRET=1`` (decided when this module is imported) the kernels
run on CPU tensors with small fixed blocks; on a GPU they are autotuned.
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

# Same decision triton.jit made at import (older tritons have no ``knobs``).
_knobs = getattr(triton, "knobs", None)
INTERPRET = bool(_knobs.runtime.interpret) if _knobs is not None else (
    os.environ.get("TRITON_INTERPRET", "0") == "1")

_LOG2E = 1.4426950408889634
# Masked scores: finite so a fully-masked padding row never makes inf - inf = NaN.
_NEG = tl.constexpr(-1.0e30)


# --------------------------------------------------------------------------- forward
@triton.jit
def _fwd_inner(acc, l_i, m_i, q1, q2, k_ptrs1, k_ptrs2, v_ptrs, stride_kt, stride_vt,
               offs_m, offs_n, seqlen, lo, hi, qk_scale,
               MASK: tl.constexpr, CAUSAL: tl.constexpr, BLOCK_N: tl.constexpr,
               DOT_PREC: tl.constexpr):
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        if MASK:
            kmask = (cols < seqlen)[None, :]
            k1 = tl.load(k_ptrs1 + start_n * stride_kt, mask=kmask, other=0.0)
            k2 = tl.load(k_ptrs2 + start_n * stride_kt, mask=kmask, other=0.0)
            v = tl.load(v_ptrs + start_n * stride_vt, mask=(cols < seqlen)[:, None], other=0.0)
        else:
            k1 = tl.load(k_ptrs1 + start_n * stride_kt)
            k2 = tl.load(k_ptrs2 + start_n * stride_kt)
            v = tl.load(v_ptrs + start_n * stride_vt)
        qk = tl.dot(q1, k1, input_precision=DOT_PREC)
        qk = tl.dot(q2, k2, qk, input_precision=DOT_PREC)
        if MASK:
            keep = (cols < seqlen)[None, :]
            if CAUSAL:
                keep = keep & (offs_m[:, None] >= cols[None, :])
            qk = tl.where(keep, qk, _NEG)
        # Scale folded into the max and one FMA per score.
        m_ij = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        p = tl.math.exp2(qk * qk_scale - m_ij[:, None])
        alpha = tl.math.exp2(m_i - m_ij)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PREC)
        m_i = m_ij
    return acc, l_i, m_i


@triton.jit
def _fwd_kernel(Q, K, V, O, LSE, CU, qk_scale, total_tokens,
                stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh,
                stride_ot, stride_oh,
                CAUSAL: tl.constexpr, D1: tl.constexpr, D2: tl.constexpr, DV: tl.constexpr,
                DOT_PREC: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # Heaviest (last) causal q blocks are scheduled first to balance the tail.
    pid_m = tl.num_programs(0) - 1 - tl.program_id(0)
    h = tl.program_id(1)
    b = tl.program_id(2)
    start = tl.load(CU + b).to(tl.int64)
    seqlen = (tl.load(CU + b + 1) - tl.load(CU + b)).to(tl.int32)
    m0 = pid_m * BLOCK_M
    if m0 >= seqlen:
        return
    offs_m = m0 + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    d1 = tl.arange(0, D1)
    d2 = tl.arange(0, D2)
    dv = tl.arange(0, DV)
    row_ok = offs_m < seqlen

    q_base = Q + start * stride_qt + h * stride_qh
    q1 = tl.load(q_base + offs_m[:, None] * stride_qt + d1[None, :], mask=row_ok[:, None], other=0.0)
    q2 = tl.load(q_base + offs_m[:, None] * stride_qt + D1 + d2[None, :], mask=row_ok[:, None], other=0.0)
    # K is read transposed (dim, n) so q @ k needs no in-register transpose.
    k_base = K + start * stride_kt + h * stride_kh
    k_ptrs1 = k_base + offs_n[None, :] * stride_kt + d1[:, None]
    k_ptrs2 = k_base + offs_n[None, :] * stride_kt + D1 + d2[:, None]
    v_ptrs = V + start * stride_vt + h * stride_vh + offs_n[:, None] * stride_vt + dv[None, :]

    m_i = tl.full([BLOCK_M], _NEG, dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, DV], dtype=tl.float32)
    if CAUSAL:
        # Blocks strictly left of the diagonal need no mask (BLOCK_M % BLOCK_N == 0).
        full_hi = m0
        hi = tl.minimum(seqlen, m0 + BLOCK_M)
    else:
        full_hi = (seqlen // BLOCK_N) * BLOCK_N
        hi = seqlen
    acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q1, q2, k_ptrs1, k_ptrs2, v_ptrs, stride_kt, stride_vt,
                               offs_m, offs_n, seqlen, 0, full_hi, qk_scale,
                               False, CAUSAL, BLOCK_N, DOT_PREC)
    acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q1, q2, k_ptrs1, k_ptrs2, v_ptrs, stride_kt, stride_vt,
                               offs_m, offs_n, seqlen, full_hi, hi, qk_scale,
                               True, CAUSAL, BLOCK_N, DOT_PREC)
    acc = acc / l_i[:, None]
    o_ptrs = O + start * stride_ot + h * stride_oh + offs_m[:, None] * stride_ot + dv[None, :]
    tl.store(o_ptrs, acc.to(O.dtype.element_ty), mask=row_ok[:, None])
    # LSE is (heads, total) and in the base-2 scaled domain the backward uses.
    tl.store(LSE + h * total_tokens + start + offs_m, m_i + tl.math.log2(l_i), mask=row_ok)


# --------------------------------------------------------------------------- backward
@triton.jit
def _bwd_preprocess(O, DO, DELTA, total_tokens, stride_ot, stride_oh, stride_dot, stride_doh,
                    DV: tl.constexpr, BLOCK: tl.constexpr):
    h = tl.program_id(1)
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = rows < total_tokens
    dv = tl.arange(0, DV)
    o = tl.load(O + h * stride_oh + rows[:, None].to(tl.int64) * stride_ot + dv[None, :],
                mask=ok[:, None], other=0.0).to(tl.float32)
    do = tl.load(DO + h * stride_doh + rows[:, None].to(tl.int64) * stride_dot + dv[None, :],
                 mask=ok[:, None], other=0.0).to(tl.float32)
    tl.store(DELTA + h * total_tokens + rows, tl.sum(o * do, 1), mask=ok)


@triton.jit
def _bwd_dkdv_inner(dk1, dk2, dv_acc, k1, k2, v, q_base, do_base, lse_base, delta_base,
                    stride_qt, stride_dot, offs_n, seqlen, lo, hi, qk_scale,
                    MASK: tl.constexpr, CAUSAL: tl.constexpr, D1: tl.constexpr, D2: tl.constexpr,
                    DV: tl.constexpr, BLOCK_M: tl.constexpr, DOT_PREC: tl.constexpr):
    d1 = tl.arange(0, D1)
    d2 = tl.arange(0, D2)
    dv = tl.arange(0, DV)
    for start_m in range(lo, hi, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        if MASK:
            row_ok = offs_m < seqlen
            q1 = tl.load(q_base + offs_m[:, None] * stride_qt + d1[None, :], mask=row_ok[:, None], other=0.0)
            q2 = tl.load(q_base + offs_m[:, None] * stride_qt + D1 + d2[None, :], mask=row_ok[:, None],
                         other=0.0)
            do = tl.load(do_base + offs_m[:, None] * stride_dot + dv[None, :], mask=row_ok[:, None], other=0.0)
            lse = tl.load(lse_base + offs_m, mask=row_ok, other=0.0)
            delta = tl.load(delta_base + offs_m, mask=row_ok, other=0.0)
        else:
            q1 = tl.load(q_base + offs_m[:, None] * stride_qt + d1[None, :])
            q2 = tl.load(q_base + offs_m[:, None] * stride_qt + D1 + d2[None, :])
            do = tl.load(do_base + offs_m[:, None] * stride_dot + dv[None, :])
            lse = tl.load(lse_base + offs_m)
            delta = tl.load(delta_base + offs_m)
        # Transposed scores (n, m): this program owns rows of K.
        qkT = tl.dot(k1, tl.trans(q1), input_precision=DOT_PREC)
        qkT = tl.dot(k2, tl.trans(q2), qkT, input_precision=DOT_PREC)
        pT = tl.math.exp2(qkT * qk_scale - lse[None, :])
        if MASK:
            keep = (offs_m < seqlen)[None, :]
            if CAUSAL:
                keep = keep & (offs_m[None, :] >= offs_n[:, None])
            pT = tl.where(keep, pT, 0.0)
        dv_acc = tl.dot(pT.to(do.dtype), do, dv_acc, input_precision=DOT_PREC)
        dpT = tl.dot(v, tl.trans(do), input_precision=DOT_PREC)
        dsT = (pT * (dpT - delta[None, :])).to(q1.dtype)
        dk1 = tl.dot(dsT, q1, dk1, input_precision=DOT_PREC)
        dk2 = tl.dot(dsT, q2, dk2, input_precision=DOT_PREC)
    return dk1, dk2, dv_acc


@triton.jit
def _bwd_dkdv_kernel(Q, K, V, DO, LSE, DELTA, DK, DV_OUT, CU, sm_scale, qk_scale, total_tokens,
                     stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh,
                     stride_dot, stride_doh,
                     CAUSAL: tl.constexpr, D1: tl.constexpr, D2: tl.constexpr, DV: tl.constexpr,
                     DOT_PREC: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid_n = tl.program_id(0)
    h = tl.program_id(1)
    b = tl.program_id(2)
    start = tl.load(CU + b).to(tl.int64)
    seqlen = (tl.load(CU + b + 1) - tl.load(CU + b)).to(tl.int32)
    n0 = pid_n * BLOCK_N
    if n0 >= seqlen:
        return
    offs_n = n0 + tl.arange(0, BLOCK_N)
    d1 = tl.arange(0, D1)
    d2 = tl.arange(0, D2)
    dv = tl.arange(0, DV)
    col_ok = (offs_n < seqlen)[:, None]
    k_base = K + start * stride_kt + h * stride_kh
    k1 = tl.load(k_base + offs_n[:, None] * stride_kt + d1[None, :], mask=col_ok, other=0.0)
    k2 = tl.load(k_base + offs_n[:, None] * stride_kt + D1 + d2[None, :], mask=col_ok, other=0.0)
    v = tl.load(V + start * stride_vt + h * stride_vh + offs_n[:, None] * stride_vt + dv[None, :],
                mask=col_ok, other=0.0)

    q_base = Q + start * stride_qt + h * stride_qh
    do_base = DO + start * stride_dot + h * stride_doh
    lse_base = LSE + h * total_tokens + start
    delta_base = DELTA + h * total_tokens + start
    dk1 = tl.zeros([BLOCK_N, D1], dtype=tl.float32)
    dk2 = tl.zeros([BLOCK_N, D2], dtype=tl.float32)
    dv_acc = tl.zeros([BLOCK_N, DV], dtype=tl.float32)
    if CAUSAL:
        # q rows [n0, n0+BLOCK_N) straddle the diagonal (masked); rows after it
        # see the whole k block, masked only in the ragged last q block.
        diag_hi = tl.minimum(n0 + BLOCK_N, seqlen)
        full_hi = diag_hi + ((seqlen - diag_hi) // BLOCK_M) * BLOCK_M
        dk1, dk2, dv_acc = _bwd_dkdv_inner(dk1, dk2, dv_acc, k1, k2, v, q_base, do_base, lse_base, delta_base,
                                           stride_qt, stride_dot, offs_n, seqlen, n0, diag_hi, qk_scale,
                                           True, CAUSAL, D1, D2, DV, BLOCK_M, DOT_PREC)
    else:
        diag_hi = 0
        full_hi = (seqlen // BLOCK_M) * BLOCK_M
    dk1, dk2, dv_acc = _bwd_dkdv_inner(dk1, dk2, dv_acc, k1, k2, v, q_base, do_base, lse_base, delta_base,
                                       stride_qt, stride_dot, offs_n, seqlen, diag_hi, full_hi, qk_scale,
                                       False, CAUSAL, D1, D2, DV, BLOCK_M, DOT_PREC)
    dk1, dk2, dv_acc = _bwd_dkdv_inner(dk1, dk2, dv_acc, k1, k2, v, q_base, do_base, lse_base, delta_base,
                                       stride_qt, stride_dot, offs_n, seqlen, full_hi, seqlen, qk_scale,
                                       True, CAUSAL, D1, D2, DV, BLOCK_M, DOT_PREC)
    # dK and V share q's/v's layouts: DK like K, DV_OUT like V.
    dk_base = DK + start * stride_kt + h * stride_kh
    tl.store(dk_base + offs_n[:, None] * stride_kt + d1[None, :], (dk1 * sm_scale).to(DK.dtype.element_ty),
             mask=col_ok)
    tl.store(dk_base + offs_n[:, None] * stride_kt + D1 + d2[None, :], (dk2 * sm_scale).to(DK.dtype.element_ty),
             mask=col_ok)
    tl.store(DV_OUT + start * stride_vt + h * stride_vh + offs_n[:, None] * stride_vt + dv[None, :],
             dv_acc.to(DV_OUT.dtype.element_ty), mask=col_ok)


@triton.jit
def _bwd_dq_inner(dq1, dq2, q1, q2, do, lse, delta, k_base, v_base, stride_kt, stride_vt,
                  offs_m, seqlen, lo, hi, qk_scale,
                  MASK: tl.constexpr, CAUSAL: tl.constexpr, D1: tl.constexpr, D2: tl.constexpr,
                  DV: tl.constexpr, BLOCK_N: tl.constexpr, DOT_PREC: tl.constexpr):
    d1 = tl.arange(0, D1)
    d2 = tl.arange(0, D2)
    dv = tl.arange(0, DV)
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + tl.arange(0, BLOCK_N)
        if MASK:
            ok = (cols < seqlen)[:, None]
            k1 = tl.load(k_base + cols[:, None] * stride_kt + d1[None, :], mask=ok, other=0.0)
            k2 = tl.load(k_base + cols[:, None] * stride_kt + D1 + d2[None, :], mask=ok, other=0.0)
            v = tl.load(v_base + cols[:, None] * stride_vt + dv[None, :], mask=ok, other=0.0)
        else:
            k1 = tl.load(k_base + cols[:, None] * stride_kt + d1[None, :])
            k2 = tl.load(k_base + cols[:, None] * stride_kt + D1 + d2[None, :])
            v = tl.load(v_base + cols[:, None] * stride_vt + dv[None, :])
        qk = tl.dot(q1, tl.trans(k1), input_precision=DOT_PREC)
        qk = tl.dot(q2, tl.trans(k2), qk, input_precision=DOT_PREC)
        p = tl.math.exp2(qk * qk_scale - lse[:, None])
        if MASK:
            keep = (cols < seqlen)[None, :]
            if CAUSAL:
                keep = keep & (offs_m[:, None] >= cols[None, :])
            p = tl.where(keep, p, 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PREC)
        ds = (p * (dp - delta[:, None])).to(k1.dtype)
        dq1 = tl.dot(ds, k1, dq1, input_precision=DOT_PREC)
        dq2 = tl.dot(ds, k2, dq2, input_precision=DOT_PREC)
    return dq1, dq2


@triton.jit
def _bwd_dq_kernel(Q, K, V, DO, LSE, DELTA, DQ, CU, sm_scale, qk_scale, total_tokens,
                   stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh,
                   stride_dot, stride_doh,
                   CAUSAL: tl.constexpr, D1: tl.constexpr, D2: tl.constexpr, DV: tl.constexpr,
                   DOT_PREC: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid_m = tl.num_programs(0) - 1 - tl.program_id(0)
    h = tl.program_id(1)
    b = tl.program_id(2)
    start = tl.load(CU + b).to(tl.int64)
    seqlen = (tl.load(CU + b + 1) - tl.load(CU + b)).to(tl.int32)
    m0 = pid_m * BLOCK_M
    if m0 >= seqlen:
        return
    offs_m = m0 + tl.arange(0, BLOCK_M)
    d1 = tl.arange(0, D1)
    d2 = tl.arange(0, D2)
    dv = tl.arange(0, DV)
    row_ok = offs_m < seqlen
    q_base = Q + start * stride_qt + h * stride_qh
    q1 = tl.load(q_base + offs_m[:, None] * stride_qt + d1[None, :], mask=row_ok[:, None], other=0.0)
    q2 = tl.load(q_base + offs_m[:, None] * stride_qt + D1 + d2[None, :], mask=row_ok[:, None], other=0.0)
    do = tl.load(DO + start * stride_dot + h * stride_doh + offs_m[:, None] * stride_dot + dv[None, :],
                 mask=row_ok[:, None], other=0.0)
    lse = tl.load(LSE + h * total_tokens + start + offs_m, mask=row_ok, other=0.0)
    delta = tl.load(DELTA + h * total_tokens + start + offs_m, mask=row_ok, other=0.0)
    k_base = K + start * stride_kt + h * stride_kh
    v_base = V + start * stride_vt + h * stride_vh
    dq1 = tl.zeros([BLOCK_M, D1], dtype=tl.float32)
    dq2 = tl.zeros([BLOCK_M, D2], dtype=tl.float32)
    if CAUSAL:
        full_hi = m0
        hi = tl.minimum(seqlen, m0 + BLOCK_M)
    else:
        full_hi = (seqlen // BLOCK_N) * BLOCK_N
        hi = seqlen
    dq1, dq2 = _bwd_dq_inner(dq1, dq2, q1, q2, do, lse, delta, k_base, v_base, stride_kt, stride_vt,
                             offs_m, seqlen, 0, full_hi, qk_scale, False, CAUSAL, D1, D2, DV, BLOCK_N, DOT_PREC)
    dq1, dq2 = _bwd_dq_inner(dq1, dq2, q1, q2, do, lse, delta, k_base, v_base, stride_kt, stride_vt,
                             offs_m, seqlen, full_hi, hi, qk_scale, True, CAUSAL, D1, D2, DV, BLOCK_N, DOT_PREC)
    dq_base = DQ + start * stride_qt + h * stride_qh
    tl.store(dq_base + offs_m[:, None] * stride_qt + d1[None, :], (dq1 * sm_scale).to(DQ.dtype.element_ty),
             mask=row_ok[:, None])
    tl.store(dq_base + offs_m[:, None] * stride_qt + D1 + d2[None, :], (dq2 * sm_scale).to(DQ.dtype.element_ty),
             mask=row_ok[:, None])


# --------------------------------------------------------------------------- launch configuration
def _configs(pairs, warps_stages):
    return [
        triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s)
        for (m, n) in pairs
        for (w, s) in warps_stages
    ]


if INTERPRET:
    # The interpreter runs numpy per op: small blocks keep multi-block paths
    # (diagonal, ragged tails, several documents) exercised on tiny inputs.
    _FWD = _fwd_kernel
    _DKDV = _bwd_dkdv_kernel
    _DQ = _bwd_dq_kernel
    _FIXED = {"BLOCK_M": 16, "BLOCK_N": 16}
else:
    # Keyed on the shape class, not the token count, so packing changes never retune.
    _KEY = ["D1", "D2", "DV", "CAUSAL", "DOT_PREC"]
    # Forward / dQ need BLOCK_M % BLOCK_N == 0; dK/dV needs BLOCK_N % BLOCK_M == 0.
    _FWD = triton.autotune(
        _configs([(128, 64)], [(8, 2), (8, 3), (8, 4), (4, 3)]) + _configs([(128, 128)], [(8, 2)])
        + _configs([(64, 64)], [(4, 3)]), key=_KEY
    )(_fwd_kernel)
    _DKDV = triton.autotune(
        _configs([(32, 64), (64, 64), (32, 128), (64, 128)], [(4, 2), (8, 2)])
        + _configs([(32, 128), (64, 64)], [(8, 3)]), key=_KEY
    )(_bwd_dkdv_kernel)
    _DQ = triton.autotune(
        _configs([(64, 32), (64, 64), (128, 32), (128, 64)], [(4, 2), (8, 2)])
        + _configs([(128, 64), (64, 64)], [(8, 3)]), key=_KEY
    )(_bwd_dq_kernel)
    _FIXED = {}


def _split_qk_dim(d: int) -> tuple[int, int]:
    """Split a q/k head dim into two power-of-two parts for two ``tl.dot``s (192 -> 128 + 64)."""
    d1 = 1 << (d.bit_length() - 1)
    d2 = d - d1
    if d2 == 0:  # already a power of two: split in halves so the kernel keeps one shape
        d1 = d2 = d // 2
    if d1 < 16 or d2 < 16 or d2 & (d2 - 1):
        raise ValueError(f"q/k head dim {d} must be a power of two or a sum of two (each >= 16)")
    return d1, d2


def _dot_precision(dtype: torch.dtype) -> str:
    # fp32 inputs ask for fp32 accuracy (no silent TF32); bf16/fp16 ignore it.
    return "ieee" if dtype == torch.float32 else "tf32"


def _lastdim_contiguous(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def mla_forward(q, k, v, cu_seqlens, max_seqlen: int, softmax_scale: float, causal: bool):
    """Launch the forward kernel; returns (out, lse2) with lse2 (heads, total) fp32 base-2."""
    total, heads, dqk = q.shape
    dv = v.shape[-1]
    if dv & (dv - 1) or dv < 16:
        raise ValueError(f"v head dim {dv} must be a power of two >= 16")
    d1, d2 = _split_qk_dim(dqk)
    batch = cu_seqlens.numel() - 1
    out = torch.zeros((total, heads, dv), device=q.device, dtype=q.dtype)
    lse = torch.empty((heads, total), device=q.device, dtype=torch.float32)
    if total == 0 or batch == 0:
        return out, lse

    def grid(meta):
        return (triton.cdiv(max_seqlen, meta["BLOCK_M"]), heads, batch)

    _FWD[grid](
        q, k, v, out, lse, cu_seqlens, softmax_scale * _LOG2E, total,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
        out.stride(0), out.stride(1),
        CAUSAL=causal, D1=d1, D2=d2, DV=dv, DOT_PREC=_dot_precision(q.dtype), **_FIXED,
    )
    return out, lse


def mla_backward(do, q, k, v, out, lse, cu_seqlens, max_seqlen: int, softmax_scale: float, causal: bool):
    """Launch the backward kernels; returns (dq, dk, dv)."""
    total, heads, dqk = q.shape
    dv_dim = v.shape[-1]
    d1, d2 = _split_qk_dim(dqk)
    batch = cu_seqlens.numel() - 1
    do = _lastdim_contiguous(do)
    dq = torch.zeros_like(q)
    dk = torch.zeros_like(k)
    dv = torch.zeros_like(v)
    if total == 0 or batch == 0:
        return dq, dk, dv
    delta = torch.empty((heads, total), device=q.device, dtype=torch.float32)
    pre_block = 16 if INTERPRET else 128
    _bwd_preprocess[(triton.cdiv(total, pre_block), heads)](
        out, do, delta, total, out.stride(0), out.stride(1), do.stride(0), do.stride(1),
        DV=dv_dim, BLOCK=pre_block,
    )
    common = dict(CAUSAL=causal, D1=d1, D2=d2, DV=dv_dim, DOT_PREC=_dot_precision(q.dtype), **_FIXED)
    strides = (q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
               do.stride(0), do.stride(1))
    qk_scale = softmax_scale * _LOG2E
    # dk/dv/dq are fresh contiguous tensors laid out like k/v/q (asserted by the caller making
    # q, k, v contiguous), so the kernels reuse the input strides for the outputs.
    _DKDV[lambda meta: (triton.cdiv(max_seqlen, meta["BLOCK_N"]), heads, batch)](
        q, k, v, do, lse, delta, dk, dv, cu_seqlens, softmax_scale, qk_scale, total, *strides, **common,
    )
    _DQ[lambda meta: (triton.cdiv(max_seqlen, meta["BLOCK_M"]), heads, batch)](
        q, k, v, do, lse, delta, dq, cu_seqlens, softmax_scale, qk_scale, total, *strides, **common,
    )
    return dq, dk, dv


class MLAAttentionFunction(torch.autograd.Function):
    """Autograd wrapper: saves q, k, v, out and the log-sum-exp for the backward."""

    @staticmethod
    def forward(ctx, q, k, v, cu_seqlens, max_seqlen, softmax_scale, causal):
        q, k, v = (t.contiguous() for t in (q, k, v))
        cu_seqlens = cu_seqlens.to(device=q.device, dtype=torch.int32).contiguous()
        out, lse = mla_forward(q, k, v, cu_seqlens, max_seqlen, softmax_scale, causal)
        ctx.save_for_backward(q, k, v, out, lse, cu_seqlens)
        ctx.max_seqlen, ctx.softmax_scale, ctx.causal = max_seqlen, softmax_scale, causal
        return out

    @staticmethod
    def backward(ctx, do):
        q, k, v, out, lse, cu_seqlens = ctx.saved_tensors
        dq, dk, dv = mla_backward(do, q, k, v, out, lse, cu_seqlens, ctx.max_seqlen,
                                  ctx.softmax_scale, ctx.causal)
        return dq, dk, dv, None, None, None, None


def mla_attention_triton(q, k, v, cu_seqlens, max_seqlen, softmax_scale=None, causal=True):
    """Triton MLA attention on the varlen packed layout (see module docstring)."""
    if q.shape[:2] != k.shape[:2] or q.shape[:2] != v.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"shape mismatch: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    scale = float(softmax_scale) if softmax_scale is not None else 1.0 / math.sqrt(q.shape[-1])
    return MLAAttentionFunction.apply(q, k, v, cu_seqlens, int(max_seqlen), scale, bool(causal))
