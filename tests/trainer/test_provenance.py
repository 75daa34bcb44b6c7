"""Schema 2 provenance in the loader: token_source / logprobs / token_exact read, schema 1 as before,
``token_exact_only`` and ``inserted_weight`` (loader, loss and training)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pydantic
import pytest
import torch

from tests.trainer.shard_factory import write_shards
from trainer.config import TrainConfig
from trainer.loader import PackedLoader
from trainer.model import MLATransformer
from trainer.packing import IGNORE, epoch_plan
from trainer.shards import ShardError, ShardSet
from trainer.train import train_main

WINDOW = 48
BASE = 1000  # loader tests: id = (doc + 1) * BASE + position names every token
N_DOCS = 24
INEXACT = {3, 8, 15}  # rows tokenised from text: no inserted tokens, token_exact false


def _layout(n: int = N_DOCS, seed: int = 0):
    """Per doc (sources, logprobs): context, then assistant turns opening with 2 inserted tokens
    (a forced tag) followed by sampled ones."""
    rng = np.random.default_rng(seed)
    out = []
    for d in range(n):
        length = int(rng.integers(12, 110))
        src = np.zeros(length, dtype=int)
        for start in range(int(rng.integers(2, 8)), length, 30):
            src[start:start + 20] = 1
            if d not in INEXACT:
                src[start:start + 2] = 3
        lp = np.where((src == 1) | (src == 2), -rng.random(length), np.nan)
        out.append((src.tolist(), lp.tolist()))
    return out


def _write(path, *, train_on_inserted=False, schema=2, small_vocab=None, rows_per_shard=5):
    layout = _layout()
    rng = np.random.default_rng(1)
    docs = []
    for d, (src, _) in enumerate(layout):
        ids = rng.integers(1, small_vocab, len(src)).tolist() if small_vocab else \
            [(d + 1) * BASE + p for p in range(len(src))]
        trainable = {1, 2, 3} if train_on_inserted else {1, 2}
        docs.append((ids, [int(s in trainable) for s in src]))
    write_shards(path, docs, rows_per_shard=rows_per_shard, sources=[s for s, _ in layout],
                 logprobs=[lp for _, lp in layout], exact=[d not in INEXACT for d in range(N_DOCS)],
                 schema=schema)
    return docs, layout


def _epoch(shards: ShardSet) -> list[dict]:
    loader = PackedLoader(shards, seq_len=WINDOW, micro_batch=1, seed=5)
    return [next(loader) for _ in range(len(epoch_plan(shards.lengths, WINDOW, 5, 0, 8192)))]


def _label_weights(batches) -> Counter:
    """label token -> its loss weight, over an epoch (each label once: ids are unique)."""
    seen: Counter = Counter()
    for b in batches:
        keep = b["labels"] != IGNORE
        w = b["loss_weights"][keep] if "loss_weights" in b else torch.ones(int(keep.sum()))
        for t, x in zip(b["labels"][keep].tolist(), w.tolist()):
            seen[t] += x
    return seen


def _expected(layout, weight_of) -> Counter:
    """label -> weight for every position >= 1 whose weight (by source, doc) is non-zero."""
    out: Counter = Counter()
    for d, (src, _) in enumerate(layout):
        for p in range(1, len(src)):
            w = weight_of(src[p], d)
            if w:
                out[(d + 1) * BASE + p] = w
    return out


def test_v2_provenance_is_read(tmp_path):
    _, layout = _write(tmp_path)
    shards = ShardSet.open(tmp_path)
    assert all(shards.has_provenance) and shards.num_docs == N_DOCS and not shards.weighted
    for d, (src, lp) in enumerate(layout):
        prov = shards.provenance(d)
        assert prov["token_source"].tolist() == src
        got = prov["logprobs"]
        assert got.dtype == np.float32 and np.array_equal(got, np.float32(lp), equal_nan=True)
        assert prov["token_exact"] is (d not in INEXACT)


def test_v1_shards_train_as_before_and_refuse_provenance_options(tmp_path):
    _write(tmp_path / "v2")
    _write(tmp_path / "v1", schema=1)
    v1, v2 = ShardSet.open(tmp_path / "v1"), ShardSet.open(tmp_path / "v2")
    assert v1.manifest.schema_version == "1.0" and not any(v1.has_provenance) and v1.provenance(0) is None
    # Same batches: provenance changes nothing by default.
    for a, b in zip(_epoch(v1), _epoch(v2), strict=True):
        assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
        assert "loss_weights" not in a and "loss_weights" not in b
    for option in ({"token_exact_only": True}, {"inserted_weight": 0.0}):
        with pytest.raises(ShardError, match="no token provenance") as exc:
            ShardSet.open(tmp_path / "v1", **option)
        assert "\n" not in str(exc.value)


def test_token_exact_only_skips_text_rows(tmp_path):
    _, layout = _write(tmp_path)
    every = ShardSet.open(tmp_path)
    exact = ShardSet.open(tmp_path, token_exact_only=True)
    assert exact.num_docs == N_DOCS - len(INEXACT) and exact.skipped_rows == len(INEXACT)
    docs_of = lambda seen: {t // BASE - 1 for t in seen}  # noqa: E731
    assert docs_of(_label_weights(_epoch(every))) & INEXACT == INEXACT  # the text rows do train by default
    seen = _label_weights(_epoch(exact))
    # The exact rows' loss tokens, each once.
    assert seen == _expected(layout, lambda s, d: int(s in (1, 2) and d not in INEXACT))
    loader = PackedLoader(exact, seq_len=WINDOW, micro_batch=1, seed=5)
    with pytest.raises(ValueError, match="num_docs"):  # a resume may not switch the option silently
        loader.load_state_dict(PackedLoader(every, seq_len=WINDOW, micro_batch=1, seed=5).state_dict())


@pytest.mark.parametrize("train_on_inserted", [False, True])
def test_inserted_weight_sets_the_loss_of_inserted_tokens(tmp_path, train_on_inserted):
    _, layout = _write(tmp_path, train_on_inserted=train_on_inserted)
    written = {1: 1, 2: 1, 3: int(train_on_inserted)}
    default = _label_weights(_epoch(ShardSet.open(tmp_path)))
    assert default == _expected(layout, lambda s, d: written.get(s, 0))  # loss_mask as written
    for w in (0.0, 0.5, 2.0):
        batches = _epoch(ShardSet.open(tmp_path, inserted_weight=w))
        assert _label_weights(batches) == _expected(layout, lambda s, d: w if s == 3 else written.get(s, 0))
        for b in batches:
            assert b["loss_weight"] == pytest.approx(float(b["loss_weights"].sum()))
            assert torch.equal(b["labels"] != IGNORE, b["loss_weights"] != 0)


def test_inserted_weight_is_validated():
    for bad in (-0.5, math.inf, math.nan):
        with pytest.raises(pydantic.ValidationError, match="inserted_weight"):
            TrainConfig(inserted_weight=bad)
    assert TrainConfig().inserted_weight is None and TrainConfig().token_exact_only is False


def test_weighted_loss_is_the_weighted_mean():
    torch.manual_seed(0)
    model = MLATransformer(TrainConfig(model_overrides=SMALL).model_cfg)
    n = 40
    ids = torch.randint(0, 64, (n,))
    labels = torch.where(torch.rand(n) < 0.6, torch.randint(0, 64, (n,)), torch.full((n,), IGNORE))
    weights = torch.where(labels != IGNORE, torch.rand(n) * 2, torch.zeros(n))
    args = (ids, torch.arange(n), torch.tensor([0, n], dtype=torch.int32), n)
    with torch.no_grad():
        logits = model(*args)
        keep = labels != IGNORE
        ce = torch.nn.functional.cross_entropy(logits[keep], labels[keep], reduction="none")
        got = model(*args, labels=labels, reduction="sum", weights=weights)
        assert float(got) == pytest.approx(float((ce * weights[keep]).sum()), rel=1e-5)
        mean = model(*args, labels=labels, weights=weights)
        assert float(mean) == pytest.approx(float((ce * weights[keep]).sum() / weights[keep].sum()), rel=1e-5)
        ones = model(*args, labels=labels, reduction="sum", weights=keep.float())
        assert float(ones) == pytest.approx(float(model(*args, labels=labels, reduction="sum")), rel=1e-6)


SMALL = {"vocab_size": 64, "hidden": 64, "mlp_hidden": 128, "n_heads": 2, "q_lora_rank": 32,
         "kv_lora_rank": 32, "qk_nope_dim": 16, "qk_rope_dim": 16, "v_dim": 16}


def test_training_weight_zero_is_masking_and_weight_one_is_training_on_inserted(tmp_path):
    """The option against shards written either way: inserted_weight 0 on shards that train on
    inserted tokens trains like shards that mask them, and 1 on masking shards like training on them."""
    _write(tmp_path / "on", train_on_inserted=True, small_vocab=64)
    _write(tmp_path / "off", train_on_inserted=False, small_vocab=64)
    cfg = dict(model="tiny", model_overrides=SMALL, steps=3, warmup_steps=1, lr=3e-3, seq_len=WINDOW,
               micro_batch=2, grad_accum=2, checkpoint_every=0, cpu_threads=1)

    def run(shards, name, **kw):
        result = train_main(TrainConfig(**{**cfg, **kw}), tmp_path / shards, tmp_path / name, quiet=True)
        return result["losses"]

    on, off = run("on", "a"), run("off", "b")
    assert on != pytest.approx(off, rel=1e-3)  # inserted tokens change the loss: the test can tell
    assert run("on", "c", inserted_weight=0.0) == pytest.approx(off, rel=1e-5)
    assert run("off", "d", inserted_weight=1.0) == pytest.approx(on, rel=1e-5)
    assert run("on", "e", token_exact_only=True)[0] != pytest.approx(on[0], rel=1e-3)  # other data

    # A weight other than 0/1: the first step's loss is the weighted mean over its batches at init.
    one = {"steps": 1, "warmup_steps": 0, "inserted_weight": 0.5}
    (first,) = run("off", "f", **one)
    half = TrainConfig(**{**cfg, **one})
    torch.manual_seed(half.seed)
    model = MLATransformer(half.model_cfg)
    loader = PackedLoader(ShardSet.open(tmp_path / "off", inserted_weight=0.5), seq_len=WINDOW, micro_batch=2,
                          seed=half.seed)
    total = weight = 0.0
    with torch.no_grad():
        for b in (next(loader) for _ in range(half.grad_accum)):
            args = (b["input_ids"], b["position_ids"], b["cu_seqlens"], b["max_seqlen"])
            keep = b["labels"] != IGNORE
            ce = torch.nn.functional.cross_entropy(model(*args)[keep], b["labels"][keep], reduction="none")
            assert (b["loss_weights"][keep] == 0.5).any()
            total += float((ce * b["loss_weights"][keep]).sum())
            weight += float(b["loss_weights"].sum())
    assert first == pytest.approx(total / weight, rel=1e-5)
