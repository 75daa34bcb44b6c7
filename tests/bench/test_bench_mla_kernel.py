"""The packed-documents case of the MLA kernel benchmark: its inputs are right (the timing needs a GPU)."""

from __future__ import annotations

import pytest
import torch

from bench.bench_mla_kernel import block_causal_mask, packed_doc_lengths, run


def test_packed_lengths_fill_the_window_deterministically():
    lengths = packed_doc_lengths(16384, seed=0)
    assert sum(lengths) == 16384 and min(lengths) >= 64 and len(lengths) > 4
    assert lengths == packed_doc_lengths(16384, seed=0) and lengths != packed_doc_lengths(16384, seed=1)


def test_block_causal_mask_matches_per_document_causality():
    lengths = [3, 1, 2]
    mask = block_causal_mask(lengths)
    expected = torch.zeros(6, 6, dtype=torch.bool)
    start = 0
    for n in lengths:
        expected[start:start + n, start:start + n] = torch.tril(torch.ones(n, n, dtype=torch.bool))
        start += n
    assert torch.equal(mask, expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the benchmark runs (make bench)")
def test_without_a_gpu_the_benchmark_says_why():
    assert "no CUDA GPU" in run()["skipped"]
