"""MinHash LSH building blocks of the dedupe stage (``pipelines/dedupe.py`` runs them).

* ``shingle_hashes``: a text's word n-grams as sorted unique 32-bit hashes, computed
  over the text's UTF-8 bytes with numpy (no Python loop per word or gram);
* ``minhash_signature``: the ``datasketch`` MinHash of those hashes (its default
  ``affine32`` scheme, bit for bit), all permutations at once;
* ``choose_bands``: LSH bands/rows so a pair at the threshold collides with
  probability >= 0.995 (recall first: candidates are confirmed exactly later);
* ``signature_chunk`` (map) and ``group_partition`` (reduce): route (band key,
  doc) pairs to partitions, group each partition's buckets, confirm candidates
  by exact Jaccard of their shingle sets;
* ``components``: connected components of the confirmed edges.

All pure functions of their inputs (the caches below only hold constants), so
Ray tasks and the in-process path run the same code.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
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


_BAND_MULT = np.random.default_rng(20261122).integers(1, 2**63, size=4096, dtype=np.uint64) | np.uint64(1)

# A gram's hash is the polynomial sum_j (byte_j + 1) * BASE**j mod 2**64 over its UTF-8 bytes
# (words joined by one space), then the murmur3 64-bit finaliser, then the top 32 bits. With
# prefix sums P over the whole text, the gram at bytes [s, e) is (P[e] - P[s]) * BASE**-s: one
# vectorised step for all grams, whatever their length (BASE is odd, so it has an inverse).
_BASE = 0x9E3779B97F4A7C15
_BASE_INV = pow(_BASE, -1, 1 << 64)
_FMIX = (np.uint64(33), np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))
_POWERS = (np.ones(1, np.uint64), np.ones(1, np.uint64))  # BASE**j, BASE**-j for j < len; grown on demand
_MAX_SPAN = 1 << 20  # bytes hashed per step: bounds the power tables whatever a text's length
# str.split()'s separators beyond ASCII (isspace; U+3000 is the last); the ASCII ones other than
# the space are all below 0x20.
_UNICODE_SPACES = tuple(chr(c) for c in range(0x80, 0x3001) if chr(c).isspace())


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    global _POWERS
    if len(_POWERS[0]) < n:
        size = max(n, 2 * len(_POWERS[0]), 1 << 16)
        tables = []
        for base in (_BASE, _BASE_INV):
            t = np.full(size, base, dtype=np.uint64)
            t[0] = 1
            with np.errstate(over="ignore"):
                np.multiply.accumulate(t, out=t)
            tables.append(t)
        _POWERS = (tables[0], tables[1])
    return _POWERS


def _fmix64(h: np.ndarray) -> np.ndarray:
    shift, m1, m2 = _FMIX
    with np.errstate(over="ignore"):
        h ^= h >> shift
        h *= m1
        h ^= h >> shift
        h *= m2
        h ^= h >> shift
    return h


def _canonical(text: str) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of ``" ".join(text.split())`` and the positions of its spaces. A text that
    already is that (the stage's normalised texts are) is not split into Python strings."""
    buf = np.frombuffer(text.encode(), dtype=np.uint8)
    clean = not len(buf) or buf.min() >= 0x20 and (text.isascii() or not any(s in text for s in _UNICODE_SPACES))
    if clean:
        spaces = np.flatnonzero(buf == 0x20)
        clean = not len(spaces) or (spaces[0] != 0 and spaces[-1] != len(buf) - 1 and not (np.diff(spaces) == 1).any())
    if not clean:
        buf = np.frombuffer(" ".join(text.split()).encode(), dtype=np.uint8)
        spaces = np.flatnonzero(buf == 0x20)
    return buf, spaces


