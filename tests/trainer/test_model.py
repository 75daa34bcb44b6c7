"""MLA model: size of youtu-2b, masked loss by hand, document isolation, rotary, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainer.config import MODELS, model_config
from trainer.model import MLATransformer, count_parameters
from trainer.packing import build_batch

# Small shapes keep these fast on a shared 2-core CPU; head dims stay kernel-friendly.
SMALL = model_config("tiny", vocab_size=97, hidden=64, mlp_hidden=128, n_heads=2, q_lora_rank=48,
                     kv_lora_rank=32, qk_nope_dim=16, qk_rope_dim=16, v_dim=16)


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _packed(docs, window):
    """Pack ``docs`` (ids, mask) one per window segment list, as the loader does."""
    segs, pos = [], 0
    for i, (ids, _) in enumerate(docs):
        segs.append((i, 0, len(ids)))
        pos += len(ids)
    batch = build_batch([segs], lambda d: (np.array(docs[d][0]), np.array(docs[d][1])), window)
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}


def _run(model, b, labels=None, reduction="mean"):
    return model(b["input_ids"], b["position_ids"], b["cu_seqlens"], b["max_seqlen"], labels=labels,
                 reduction=reduction)


def test_youtu_2b_has_about_1_96b_parameters():
    n = count_parameters(MODELS["youtu-2b"])
    assert 1.95e9 < n < 1.97e9, n


def test_masked_loss_equals_hand_computed_per_document():
    torch.manual_seed(0)
    model = MLATransformer(SMALL).eval()
    docs = [([3, 10, 11, 12, 13, 14], [0, 0, 1, 1, 0, 1]), ([50, 51, 52], [0, 1, 1]), ([7, 8, 9, 10], [0, 0, 0, 1])]
    b = _packed(docs, window=16)  # 13 tokens + a 3-token padding document
    with torch.no_grad():
        packed = _run(model, b, labels=b["labels"]).item()
        # By hand: each document alone (no packing), next-token CE where the *target* carries loss.
        terms = []
        for ids, mask in docs:
            t = torch.tensor(ids)
            logits = model(t, torch.arange(len(ids)), torch.tensor([0, len(ids)], dtype=torch.int32), len(ids))
            logp = F.log_softmax(logits.float(), dim=-1)
            terms += [-logp[i, ids[i + 1]].item() for i in range(len(ids) - 1) if mask[i + 1]]
    assert len(terms) == 6 == int(b["num_loss_tokens"])
    assert packed == pytest.approx(sum(terms) / len(terms), rel=1e-5, abs=1e-5)
    with torch.no_grad():
        assert _run(model, b, b["labels"], "sum").item() == pytest.approx(sum(terms), rel=1e-5)


def test_no_attention_across_documents():
    torch.manual_seed(0)
    model = MLATransformer(SMALL).eval()
    a = _packed([([1, 2, 3, 4, 5], [1] * 5), ([6, 7, 8], [1] * 3)], window=8)
    b = _packed([([9, 9, 9, 9, 9], [1] * 5), ([6, 7, 8], [1] * 3)], window=8)  # first document changed
    with torch.no_grad():
        la, lb = _run(model, a), _run(model, b)
    assert torch.equal(la[5:], lb[5:])
    assert not torch.allclose(la[:5], lb[:5])


def test_rotary_makes_attention_relative():
    torch.manual_seed(0)
    model = MLATransformer(SMALL).eval()
    ids = torch.tensor([5, 9, 2, 7, 7, 1])
    cu = torch.tensor([0, 6], dtype=torch.int32)
    with torch.no_grad():
        at0 = model(ids, torch.arange(6), cu, 6)
        at100 = model(ids, torch.arange(6) + 100, cu, 6)
        reversed_pos = model(ids, torch.arange(6).flip(0), cu, 6)
    assert torch.allclose(at0, at100, atol=1e-4)
    assert not torch.allclose(at0[1:], reversed_pos[1:], atol=1e-3)


def test_tiny_model_loss_goes_down_on_a_repeated_batch():
    torch.manual_seed(0)
    model = MLATransformer(MODELS["tiny"])
    rng = np.random.default_rng(0)
    docs = [(rng.integers(0, 49152, 24).tolist(), [0] * 4 + [1] * 20) for _ in range(3)]
    b = _packed(docs, window=80)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        loss = _run(model, b, b["labels"])
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(np.log(49152), abs=0.5)  # starts near uniform
    assert losses[-1] < losses[0] - 3.0, losses
