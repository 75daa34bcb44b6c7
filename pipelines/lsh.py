"""MinHash LSH building blocks of the dedupe stage (``pipelines/dedupe.py`` runs them).

* ``shingle_hashes``: a text's word n-grams as sorted unique 32-bit hashes;
* ``minhash_signature``: the ``datasketch`` MinHash of those hashes, vectorised;
* ``choose_bands``: LSH bands/rows so a pair at the threshold collides with
  probability >= 0.995 (recall first: candidates are confirmed exactly later);
* ``signature_chunk`` (map) and ``group_partition`` (reduce): route (band key,
  doc) pairs to partitions, group each partition's buckets, confirm candidates
  by exact Jaccard of their shingle sets;
* ``components``: connected components of the confirmed edges.

All pure functions of their inputs, so Ray tasks and the in-process path run
the same code.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

BUCKET_LEADERS = 64  # per LSH bucket: members are compared with at most this many leaders


def shingles(text: str, size: int) -> list[bytes]:
    """Word ``size``-grams as bytes (for readers and benchmarks; the stage hashes them)."""
    words = text.split()
    if len(words) <= size:
        return [" ".join(words).encode()]
    return list({" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)})


def choose_bands(threshold: float, num_perm: int, target: float = 0.995) -> tuple[int, int]:
    """(bands, rows): the most rows per band such that a pair at ``threshold`` still
    collides in some band with probability >= ``target`` (recall first; the
    signature check removes the false positives that costs)."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= target:
            return bands, rows
    return num_perm, 1


@dataclass(frozen=True)
class LshParams:
    threshold: float = 0.85
    num_perm: int = 128
    shingle_size: int = 5
    bands: int = 18
    rows: int = 7
    exact: bool = True
    near: bool = True

    @classmethod
    def make(cls, *, threshold: float, num_perm: int, shingle_size: int, exact: bool, near: bool, bands: int | None = None) -> "LshParams":
        if bands:
            b, r = bands, num_perm // bands
        else:
            b, r = choose_bands(threshold, num_perm)
        return cls(threshold, num_perm, shingle_size, b, r, exact, near)


def _key(tag: bytes, payload: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(tag + payload, digest_size=8).digest(), "little", signed=True)


_PRIME = np.uint64(0x100000001B3)  # FNV prime: mixes word hashes into a shingle hash
_BAND_MULT = np.random.default_rng(20261122).integers(1, 2**63, size=4096, dtype=np.uint64) | np.uint64(1)


@functools.lru_cache(maxsize=1 << 18)
def _word_hash(word: str) -> int:
    return zlib.crc32(word.encode())