def gram_hashes(text: str, size: int) -> np.ndarray:
    """The 32-bit hash of every word ``size``-gram of ``text`` in order (one gram of all words
    for a shorter text; none for an empty one), duplicates included."""
    buf, spaces = _canonical(text)
    if not len(buf):
        return np.zeros(0, dtype=np.uint32)
    n = len(buf)
    words = len(spaces) + 1
    width = min(size, words)
    grams = words - width + 1
    starts = np.zeros(grams, dtype=np.intp)
    starts[1:] = spaces[: grams - 1] + 1
    ends = np.full(grams, n, dtype=np.intp)
    ends[:-1] = spaces[width - 1 :]
    if n <= _MAX_SPAN:
        return (_fmix64(_span_hashes(buf, starts, ends)) >> np.uint64(32)).astype(np.uint32)
    h = np.empty(grams, dtype=np.uint64)
    first = 0
    while first < grams:  # spans of at most _MAX_SPAN bytes (one gram longer than that alone)
        base = int(starts[first])
        last = max(first + 1, int(np.searchsorted(ends, base + _MAX_SPAN, side="right")))
        s, e = starts[first:last] - base, ends[first:last] - base
        h[first:last] = _span_hashes(buf[base : int(ends[last - 1])], s, e)
        first = last
    return (_fmix64(h) >> np.uint64(32)).astype(np.uint32)


