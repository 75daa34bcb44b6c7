"""The vectorised LSH building blocks against straightforward references: shingle hashes from a
per-gram Python loop, signatures from datasketch's own ``update_batch``, band keys from the
signature, clusters from comparing every pair of documents exactly. Random documents include
what the fast paths special-case (unicode and ASCII control whitespace, runs of spaces, texts
shorter than a shingle, empty texts)."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest
from datasketch import MinHash

from bench.bench_dedupe import planted_corpus
from bench.dedupe_corpus import TrajectoryWriter
from pipelines.dedupe import normalize
from pipelines.lsh import (
    LshParams,
    band_keys,
    components,
    exact_jaccard,
    group_partition,
    minhash_signature,
    minhash_template,
    shingle_hashes,
    shingles,
    signature_chunk,
    similar,
)

MASK = (1 << 64) - 1
BASE = 0x9E3779B97F4A7C15
PIECES = ["alpha", "Beta", "γάμμα", "x", "日本語", "a\u00a0b", "\t", "  ", "\n", "\u3000", "\u2009", "\x1c",
          "\x01", "é", "—", "“q”", " ", "search({\"q\": 1})", "x" * 300]


def ref_gram_hash(gram: bytes) -> int:
    h = sum((c + 1) * pow(BASE, j, 1 << 64) for j, c in enumerate(gram)) & MASK
    for mult in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):  # murmur3 fmix64
        h ^= h >> 33
        h = (h * mult) & MASK
    h ^= h >> 33
    return h >> 32


def ref_shingle_hashes(text: str, size: int) -> np.ndarray:
    words = text.split()
    if not words:
        return np.zeros(0, np.uint32)
    width = min(size, len(words))
    grams = {ref_gram_hash(" ".join(words[i : i + width]).encode()) for i in range(len(words) - width + 1)}
    return np.array(sorted(grams), dtype=np.uint32)


def random_text(rng: random.Random, words: int) -> str:
    return "".join(rng.choice(PIECES) + (" " if rng.random() < 0.6 else "") for _ in range(words))


def test_shingle_hashes_equal_a_per_gram_reference_on_random_texts():
    rng = random.Random(11)
    texts = ["", " ", "\t\n", "one", "two words", *(random_text(rng, rng.randint(0, 40)) for _ in range(400))]
    long = " ".join(rng.choice(PIECES[:6]) for _ in range(3_000))
    for text in [*texts, long, "  " + long.replace(" ", "\u2003") + "\n"]:
        for size in (1, 3, 5):
            assert np.array_equal(shingle_hashes(text, size), ref_shingle_hashes(text, size)), (text[:80], size)


def test_shingle_hashes_depend_only_on_the_words_and_separate_distinct_texts():
    text = "the quick brown fox jumps over the lazy dog and runs away"
    assert np.array_equal(shingle_hashes(text, 5), shingle_hashes("  " + text.replace(" ", " \t\u00a0") + "\n", 5))
    assert len(shingle_hashes(text, 5)) == len(set(shingles(text, 5))) == 8
    assert not np.array_equal(shingle_hashes(text, 5), shingle_hashes(text.replace("lazy", "lazy!"), 5))


@pytest.mark.parametrize("num_perm", [64, 128, 256])
def test_signatures_equal_datasketch_update_batch(num_perm):
    rng = np.random.default_rng(num_perm)
    template = minhash_template(num_perm)
    for n in (0, 1, 7, 900, 40_000):  # 40,000 spans several of the computation's blocks
        values = np.unique(rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32))
        ref = MinHash(num_perm=num_perm, seed=1, hashfunc=lambda x: x, permutations=template.permutations,
                      scheme=template.scheme)
        ref.update_batch(values.tolist())
        assert np.array_equal(minhash_signature(values, template), ref.hashvalues), n


def test_exact_jaccard_and_similar_equal_set_arithmetic():
    rng = np.random.default_rng(3)
    for _ in range(300):
        base = rng.integers(0, 5_000, rng.integers(0, 400))
        a = np.unique(base).astype(np.uint32)
        b = np.unique(np.concatenate([base[: rng.integers(0, len(base) + 1)], rng.integers(0, 5_000, rng.integers(0, 80))])).astype(np.uint32)
        sa, sb = set(a.tolist()), set(b.tolist())
        ref = len(sa & sb) / len(sa | sb) if sa | sb else 1.0
        assert exact_jaccard(a, b) == pytest.approx(ref)
        for threshold in (0.5, 0.8, 0.95):
            assert similar(a, b, threshold) == (ref >= threshold)


def test_signature_chunk_routes_the_reference_keys():
    rng = random.Random(5)
    texts = [normalize(random_text(rng, rng.randint(0, 60))) for _ in range(120)]
    params = LshParams.make(threshold=0.8, num_perm=128, shingle_size=5, exact=True, near=True)
    parts, start = 3, 1_000
    (offsets, values), exact_keys, routed = signature_chunk(texts, start, params, parts)
    template = minhash_template(128)
    expected: set[tuple[int, bool, int]] = set()
    for i, text in enumerate(texts):
        ref_set = ref_shingle_hashes(text, 5)
        assert np.array_equal(values[offsets[i] : offsets[i + 1]], ref_set)
        key = int.from_bytes(hashlib.blake2b(b"exact" + text.encode(), digest_size=8).digest(), "little", signed=True)
        assert exact_keys[i] == key
        expected.add((key, True, start + i))
        if len(ref_set):
            ref = MinHash(num_perm=128, seed=1, hashfunc=lambda x: x, permutations=template.permutations, scheme=template.scheme)
            ref.update_batch(ref_set.tolist())
            sig = ref.hashvalues[: params.bands * params.rows].astype(np.uint64).reshape(params.bands, params.rows)
            from pipelines.lsh import _BAND_MULT

            for band, row in enumerate(sig):
                mixed = sum(int(v) * int(m) for v, m in zip(row, _BAND_MULT[: params.rows])) & MASK
                mixed ^= (band * 0x9E3779B97F4A7C15) & MASK
                expected.add((mixed - (1 << 64) if mixed >= 1 << 63 else mixed, False, start + i))
            assert band_keys(ref.hashvalues[None, :], params).shape == (1, params.bands)
    got = [entry for part in routed for entry in part]
    assert len(got) == len(set(got)) and set(got) == expected
    for p, part in enumerate(routed):
        assert part and all(key % parts == p for key, _, _ in part)


def _brute_force_clusters(texts: list[str], threshold: float) -> list[list[int]]:
    sets = [set(shingles(t, 5)) for t in texts]
    edges = [(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts))
             if len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= threshold]
    return sorted(components(len(texts), edges))


def _lsh_clusters(texts, params, chunk, parts):
    maps = [signature_chunk(texts[s : s + chunk], s, params, parts) for s in range(0, len(texts), chunk)]
    edges = [e for p in range(parts) for e in group_partition([m[2][p] for m in maps], [m[0] for m in maps], chunk, params)]
    return sorted(components(len(texts), edges))


def _lsh_clusters_uneven(texts, params, firsts, parts):
    """Chunks of different sizes (one per store unit), located by their first docs."""
    bounds = [*firsts, len(texts)]
    maps = [signature_chunk(texts[a:b], a, params, parts) for a, b in zip(bounds, bounds[1:])]
    edges = [e for p in range(parts) for e in group_partition([m[2][p] for m in maps], [m[0] for m in maps], firsts, params)]
    return sorted(components(len(texts), edges))


@pytest.mark.parametrize("chunk,parts", [(37, 1), (100, 4)])
def test_clusters_equal_every_pair_compared_exactly(chunk, parts):
    texts, pairs = planted_corpus(distinct=160, planted=64, seed=9)
    texts = [normalize(t) for t in texts]
    texts += [texts[3], texts[3] + " tail"]  # an exact copy and a near one of the same document
    params = LshParams.make(threshold=0.8, num_perm=128, shingle_size=5, exact=True, near=True)
    reference = _brute_force_clusters(texts, 0.8)
    assert len(reference) >= 33  # the 32 planted pairs at J >= 0.8 and the copies of document 3
    assert _lsh_clusters(texts, params, chunk, parts) == reference
    assert _lsh_clusters_uneven(texts, params, [0, 5, 6, 90, 91, 200], parts) == reference


def test_trajectory_length_clusters_equal_every_pair_compared_exactly():
    writer = TrajectoryWriter(seed=4)
    docs = [writer.document() for _ in range(14)]
    texts = [" ".join(w) for w in docs]
    texts += [writer.variant(docs[i], level) for i, level in enumerate((1.0, 0.95, 0.9, 0.85, 0.7, 0.5))]
    texts = [normalize(t) for t in texts]
    params = LshParams.make(threshold=0.8, num_perm=128, shingle_size=5, exact=True, near=True)
    reference = _brute_force_clusters(texts, 0.8)
    assert reference == [[0, 14], [1, 15], [2, 16], [3, 17]]
    assert _lsh_clusters(texts, params, 5, 2) == reference


def test_texts_longer_than_one_hashing_span_hash_as_a_whole(monkeypatch):
    import pipelines.lsh as lsh

    rng = random.Random(8)
    text = " ".join(rng.choice(PIECES[:6]) for _ in range(400)) + " " + "y" * 200 + " tail end"
    expected = ref_shingle_hashes(text, 5)
    assert np.array_equal(shingle_hashes(text, 5), expected)
    monkeypatch.setattr(lsh, "_MAX_SPAN", 64)  # many spans, and a word longer than one
    assert np.array_equal(shingle_hashes(text, 5), expected)
    assert np.array_equal(shingle_hashes(text, 1), ref_shingle_hashes(text, 1))
