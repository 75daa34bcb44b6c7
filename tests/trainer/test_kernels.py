"""Tests for the fused MLA attention kernel against its pure-torch reference.

CPU (CI): the Triton kernel runs under ``TRITON_INTERPRET=1`` in fp32, where the
interpreter's ``tl.dot`` is exact. ``triton.jit`` picks interpreter or compiler
when the kernel module is *imported*, and another test in the same pytest
process may already have imported it (or triton) without the variable. So the
interpreter cases run in a fresh child process — this file executed as a script
with ``TRITON_INTERPRET=1`` in its environment — which prints the errors as JSON;
one pytest test per document layout then checks its numbers.

GPU (marker ``gpu``): the bf16 kernel's max error against an fp32 reference must
be at most twice PyTorch's own bf16 error (the reference computed with plain
PyTorch ops in bf16, ``upcast=False``) on the same inputs, for the output and all
three gradients. The fp32-compute-then-round error is printed beside it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
_MARK = "MLA_KERNEL_RESULTS "

# Interpreter blocks are 16 x 16: these layouts cover one document, many short
# ones (length-1 included), ragged tails, exact block multiples and non-causal.
CPU_CASES = {
    "one_doc": dict(lens=[80]),
    "many_short_docs": dict(lens=[1, 5, 1, 17, 3, 16, 1, 9, 2, 1]),
    "uneven_docs": dict(lens=[33, 47, 16]),
    "block_multiples": dict(lens=[32, 16, 48]),
    "non_causal_custom_scale": dict(lens=[20, 37], causal=False, scale=0.07),
}
CPU_ATOL = 1e-4


def _inputs(lens, heads, dtype, device, seed=0):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    total = sum(lens)
    cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32, device=device)

    def rnd(*shape):
        return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)

    q, k = rnd(total, heads, 192), rnd(total, heads, 192)
    v, do = rnd(total, heads, 128), rnd(total, heads, 128)
    return q, k, v, do, cu


def _run(fn, q, k, v, do, cu, max_seqlen, scale, causal):
    """Output and (dq, dk, dv) of ``fn`` for upstream gradient ``do``."""
    q, k, v = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    out = fn(q, k, v, cu, max_seqlen, scale, causal)
    grads = torch.autograd.grad(out, (q, k, v), do)
    return (out.detach(), *grads)


def _interpreter_cases() -> dict:
    """Child-process body: kernel vs reference errors for every CPU case."""
    assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"
    from trainer.kernels import mla_attention, mla_attention_reference
    from trainer.kernels import mla_triton

    assert mla_triton.INTERPRET, "triton did not pick the interpreter"
    results = {}
    for name, case in CPU_CASES.items():
        lens = case["lens"]
        q, k, v, do, cu = _inputs(lens, heads=2, dtype=torch.float32, device="cpu")
        args = (q, k, v, do, cu, max(lens), case.get("scale"), case.get("causal", True))
        got = _run(mla_attention, *args)
        ref = _run(mla_attention_reference, *args)
        # The dispatcher must have taken the Triton path, not the reference.
        probe = mla_attention(q.requires_grad_(True), k, v, cu, max(lens), None, True)
        results[name] = {
            "errors": {n: float((a - b).abs().max()) for n, a, b in zip(("out", "dq", "dk", "dv"), got, ref)},
            "grad_fn": type(probe.grad_fn).__name__,
        }
    return results


@pytest.fixture(scope="module")
def interpreter_results():
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve())],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        pytest.fail(f"interpreter run failed (rc={proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len(_MARK):])


@pytest.mark.parametrize("case", list(CPU_CASES))
def test_kernel_matches_reference_fp32_interpreter(interpreter_results, case):
    res = interpreter_results[case]
    assert res["grad_fn"] == "MLAAttentionFunctionBackward"
    for name, err in res["errors"].items():
        assert err <= CPU_ATOL, f"{case}: {name} max error {err:.3e} > {CPU_ATOL}"


def _naive(q, k, v, cu, max_seqlen, scale, causal):
    """Dense float64 attention with an explicit document (and causal) mask."""
    scale = scale if scale is not None else q.shape[-1] ** -0.5
    bounds = cu.tolist()
    doc = torch.repeat_interleave(torch.arange(len(bounds) - 1), torch.diff(torch.tensor(bounds)))
    allowed = doc[:, None] == doc[None, :]
    if causal:
        allowed &= torch.ones_like(allowed).tril()
    scores = torch.einsum("thd,shd->hts", q.double(), k.double()) * scale
    probs = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    return torch.einsum("hts,shd->thd", probs, v.double()).to(q.dtype)


@pytest.mark.parametrize("lens", [[40], [1, 7, 1, 30, 2], [3000, 1200]])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("upcast", [True, False])
def test_reference_matches_naive(lens, causal, upcast):
    """All reference paths (block mask, per-document loop, in-dtype ops) against dense float64 math."""
    q, k, v, do, cu = _inputs(lens, heads=2, dtype=torch.float32, device="cpu", seed=1)
    from trainer.kernels import mla_attention_reference

    def ref(*a):
        return mla_attention_reference(*a, upcast=upcast)

    got = _run(ref, q, k, v, do, cu, max(lens), None, causal)
    want = _run(_naive, q, k, v, do, cu, max(lens), None, causal)
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
        assert a.dtype == torch.float32
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), f"{name}: {(a - b).abs().max():.3e}"


def test_reference_returns_input_dtype():
    from trainer.kernels import mla_attention_reference

    q, k, v, _, cu = _inputs([5, 9], heads=2, dtype=torch.bfloat16, device="cpu")
    assert mla_attention_reference(q, k, v, cu, 9).dtype == torch.bfloat16


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="dispatch differs under the interpreter")
def test_cpu_dispatch_uses_reference():
    from trainer.kernels import mla_attention, mla_attention_reference

    q, k, v, _, cu = _inputs([4, 11], heads=2, dtype=torch.float32, device="cpu")
    assert torch.equal(mla_attention(q, k, v, cu, 11), mla_attention_reference(q, k, v, cu, 11))


# --------------------------------------------------------------------------- GPU
def _gpu_layouts():
    gen = torch.Generator().manual_seed(7)
    short, total = [], 0
    while total < 16384:  # many short documents, length 1 included, packed to ~16k
        n = int(torch.randint(1, 400, (1,), generator=gen))
        n = 1 if len(short) % 9 == 0 else n
        short.append(min(n, 16384 - total))
        total += short[-1]
    return {
        "seq1k": [1024] * 4,
        "seq4k": [4096] * 2,
        "seq8k": [8192],
        "seq16k": [16384],
        "mixed": [1, 5000, 3, 2999, 8192],
        "many_short_docs": short,
    }


GPU_LAYOUTS = _gpu_layouts()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("layout", list(GPU_LAYOUTS))
def test_bf16_kernel_error_within_twice_torch_bf16(layout):
    from trainer.kernels import mla_attention, mla_attention_reference

    lens = GPU_LAYOUTS[layout]
    q, k, v, do, cu = _inputs(lens, heads=4, dtype=torch.bfloat16, device="cuda", seed=3)
    args = (cu, max(lens), None, True)
    ref32 = _run(mla_attention_reference, q.float(), k.float(), v.float(), do.float(), *args)

    def torch_bf16(*a):
        return mla_attention_reference(*a, upcast=False)

    pt = _run(torch_bf16, q, k, v, do, *args)
    got = _run(mla_attention, q, k, v, do, *args)
    for name, g, p, r in zip(("out", "dq", "dk", "dv"), got, pt, ref32):
        assert g.dtype == torch.bfloat16 and torch.isfinite(g).all(), name
        err, pt_err = (g.float() - r).abs().max().item(), (p.float() - r).abs().max().item()
        rounding = (r.to(torch.bfloat16).float() - r).abs().max().item()
        print(f"{layout} {name}: kernel {err:.3e} torch-bf16 {pt_err:.3e} fp32-rounded {rounding:.3e}")
        assert err <= 2 * pt_err + 1e-6, f"{layout} {name}: kernel {err:.3e} > 2 x torch bf16 {pt_err:.3e}"


if __name__ == "__main__":
    print(_MARK + json.dumps(_interpreter_cases()), flush=True)
