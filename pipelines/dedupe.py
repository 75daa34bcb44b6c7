"""Deduplication of trajectories: exact (normalised hash) and near (MinHash LSH), on Ray.

The text compared is the assistant side of a conversation (what the trainer
learns from), lowercased with runs of whitespace squeezed.

How it scales (no single-node index of everything):
1. **Signatures** — Ray tasks over chunks of documents compute each document's
   exact hash, its set of hashed word ``shingle_size``-grams and its MinHash
   signature (``datasketch``), and cut the signature into ``bands`` of ``rows``;
   every (band key, doc) pair is routed to one of ``partitions`` by its key.
2. **Candidates** — one Ray task per partition groups the keys routed to it
   across all chunks; documents sharing a key are candidates. Candidates are
   confirmed by the exact Jaccard of their hashed shingle sets (>= ``threshold``;
   fetched from the object store only for chunks that have candidates), so LSH
   false positives never merge clusters; exact-hash buckets need no check.
3. **Clusters** — connected components (union-find) over the confirmed edges,
   which are few (one per duplicate, not per document).
4. **Keeper** — within a cluster keep one: passed before failed, then the
   higher score, then the shorter text, then the smaller id (deterministic).

Defaults (``DedupeConfig``): exact on, near on, threshold 0.85 (exact
Jaccard of 5-word shingles), 128 permutations, bands chosen so a pair *at* the
threshold becomes a candidate with probability >= 0.995 (128 perms at 0.85:
18 bands of 7 rows), chunks of 1000 documents, one partition per Ray CPU.
Without Ray initialised (or for a single chunk) the same functions run in
process. The building blocks live in ``pipelines/lsh.py``: shingle hashes and
signatures are numpy over whole documents (no Python step per word or shingle),
so a core signs tens of MB of trajectory text per second (``bench/bench_dedupe.py``).
``make all`` runs the same blocks once more over every domain's rows together
(``pipelines/mixture_dedupe.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from pipelines.lsh import (  # noqa: F401  (re-exported: the stage's public names)
    LshParams,
    choose_bands,
    components,
    exact_jaccard,
    group_partition,
    minhash_signature,
    shingle_hashes,
    shingles,
    signature_chunk,
)
from schemas import Trajectory

_SPACE = re.compile(r"\s+")


def normalized_text(trajectory: Trajectory) -> str:
    parts = []
    for m in trajectory.messages:
        if m.role == "assistant":
            parts.append(m.content)
            parts.extend(f"{c.function.name}({c.function.arguments})" for c in m.tool_calls)
    return normalize(" ".join(parts))


def normalize(text: str) -> str:
    return _SPACE.sub(" ", text.lower()).strip()


def _use_ray(use_ray: bool | None, chunks: int) -> bool:
    if use_ray is not None:
        return use_ray
    try:
        import ray
    except ImportError:
        return False
    return ray.is_initialized() and chunks > 1


def duplicate_clusters(
    texts: Sequence[str], params: LshParams, *, chunk_size: int = 1000, partitions: int | None = None, use_ray: bool | None = None
) -> tuple[list[list[int]], np.ndarray]:
    """Clusters (lists of doc indices, size >= 2) of duplicate ``texts``, and their exact keys."""
    n = len(texts)
    if n == 0:
        return [], np.zeros(0, dtype=np.int64)
    starts = list(range(0, n, chunk_size))
    if _use_ray(use_ray, len(starts)):
        import ray

        parts = partitions or max(1, int(ray.cluster_resources().get("CPU", 1)))
        mapper = ray.remote(_remote_signature_chunk).options(num_returns=2 + parts)
        outs = [mapper.remote(list(texts[s : s + chunk_size]), s, params, parts) for s in starts]
        set_refs = [o[0] for o in outs]
        reducer = ray.remote(_reduce_remote)
        edge_refs = [reducer.remote(set_refs, chunk_size, params, *[o[2 + p] for o in outs]) for p in range(parts)]
        edges = [e for part in ray.get(edge_refs) for e in part]
        exact_keys = np.concatenate(ray.get([o[1] for o in outs]))
    else:
        parts = partitions or 1
        results = [_split(signature_chunk(texts[s : s + chunk_size], s, params, parts)) for s in starts]
        sets = [r[0] for r in results]
        exact_keys = np.concatenate([r[1] for r in results])
        edges = []
        for p in range(parts):
            edges.extend(group_partition([r[2 + p] for r in results], sets, chunk_size, params))
    return components(n, edges), exact_keys


def _split(result):
    sigs, exact_keys, routed = result
    return [sigs, exact_keys, *routed]


def _reduce_remote(set_refs, chunk_size, params, *routed_parts):
    import ray

    return group_partition(list(routed_parts), set_refs, chunk_size, params, fetch=ray.get)


def _remote_signature_chunk(texts, start, params, partitions):
    return _split(signature_chunk(texts, start, params, partitions))


@dataclass
class DedupeResult:
    kept: list[Trajectory]
    removed_exact: list[str] = field(default_factory=list)
    removed_near: list[str] = field(default_factory=list)
    clusters: int = 0


def _preference(t: Trajectory, text: str) -> tuple:
    v = t.verdict
    return (not (v and v.passed), -(v.score if v else 0.0), len(text), t.id)


def dedupe(
    trajectories: list[Trajectory],
    *,
    exact: bool = True,
    near: bool = True,
    threshold: float = 0.85,
    num_perm: int = 128,
    shingle_size: int = 5,
    bands: int | None = None,
    chunk_size: int = 1000,
    partitions: int | None = None,
    use_ray: bool | None = None,
) -> DedupeResult:
    if not (exact or near) or not trajectories:
        return DedupeResult(kept=sorted(trajectories, key=lambda t: t.id))
    texts = [normalized_text(t) for t in trajectories]
    params = LshParams.make(threshold=threshold, num_perm=num_perm, shingle_size=shingle_size, exact=exact, near=near, bands=bands)
    clusters, exact_keys = duplicate_clusters(texts, params, chunk_size=chunk_size, partitions=partitions, use_ray=use_ray)
    result = DedupeResult(kept=[], clusters=len(clusters))
    removed: set[int] = set()
    for cluster in clusters:
        keeper = min(cluster, key=lambda i: _preference(trajectories[i], texts[i]))
        for i in cluster:
            if i == keeper:
                continue
            removed.add(i)
            same = exact and exact_keys[i] == exact_keys[keeper]
            (result.removed_exact if same else result.removed_near).append(trajectories[i].id)
    result.kept = sorted((t for i, t in enumerate(trajectories) if i not in removed), key=lambda t: t.id)
    result.removed_exact.sort()
    result.removed_near.sort()
    return result
