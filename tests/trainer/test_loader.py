"""Shard loader: manifest checks, packing correctness, determinism, workers, ranks, resume."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tests.trainer.shard_factory import TOKENIZER, random_docs, write_shards
from trainer.loader import PackedLoader
from trainer.packing import IGNORE, best_fit_decreasing, document_labels, epoch_plan
from trainer.shards import ShardError, ShardIntegrityError, ShardSet, TokenizerMismatch

WINDOW = 64
BASE = 1000  # token id = (doc + 1) * BASE + position: every token names its document and position


def _docs():
    """Documents of many lengths (some longer than two windows), ids encoding (doc, position)."""
    lengths = [1, 2, 3, 5, 17, 40, 63, 64, 65, 100, 150, 200] + [int(x) for x in
                                                                 np.random.default_rng(1).integers(2, 90, 28)]
    docs = []
    for d, (n, (_, mask)) in enumerate(zip(lengths, random_docs(len(lengths), min_len=250, max_len=250))):
        docs.append(([(d + 1) * BASE + p for p in range(n)], mask[:n]))
    return docs


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    write_shards(d, _docs(), rows_per_shard=7)
    return d


@pytest.fixture(scope="module")
def shards(shard_dir):
    return ShardSet.open(shard_dir)


def _loader(shards, **kw):
    args = dict(seq_len=WINDOW, micro_batch=1, seed=3)
    args.update(kw)
    return PackedLoader(shards, **args)


def _epoch_windows(shards, seed=3):
    return len(epoch_plan(shards.lengths, WINDOW, seed, 0, 8192))


def test_labels_shift_within_a_document():
    ids, mask = np.array([5, 6, 7, 8]), np.array([0, 0, 1, 1])
    assert document_labels(ids, mask).tolist() == [IGNORE, 7, 8, IGNORE]


def test_packing_never_crosses_documents_and_positions_restart(shards):
    loader = _loader(shards, micro_batch=2)
    for _ in range(_epoch_windows(shards) // 2 + 1):
        b = next(loader)
        ids, labels, pos, cu = (b[k].numpy() for k in ("input_ids", "labels", "position_ids", "cu_seqlens"))
        assert len(ids) == 2 * WINDOW and cu[0] == 0 and cu[-1] == len(ids)
        assert WINDOW in cu.tolist()  # windows are separate: the second starts on a boundary
        assert b["max_seqlen"] == int(np.diff(cu).max()) <= WINDOW
        for s, e in zip(cu[:-1], cu[1:]):
            seg, seg_labels = ids[s:e], labels[s:e]
            assert pos[s:e].tolist() == list(range(e - s))
            if seg[0] == 0:  # padding: no loss
                assert (seg == 0).all() and (seg_labels == IGNORE).all()
                continue
            assert len(set((seg // BASE).tolist())) == 1  # one document per attention segment
            assert np.all(np.diff(seg) == 1)  # a contiguous piece of it
            kept = seg_labels != IGNORE
            assert np.all(seg_labels[kept] == seg[kept] + 1)  # the next token of the same document


def test_every_loss_token_is_a_label_exactly_once_per_epoch(shards):
    docs = _docs()
    expected = Counter((d + 1) * BASE + p for d, (ids, mask) in enumerate(docs)
                       for p in range(1, len(ids)) if mask[p])
    loader = _loader(shards)
    seen: Counter = Counter()
    for _ in range(_epoch_windows(shards)):
        b = next(loader)
        assert b["epoch"] == 0
        labels = b["labels"].numpy()
        seen.update(labels[labels != IGNORE].tolist())
    assert seen == expected
    assert next(loader)["epoch"] == 1


def test_best_fit_decreasing_packs_tightly():
    rng = np.random.default_rng(0)
    segs = [(i, 0, int(n)) for i, n in enumerate(rng.integers(1, 65, 500))]
    windows = best_fit_decreasing(segs, 64)
    fill = [sum(e - s for _, s, e in w) for w in windows]
    assert max(fill) <= 64
    assert sorted(x for w in windows for x in w) == sorted(segs)
    lower = max(int(np.ceil(sum(fill) / 64)), sum(1 for *_, n in segs if n > 32))  # no two > half share
    assert len(windows) <= 11 / 9 * lower + 1  # BFD's worst-case bound
    assert sum(1 for f in fill if f <= 32) <= 1  # any-fit packing: two half-empty windows would have merged


def test_shuffle_is_deterministic_by_seed_and_epoch(shards):
    a = epoch_plan(shards.lengths, WINDOW, 3, 0, 8192)
    assert a == epoch_plan(shards.lengths, WINDOW, 3, 0, 8192)
    assert a != epoch_plan(shards.lengths, WINDOW, 4, 0, 8192)
    assert a != epoch_plan(shards.lengths, WINDOW, 3, 1, 8192)


def _take(loader, n):
    return [next(loader) for _ in range(n)]


def _same(xs, ys):
    return all(x["window_ids"] == y["window_ids"] and bool((x["input_ids"] == y["input_ids"]).all())
               and bool((x["labels"] == y["labels"]).all()) for x, y in zip(xs, ys, strict=True))


def test_workers_give_the_same_stream(shards):
    n = _epoch_windows(shards) // 2 + 3  # crosses the epoch boundary
    assert _same(_take(_loader(shards, micro_batch=2), n), _take(_loader(shards, micro_batch=2, num_workers=2), n))


def test_ranks_see_disjoint_data(shards):
    n = _epoch_windows(shards) // 2
    per_rank = [_take(_loader(shards, rank=r, world_size=2), n) for r in range(2)]
    ids = [{w for b in bs for w in b["window_ids"]} for bs in per_rank]
    assert not ids[0] & ids[1] and ids[0] | ids[1] == set(range(2 * n))
    labels = [Counter(int(x) for b in bs for x in b["labels"][b["labels"] != IGNORE]) for bs in per_rank]
    assert not set(labels[0]) & set(labels[1])  # within one epoch no loss token reaches both ranks


def test_resume_continues_exactly(shards):
    full = _take(_loader(shards, micro_batch=3), 12)
    first = _loader(shards, micro_batch=3)
    _take(first, 5)
    state = first.state_dict()
    resumed = _loader(shards, micro_batch=3, num_workers=2)
    resumed.load_state_dict(state)
    assert _same(full[5:], _take(resumed, 7))
    with pytest.raises(ValueError, match="seed"):
        _loader(shards, seed=99).load_state_dict(state)


def test_tokenizer_mismatch_refused(shard_dir):
    ShardSet.open(shard_dir, TOKENIZER)
    ShardSet.open(shard_dir, f"/models/{TOKENIZER}")  # a local folder of the same tokenizer
    with pytest.raises(TokenizerMismatch, match="does not match the shards' tokenizer") as exc:
        ShardSet.open(shard_dir, "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert "\n" not in str(exc.value)


def test_sha256_mismatch_refused(tmp_path):
    write_shards(tmp_path, random_docs(10), rows_per_shard=4)
    victim = tmp_path / "math-00001.parquet"
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ShardIntegrityError, match="math-00001.parquet: sha256"):
        ShardSet.open(tmp_path)


def test_missing_manifest_and_vocab_overflow(tmp_path):
    with pytest.raises(ShardError, match="no manifest.json"):
        ShardSet.open(tmp_path)
    write_shards(tmp_path, random_docs(4, vocab=500))
    loader = _loader(ShardSet.open(tmp_path, vocab_size=100))
    with pytest.raises(ShardError, match="model vocab 100"):
        next(loader)