def _span_hashes(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    n = len(buf)
    power, inverse = _powers(n + 1)
    prefix = np.zeros(n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        terms = buf * power[:n]
        terms += power[:n]
        np.cumsum(terms, out=prefix[1:])
        h = prefix[ends]
        h -= prefix[starts]
        h *= inverse[starts]
    return h


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    # sort + neighbour compare: several times faster than np.unique's hash path on these sizes
    if len(values) < 2:
        return values
    s = np.sort(values)
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def shingle_hashes(text: str, size: int) -> np.ndarray:
    """Sorted unique 32-bit hashes of the word ``size``-grams of ``text`` (one gram for short
    texts); words are ``text.split()``'s, so case and spacing count only as the text has them."""
    return _sorted_unique(gram_hashes(text, size))


def _identity(x):
    return x


@functools.lru_cache(maxsize=8)
def minhash_template(num_perm: int) -> Any:
    """The permutations every signature of the stage uses (datasketch, seed 1, its default scheme)."""
    from datasketch import MinHash

    return MinHash(num_perm=num_perm, seed=1)


_SIGNATURE_BLOCK = 16384  # values per step: (num_perm x block) uint32 products, long rows for the min


def minhash_signature(values: np.ndarray, template: Any) -> np.ndarray:
    """The datasketch MinHash signature of pre-hashed ``values``, as
    ``MinHash(hashfunc=identity).update_batch(values)`` computes it, over all
    permutations at once (update_batch's per-value Python call is most of the
    cost otherwise): the scheme's fmix pre-mix, then ``a*h + b`` wrapping in the
    scheme's width, min per permutation. Falls back to update_batch if
    datasketch's internals move; a test checks the two agree."""
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
    dtype = template.hashvalues.dtype
    out = template.hashvalues.copy()
    if not len(values):
        return out
    with np.errstate(over="ignore"):
        hv = _fmix(values.astype(dtype), _SCHEME_WIDTHS[template.scheme])
        buf = np.empty((len(a), min(len(hv), _SIGNATURE_BLOCK)), dtype=dtype)
        for s in range(0, len(hv), _SIGNATURE_BLOCK):
            block = buf[:, : len(hv) - s] if len(hv) - s < buf.shape[1] else buf
            np.multiply(a[:, None], hv[s : s + block.shape[1]], out=block)
            np.add(block, b[:, None], out=block)
            np.minimum(out, block.min(axis=1), out=out)
    return out


def band_keys(signatures: np.ndarray, params: "LshParams") -> np.ndarray:
    """(docs, bands) int64 LSH keys: each band's rows mixed into one key, band index folded in."""
    rows = signatures[:, : params.bands * params.rows].astype(np.uint64).reshape(len(signatures), params.bands, params.rows)
    band_ids = np.arange(params.bands, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        return ((rows * _BAND_MULT[: params.rows]).sum(axis=2, dtype=np.uint64) ^ band_ids).view(np.int64)


def signature_chunk(texts: Sequence[str], start: int, params: LshParams, partitions: int):
    """Map step for docs ``start .. start+len(texts)`` (already normalised): (shingle sets as
    CSR (offsets, values), exact keys, per-partition lists of (key, is_exact, doc))."""
    n = len(texts)
    sets = [shingle_hashes(t, params.shingle_size) if params.near else np.zeros(0, np.uint32) for t in texts]
    offsets = np.zeros(n + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in sets])
    exact_keys = np.array([_key(b"exact", t.encode()) for t in texts], dtype=np.int64)
    routed: list[list[tuple[int, bool, int]]] = [[] for _ in range(partitions)]
    if params.exact:
        for offset, key in enumerate(exact_keys.tolist()):
            routed[key % partitions].append((key, True, start + offset))
    near = [i for i in range(n) if params.near and len(sets[i])]
    if near:
        template = minhash_template(params.num_perm)
        keys = band_keys(np.stack([minhash_signature(sets[i], template) for i in near]), params)
        for offset, doc_keys in zip(near, keys.tolist()):
            for key in doc_keys:
                routed[key % partitions].append((key, False, start + offset))
    return (offsets, np.concatenate(sets) if sets else np.zeros(0, np.uint32)), exact_keys, routed


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard of two sorted unique hash arrays."""
    if not len(a) and not len(b):
        return 1.0
    if len(a) > len(b):
        a, b = b, a
    if not len(a):
        return 0.0
    at = np.searchsorted(b, a)  # binary search of the smaller set in the larger
    np.minimum(at, len(b) - 1, out=at)
    inter = int(np.count_nonzero(b[at] == a))
    return inter / (len(a) + len(b) - inter)


def similar(a: np.ndarray, b: np.ndarray, threshold: float) -> bool:
    """exact_jaccard(a, b) >= threshold, skipping the intersection when the sizes alone rule it
    out (Jaccard <= smaller / larger)."""
    small, large = sorted((len(a), len(b)))
    if large and small < threshold * large:
        return False
    return exact_jaccard(a, b) >= threshold


def group_partition(routed_parts: list[list[tuple[int, bool, int]]], set_chunks: list[Any], chunk_size: int | Sequence[int],
                    params: LshParams, fetch=None) -> list[tuple[int, int]]:
    """Reduce step for one partition: confirmed duplicate edges (doc, doc).

    LSH candidates are confirmed by the exact Jaccard of their (hashed) shingle
    sets, so estimator noise costs neither precision nor recall. ``set_chunks[i]``
    holds chunk i's shingle sets (or a Ray ref ``fetch`` resolves); only chunks
    with members in a multi-document bucket are fetched. Chunk i starts at doc
    ``i * chunk_size``, or, for chunks of different sizes (one per store unit),
    ``chunk_size`` is the list of each chunk's first doc (the ``start`` its
    ``signature_chunk`` was given), ascending.
    """
    if isinstance(chunk_size, (int, np.integer)):
        size = int(chunk_size)

        def locate(doc: int) -> tuple[int, int]:
            return divmod(doc, size)
    else:
        firsts = list(chunk_size)

        def locate(doc: int) -> tuple[int, int]:
            chunk = bisect.bisect_right(firsts, doc) - 1
            return chunk, doc - firsts[chunk]

    buckets: dict[tuple[int, bool], list[int]] = {}
    for part in routed_parts:
        for key, is_exact, doc in part:
            buckets.setdefault((key, is_exact), []).append(doc)
    edges: list[tuple[int, int]] = []
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def shingle_set(doc: int) -> np.ndarray:
        chunk, i = locate(doc)
        if chunk not in cache:
            cache[chunk] = fetch(set_chunks[chunk]) if fetch else set_chunks[chunk]
        offsets, values = cache[chunk]
        return values[offsets[i] : offsets[i + 1]]

    # A near pair shares most of its bands: confirm it once, not once per shared bucket.
    verdicts: dict[tuple[int, int], bool] = {}

    def same(lead: int, theirs: np.ndarray, doc: int, mine: np.ndarray) -> bool:
        if (lead, doc) not in verdicts:
            verdicts[lead, doc] = similar(mine, theirs, params.threshold)
        return verdicts[lead, doc]

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
            match = next((lead for lead, theirs in leaders if same(lead, theirs, doc, mine)), None)
            if match is not None:
                edges.append((match, doc))
            elif len(leaders) < BUCKET_LEADERS:
                leaders.append((doc, mine))
    return sorted(set(edges))


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
