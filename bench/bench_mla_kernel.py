"""Benchmark: fused MLA attention kernel vs torch SDPA (and flash-attn if it imports).

Forward and backward TFLOPS at sequence 4k/8k/16k, causal, bf16, MLA head dims
(q/k 192, v 128), one run on the same inputs. SDPA gets its best case: dense
(batch, heads, seq, dim) contiguous tensors with ``is_causal=True`` — equal-length
documents need no mask. Run ``python -m bench.bench_mla_kernel [--out FILE]``;
on a machine without a GPU ``run()`` returns ``{"skipped": "no GPU"}``.

A second case is what training really feeds the kernel: one window of packed
documents of mixed lengths (``packed_doc_lengths``). There SDPA needs a
block-diagonal causal mask (``block_causal_mask``), which rules out its flash
backends and makes it compute the whole window; flash-attn's varlen function
takes the same ``cu_seqlens`` as the kernel.

FLOPs (causal, per head and document of length S; pairs = S(S+1)/2 attended
query-key pairs, each matmul with inner dim d costs 2d per pair):
forward 2·(192 + 128)·pairs (QKᵀ, PV); backward 2·(3·192 + 2·128)·pairs
(QKᵀ recomputed, dV, dP, dQ, dK).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

D_QK, D_V = 192, 128
GOAL_FWD_TFLOPS_H100 = 450.0
GOAL_RATIO_VS_SDPA = 2.0


def _pairs(seqlen: int) -> int:
    return seqlen * (seqlen + 1) // 2


def packed_doc_lengths(window: int, seed: int = 0, mean: int = 1200, shortest: int = 64) -> list[int]:
    """Document lengths filling ``window`` exactly, drawn like agentic trajectories (long-tailed:
    lognormal around ``mean`` tokens, at least ``shortest``); deterministic in ``seed``."""
    import random

    rng, lengths, left = random.Random(seed), [], window
    while left > 0:
        n = max(shortest, int(rng.lognormvariate(0.0, 0.8) * mean))
        n = left if left - n < shortest else n
        lengths.append(n)
        left -= n
    return lengths


def block_causal_mask(lengths: list[int], device=None) -> torch.Tensor:
    """(S, S) bool mask, True where a query may attend: causal, inside its own document."""
    doc = torch.repeat_interleave(torch.arange(len(lengths), device=device),
                                  torch.tensor(lengths, device=device))
    pos = torch.arange(doc.numel(), device=device)
    return (doc[:, None] == doc[None, :]) & (pos[:, None] >= pos[None, :])


def _tflops(flops: float, ms: float) -> float:
    return flops / (ms * 1e-3) / 1e12


def _bench(fn) -> float:
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=25, rep=100, return_mode="median"))


def _time_fwd_bwd(fwd, inputs, do) -> tuple[float, float]:
    """Median ms of the forward, and of the backward alone (graph kept between calls)."""
    fwd_ms = _bench(lambda: fwd(*inputs))
    out = fwd(*inputs)
    bwd_ms = _bench(lambda: torch.autograd.grad(out, inputs, do, retain_graph=True))
    return fwd_ms, bwd_ms


def _first(out):
    # Some flash-attn releases return (out, lse).
    return out[0] if isinstance(out, tuple) else out


def _flash_attn_varlen():
    """flash-attn's varlen function (FA3 first), or None with the reason."""
    for module in ("flash_attn_interface", "flash_attn"):
        try:
            mod = __import__(module)
            return module, mod.flash_attn_varlen_func
        except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
            reason = f"{module}: {type(exc).__name__}: {exc}"
    return reason, None


