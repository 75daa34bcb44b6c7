"""One near-duplicate space over the whole mixture (``make all``).

Each domain's run dedupes its own trajectories; the same trajectory text can still reach the
mixture from two domains (a tool-use answer that is also a math solution, an Agentic-CoT
rewrite of a run another domain kept). Before mixing, every domain's shard rows are deduped
together with the dedupe stage's own building blocks (``pipelines.dedupe.duplicate_clusters``:
exact hash + MinHash LSH, candidates confirmed by exact Jaccard) and the mixture's ``dedupe``
section (a run config's keys). The text compared is what the domain's own dedupe compared: the
assistant side of the stored trajectory, through the domain's training view where it has one.
In a cluster one row is kept by the stage's rule (passed, then score, then the shorter text,
then domain and id); the report counts the removed rows per pair of domains (keeper's domain,
removed row's domain) as exact or near duplicates. Rows whose trajectory is not in its domain's
store cannot be compared: they are kept and counted as unchecked.
"""

from __future__ import annotations

from itertools import combinations_with_replacement
from pathlib import Path
from typing import Any

from pipelines.config import DedupeConfig


def pair_key(a: str, b: str) -> str:
    return "|".join(sorted((a, b)))


def _texts(domain: str, run_dir: Path, wanted: set[str]) -> dict[str, str]:
    """Normalised texts of the trajectories ``wanted`` in ``run_dir``'s store, unit by unit."""
    from pipelines.dedupe import normalized_text
    from pipelines.store import TrajectoryStore
    from synthesizers.domains.registry import DOMAINS, get_domain

    view = get_domain(domain).training_messages if domain in DOMAINS else None
    store = TrajectoryStore(run_dir)
    out: dict[str, str] = {}
    for path in sorted(store.dir.glob("unit-*.parquet")):
        for t in store.read_unit(path.stem[len("unit-"):]):
            if t.id in wanted:
                out[t.id] = normalized_text(t.model_copy(update={"messages": view(t)}) if view else t)
    return out


def dedupe_across_domains(domain_rows: dict[str, list[Any]], run_dirs: dict[str, Path],
                          config: DedupeConfig) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """(rows per domain without the cross-domain duplicates, the report)."""
    from pipelines.dedupe import LshParams, duplicate_clusters

    domains = sorted(domain_rows)
    report: dict[str, Any] = {"exact": config.exact, "near": config.near, "threshold": config.threshold,
                              "documents": 0, "clusters": 0, "unchecked_rows": {}, "removed": {},
                              "pairs": {pair_key(a, b): {"exact": 0, "near": 0} for a, b in combinations_with_replacement(domains, 2)}}
    if not (config.exact or config.near):
        return domain_rows, report
    docs: list[tuple[str, Any]] = []
    texts: list[str] = []
    for domain in domains:
        rows = sorted(domain_rows[domain], key=lambda r: r.trajectory_id)
        found = _texts(domain, run_dirs[domain], {r.trajectory_id for r in rows})
        report["unchecked_rows"][domain] = sum(1 for r in rows if r.trajectory_id not in found)
        for row in rows:
            if row.trajectory_id in found:
                docs.append((domain, row))
                texts.append(found[row.trajectory_id])
    params = LshParams.make(threshold=config.threshold, num_perm=config.num_perm, shingle_size=config.shingle_size,
                            exact=config.exact, near=config.near, bands=config.bands)
    clusters, exact_keys = duplicate_clusters(texts, params, chunk_size=config.chunk_size) if texts else ([], [])
    report["documents"], report["clusters"] = len(texts), len(clusters)
    removed: set[tuple[str, str]] = set()
    for cluster in clusters:
        def preference(i: int) -> tuple:
            domain, row = docs[i]
            return (not row.passed, -row.score, len(texts[i]), domain, row.trajectory_id)

        keeper = min(cluster, key=preference)
        for i in cluster:
            if i == keeper:
                continue
            domain, row = docs[i]
            removed.add((domain, row.trajectory_id))
            kind = "exact" if config.exact and exact_keys[i] == exact_keys[keeper] else "near"
            report["pairs"][pair_key(docs[keeper][0], domain)][kind] += 1
            counts = report["removed"].setdefault(domain, {"exact": 0, "near": 0})
            counts[kind] += 1
    kept = {d: [r for r in rows if (d, r.trajectory_id) not in removed] for d, rows in domain_rows.items()}
    return kept, report
