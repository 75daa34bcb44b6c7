"""Near-duplicate detection on a planted corpus: recall and precision at Jaccard >= 0.8,
and documents per second per core, through the Ray dedupe stage (``pipelines.dedupe``).

The corpus: distinct random-word documents (some sharing a boilerplate opening,
as trajectories share phrasing), plus originals that each get exactly one
variant edited to a target Jaccard level (1.0 = case and spacing only, then
0.95 ... 0.5). The ground truth is the *exact* Jaccard of the two documents'
shingle sets, computed here, not the target. A pair counts as found when both
documents land in the same cluster; precision is over every pair inside the
predicted clusters, judged by its exact Jaccard.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

LEVELS = (1.0, 0.95, 0.9, 0.85, 0.75, 0.7, 0.6, 0.5)
CUT = 0.8
BOILERPLATE = ("let me think about this step by step and write down what is known before "
               "i start to compute anything so that the plan stays clear").split()


def _vocab(size: int, rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(size)]


def _doc(rng: random.Random, vocab: list[str], boiler: bool) -> list[str]:
    words = [rng.choice(vocab) for _ in range(rng.randint(120, 260))]
    return (BOILERPLATE + words) if boiler else words


def jaccard(a: str, b: str, size: int = 5) -> float:
    from pipelines.dedupe import normalize, shingles

    sa, sb = set(shingles(normalize(a), size)), set(shingles(normalize(b), size))
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def _variant(words: list[str], level: float, rng: random.Random, vocab: list[str]) -> str:
    """A copy whose shingle Jaccard with ``words`` is as close to ``level`` as edits allow."""
    original = " ".join(words)
    if level >= 1.0:  # normalisation-only difference: case and whitespace
        return "  ".join(w.upper() if i % 7 == 0 else w for i, w in enumerate(words))
    order = list(range(len(words)))
    rng.shuffle(order)
    replacement = [rng.choice(vocab) for _ in words]

    def edited(k: int) -> str:
        changed = set(order[:k])
        return " ".join(replacement[i] if i in changed else w for i, w in enumerate(words))

    lo, hi = 0, len(words)  # Jaccard falls as k grows: find the k closest to the level
    while lo < hi:
        mid = (lo + hi) // 2
        if jaccard(original, edited(mid)) > level:
            lo = mid + 1
        else:
            hi = mid
    candidates = [k for k in (lo - 1, lo) if k >= 0]
    best = min(candidates, key=lambda k: abs(jaccard(original, edited(k)) - level))
    return edited(best)


def planted_corpus(distinct: int, planted: int, seed: int = 0) -> tuple[list[str], list[tuple[int, int, float, float]]]:
    """(texts, pairs): each pair is (original index, variant index, target level, exact Jaccard)."""
    rng = random.Random(seed)
    vocab = _vocab(20_000, rng)
    texts = [" ".join(_doc(rng, vocab, rng.random() < 0.2)) for _ in range(distinct)]
    pairs = []
    for i in range(planted):
        level = LEVELS[i % len(LEVELS)]
        words = _doc(rng, vocab, rng.random() < 0.2)
        texts.append(" ".join(words))
        texts.append(_variant(words, level, rng, vocab))
        pairs.append((len(texts) - 2, len(texts) - 1, level, jaccard(texts[-2], texts[-1])))
    order = list(range(len(texts)))  # shuffle so pairs straddle chunks and partitions
    rng.shuffle(order)
    where = {old: new for new, old in enumerate(order)}
    texts = [texts[old] for old in order]
    pairs = [(where[a], where[b], lvl, j) for a, b, lvl, j in pairs]
    return texts, pairs


def score(texts, pairs, clusters) -> dict:
    cluster_of = {doc: c for c, members in enumerate(clusters) for doc in members}
    positives = [(a, b) for a, b, _, j in pairs if j >= CUT]
    found = sum(1 for a, b in positives if a in cluster_of and cluster_of.get(a) == cluster_of.get(b))
    predicted = [(x, y) for members in clusters for i, x in enumerate(members) for y in members[i + 1 :]]
    correct = sum(1 for x, y in predicted if jaccard(texts[x], texts[y]) >= CUT)
    per_level = {}
    for level in LEVELS:
        at = [(a, b) for a, b, lvl, _ in pairs if lvl == level]
        merged = sum(1 for a, b in at if a in cluster_of and cluster_of.get(a) == cluster_of.get(b))
        per_level[str(level)] = round(merged / len(at), 4) if at else None
    return {
        "recall": round(found / len(positives), 4) if positives else 1.0,
        "precision": round(correct / len(predicted), 4) if predicted else 1.0,
        "positive_pairs": len(positives),
        "predicted_pairs": len(predicted),
        "merged_fraction_by_level": per_level,
    }


def run(distinct: int | None = None, planted: int | None = None, cpus: int = 2) -> dict:
    """Default 8,000 distinct documents + 1,000 planted pairs (125 per level); ``BENCH_DEDUPE_SCALE``
    multiplies both (2 gives the 20,000-document corpus of earlier results)."""
    import os

    import ray

    scale = float(os.environ.get("BENCH_DEDUPE_SCALE", "1"))
    distinct = distinct or int(8_000 * scale)
    planted = planted or int(1_000 * scale)

    from pipelines.dedupe import LshParams, duplicate_clusters, normalize

    texts, pairs = planted_corpus(distinct, planted)
    normalized = [normalize(t) for t in texts]  # what the stage compares (dedupe() does this)
    params = LshParams.make(threshold=CUT, num_perm=128, shingle_size=5, exact=True, near=True)
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}})
    try:
        duplicate_clusters(normalized[:2000], params, chunk_size=500, use_ray=True)  # warm the workers
        t0 = time.perf_counter()
        clusters, _ = duplicate_clusters(normalized, params, chunk_size=1000, use_ray=True)
        wall = time.perf_counter() - t0
    finally:
        ray.shutdown()
    quality = score(texts, pairs, clusters)
    per_core = len(texts) / wall / cpus
    return {
        "name": "dedupe",
        "documents": len(texts),
        "planted_pairs": len(pairs),
        "levels": list(LEVELS),
        "threshold": CUT,
        "num_perm": params.num_perm,
        "bands": params.bands,
        "rows": params.rows,
        "shingle_size": params.shingle_size,
        "ray_cpus": cpus,
        "wall_s": round(wall, 2),
        "docs_per_s_per_core": round(per_core, 1),
        **quality,
        "figures": [
            {"figure": "near-dup recall @ J>=0.8", "value": quality["recall"], "goal": ">= 0.95"},
            {"figure": "near-dup precision @ J>=0.8", "value": quality["precision"], "goal": ">= 0.95"},
            {"figure": "dedupe docs/s/core", "value": round(per_core, 1), "goal": "-"},
        ],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