def shingle_hashes(text: str, size: int) -> np.ndarray:
    """Sorted unique 32-bit hashes of the word ``size``-grams of ``text`` (one gram for short texts).

    Word hashes are crc32 (deterministic across processes, unlike ``hash``);
    grams combine them with wrapping uint64 arithmetic, vectorised."""
    words = text.split()
    if not words:
        return np.zeros(0, dtype=np.uint32)
    w = np.array([_word_hash(x) for x in words], dtype=np.uint64)
    width = min(size, len(w))
    h = np.zeros(len(w) - width + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(width):
            h = h * _PRIME + w[k : len(w) - width + 1 + k]
    return np.unique(((h >> np.uint64(32)) ^ h).astype(np.uint32))


def _identity(x):
    return x


def minhash_signature(values: np.ndarray, template: Any) -> np.ndarray:
    """The datasketch MinHash signature of pre-hashed ``values``, as
    ``MinHash(hashfunc=identity).update_batch(values)`` computes it, vectorised
    over the whole set in one step (update_batch's per-value Python call is
    most of the cost otherwise). Falls back to update_batch if datasketch's
    internals move; a test checks the two agree."""
    from datasketch import MinHash

    try:
        from datasketch.minhash import _SCHEME_WIDTHS, _fmix
    except ImportError:
        _fmix = None
    if _fmix is None or template.scheme not in _SCHEME_WIDTHS:
        sig = MinHash(num_perm=len(template.hashvalues), seed=1, hashfunc=_identity,
                      permutations=template.permutations, scheme=template.scheme)
        sig.update_batch(values.tolist())
        return sig.hashvalues
    a, b = template.permutations
    with np.errstate(over="ignore"):
        hv = _fmix(values.astype(template.hashvalues.dtype).reshape(-1, 1), _SCHEME_WIDTHS[template.scheme])
        return np.minimum(template.hashvalues, (hv * a + b).min(axis=0))


def signature_chunk(texts: Sequence[str], start: int, params: LshParams, partitions: int):
    """Map step for docs ``start .. start+len(texts)`` (already normalised): (shingle sets as
    CSR (offsets, values), exact keys, per-partition lists of (key, is_exact, doc))."""
    from datasketch import MinHash

    template = MinHash(num_perm=params.num_perm, seed=1)
    sets = [shingle_hashes(t, params.shingle_size) if params.near else np.zeros(0, np.uint32) for t in texts]
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in sets])
    exact_keys = np.zeros(len(texts), dtype=np.int64)
    routed: list[list[tuple[int, bool, int]]] = [[] for _ in range(partitions)]
    mult = _BAND_MULT[: params.rows]
    band_ids = np.arange(params.bands, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for offset, text in enumerate(texts):
        doc = start + offset
        exact_keys[offset] = _key(b"exact", text.encode())
        if params.exact:
            routed[exact_keys[offset] % partitions].append((int(exact_keys[offset]), True, doc))
        if not params.near or not len(sets[offset]):
            continue
        sig = minhash_signature(sets[offset], template)
        bands = sig[: params.bands * params.rows].astype(np.uint64).reshape(params.bands, params.rows)
        with np.errstate(over="ignore"):
            keys = ((bands * mult).sum(axis=1, dtype=np.uint64) ^ band_ids).view(np.int64)
        for key in keys.tolist():
            routed[key % partitions].append((key, False, doc))
    return (offsets, np.concatenate(sets) if sets else np.zeros(0, np.uint32)), exact_keys, routed


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard of two sorted unique hash arrays."""
    if not len(a) and not len(b):
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def group_partition(routed_parts: list[list[tuple[int, bool, int]]], set_chunks: list[Any], chunk_size: int, params: LshParams, fetch=None) -> list[tuple[int, int]]:
    """Reduce step for one partition: confirmed duplicate edges (doc, doc).

    LSH candidates are confirmed by the exact Jaccard of their (hashed) shingle
    sets, so estimator noise costs neither precision nor recall. ``set_chunks[i]``
    holds chunk i's shingle sets (or a Ray ref ``fetch`` resolves); only chunks
    with members in a multi-document bucket are fetched.
    """
    buckets: dict[tuple[int, bool], list[int]] = {}
    for part in routed_parts:
        for key, is_exact, doc in part:
            buckets.setdefault((key, is_exact), []).append(doc)
    edges: list[tuple[int, int]] = []
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def shingle_set(doc: int) -> np.ndarray:
        chunk = doc // chunk_size
        if chunk not in cache:
            cache[chunk] = fetch(set_chunks[chunk]) if fetch else set_chunks[chunk]
        offsets, values = cache[chunk]
        i = doc % chunk_size
        return values[offsets[i] : offsets[i + 1]]

    for (_, is_exact), docs in buckets.items():
        if len(docs) < 2:
            continue
        docs = sorted(set(docs))
        if is_exact:  # identical normalised text: a chain connects them all
            edges.extend(zip(docs, docs[1:]))
            continue
        # Greedy leaders bound the work of a huge bucket: each member is compared
        # with at most BUCKET_LEADERS earlier members, not with all of them.
        leaders: list[tuple[int, np.ndarray]] = []
        for doc in docs:
            mine = shingle_set(doc)
            match = next((lead for lead, theirs in leaders if exact_jaccard(mine, theirs) >= params.threshold), None)
            if match is not None:
                edges.append((match, doc))
            elif len(leaders) < BUCKET_LEADERS:
                leaders.append((doc, mine))
    return edges


def components(n: int, edges: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components with more than one member (union-find, path halving)."""
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for a, b in edges:
        for x in (a, b):
            groups.setdefault(find(x), [])
    for x in range(n):
        root = find(x)
        if root in groups:
            groups[root].append(x)
    return [sorted(g) for g in groups.values()]