def _sdpa_backends(q, k, v) -> dict:
    """Which SDPA backends accept these dense inputs (default dispatch takes the first that does)."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    ok = {}
    for backend in (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
        try:
            with sdpa_kernel([backend]):
                F.scaled_dot_product_attention(q, k, v, is_causal=True)
            ok[backend.name] = True
        except Exception:  # noqa: BLE001 - "no available kernel" is the answer
            ok[backend.name] = False
    return ok


def run(seqlens=(4096, 8192, 16384), heads: int = 16, tokens: int = 32768) -> dict:
    """Benchmark each sequence length at ``tokens`` packed tokens per call; returns a JSON-able dict."""
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA GPU here (torch.cuda.is_available() is False): the Triton kernel "
                           "benchmark needs one; run `make bench` on a GPU machine"}
    import triton
    import torch.nn.functional as F

    from trainer.kernels import mla_attention

    dev = torch.device("cuda")
    fa_name, fa_fn = _flash_attn_varlen()
    result = {
        "device": torch.cuda.get_device_name(dev),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "dtype": "bfloat16",
        "heads": heads,
        "head_dims": {"qk": D_QK, "v": D_V},
        "tokens_per_call": tokens,
        "flash_attn": fa_name if fa_fn else f"unavailable ({fa_name})",
        "rows": [],
    }
    for seqlen in seqlens:
        batch = max(1, tokens // seqlen)
        total = batch * seqlen
        gen = torch.Generator(device=dev).manual_seed(0)

        def rnd(d):
            return torch.randn(total, heads, d, device=dev, dtype=torch.bfloat16, generator=gen)

        q, k, v, do = rnd(D_QK), rnd(D_QK), rnd(D_V), rnd(D_V)
        cu = torch.arange(0, total + 1, seqlen, device=dev, dtype=torch.int32)
        fwd_flops = batch * heads * _pairs(seqlen) * 2 * (D_QK + D_V)
        bwd_flops = batch * heads * _pairs(seqlen) * 2 * (3 * D_QK + 2 * D_V)
        row = {"seqlen": seqlen, "batch": batch}

        packed = tuple(t.clone().requires_grad_(True) for t in (q, k, v))
        ms = _time_fwd_bwd(lambda a, b, c: mla_attention(a, b, c, cu, seqlen), packed, do)
        row["triton"] = {"fwd_ms": ms[0], "bwd_ms": ms[1],
                         "fwd_tflops": _tflops(fwd_flops, ms[0]), "bwd_tflops": _tflops(bwd_flops, ms[1])}

        def dense(t):  # (total, h, d) -> contiguous (batch, h, seq, d)
            return t.view(batch, seqlen, heads, -1).transpose(1, 2).contiguous().requires_grad_(True)

        if "sdpa_backends" not in result:
            result["sdpa_backends"] = _sdpa_backends(dense(q), dense(k), dense(v))
        try:
            ms = _time_fwd_bwd(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True),
                               (dense(q), dense(k), dense(v)), dense(do).detach())
            row["sdpa"] = {"fwd_ms": ms[0], "bwd_ms": ms[1],
                           "fwd_tflops": _tflops(fwd_flops, ms[0]), "bwd_tflops": _tflops(bwd_flops, ms[1])}
            row["speedup_vs_sdpa"] = {"fwd": row["sdpa"]["fwd_ms"] / row["triton"]["fwd_ms"],
                                      "bwd": row["sdpa"]["bwd_ms"] / row["triton"]["bwd_ms"]}
        except Exception as exc:  # noqa: BLE001 - report, don't abort the other rows
            row["sdpa"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}

        if fa_fn is not None:
            try:
                ms = _time_fwd_bwd(
                    lambda a, b, c: _first(fa_fn(a, b, c, cu, cu, seqlen, seqlen, causal=True)),
                    tuple(t.clone().requires_grad_(True) for t in (q, k, v)), do)
                row["flash_attn"] = {"fwd_ms": ms[0], "bwd_ms": ms[1],
                                     "fwd_tflops": _tflops(fwd_flops, ms[0]),
                                     "bwd_tflops": _tflops(bwd_flops, ms[1])}
            except Exception as exc:  # noqa: BLE001
                row["flash_attn"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        result["rows"].append(row)
        del q, k, v, do, packed
        torch.cuda.empty_cache()

    result["packed"] = _packed_row(dev, heads, max(seqlens), fa_fn)

    from trainer.kernels import mla_triton

    # Autotune keys on the shape class, so the first sequence length picks these for all.
    result["triton_configs"] = {
        name: str(getattr(getattr(mla_triton, name), "best_config", None)) for name in ("_FWD", "_DKDV", "_DQ")
    }
    fwd = [r["triton"]["fwd_tflops"] for r in result["rows"]]
    ratios = [r["speedup_vs_sdpa"]["fwd"] for r in result["rows"] if "speedup_vs_sdpa" in r]
    result["goals"] = {
        "fwd_tflops_min": min(fwd),
        f"fwd_tflops_ge_{GOAL_FWD_TFLOPS_H100:.0f}_on_h100": min(fwd) >= GOAL_FWD_TFLOPS_H100,
        "fwd_speedup_vs_sdpa_min": min(ratios) if ratios else None,
        f"fwd_speedup_ge_{GOAL_RATIO_VS_SDPA:.0f}x": (min(ratios) >= GOAL_RATIO_VS_SDPA) if ratios else None,
    }
    is_h100 = "H100" in result["device"]
    result["figures"] = [
        {"figure": f"MLA fwd TFLOPS, min over seqlens ({result['device']})", "value": round(min(fwd), 1),
         "goal": f">= {GOAL_FWD_TFLOPS_H100:.0f} on H100" if is_h100 else "-"},
        {"figure": "MLA bwd TFLOPS, min over seqlens",
         "value": round(min(r["triton"]["bwd_tflops"] for r in result["rows"]), 1), "goal": "-"},
        {"figure": "MLA fwd speed-up vs torch SDPA, min", "value": round(min(ratios), 2) if ratios else None,
         "goal": f">= {GOAL_RATIO_VS_SDPA:g}x"},
    ]
    packed = result["packed"].get("speedup_vs_sdpa_masked")
    result["figures"].append(
        {"figure": f"MLA fwd speed-up vs masked SDPA, packed {result['packed']['documents']} docs",
         "value": round(packed["fwd"], 2) if packed else None, "goal": f">= {GOAL_RATIO_VS_SDPA:g}x"})
    return result


def _packed_row(dev, heads: int, window: int, fa_fn) -> dict:
    """One window of packed mixed-length documents: the kernel (cu_seqlens), SDPA (mask), flash-attn."""
    import torch.nn.functional as F

    from trainer.kernels import mla_attention

    lengths = packed_doc_lengths(window)
    gen = torch.Generator(device=dev).manual_seed(1)
    q, k, v, do = (torch.randn(window, heads, d, device=dev, dtype=torch.bfloat16, generator=gen)
                   for d in (D_QK, D_QK, D_V, D_V))
    cu = torch.tensor([0] + lengths, device=dev, dtype=torch.int32).cumsum(0, dtype=torch.int32)
    pairs = sum(_pairs(n) for n in lengths)
    fwd_flops, bwd_flops = heads * pairs * 2 * (D_QK + D_V), heads * pairs * 2 * (3 * D_QK + 2 * D_V)
    row = {"window": window, "documents": len(lengths), "longest": max(lengths), "shortest": min(lengths)}

    def timed(name, fwd, inputs, grad):
        try:
            ms = _time_fwd_bwd(fwd, inputs, grad)
            row[name] = {"fwd_ms": ms[0], "bwd_ms": ms[1],
                         "fwd_tflops": _tflops(fwd_flops, ms[0]), "bwd_tflops": _tflops(bwd_flops, ms[1])}
        except Exception as exc:  # noqa: BLE001 - report, don't abort the others
            row[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}

    longest = max(lengths)
    timed("triton", lambda a, b, c: mla_attention(a, b, c, cu, longest),
          tuple(t.clone().requires_grad_(True) for t in (q, k, v)), do)
    mask = block_causal_mask(lengths, device=dev)

    def dense(t):  # (S, h, d) -> (1, h, S, d)
        return t.transpose(0, 1).unsqueeze(0).contiguous().requires_grad_(True)

    timed("sdpa_masked", lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=mask),
          (dense(q), dense(k), dense(v)), dense(do).detach())
    if fa_fn is not None:
        timed("flash_attn", lambda a, b, c: _first(fa_fn(a, b, c, cu, cu, longest, longest, causal=True)),
              tuple(t.clone().requires_grad_(True) for t in (q, k, v)), do)
    if "fwd_ms" in row["triton"] and "fwd_ms" in row.get("sdpa_masked", {}):
        row["speedup_vs_sdpa_masked"] = {key: row["sdpa_masked"][f"{key}_ms"] / row["triton"][f"{key}_ms"]
                                         for key in ("fwd", "bwd")}
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the JSON result here (default: stdout only)")
    args = parser.parse_args(argv)
    result = run()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
