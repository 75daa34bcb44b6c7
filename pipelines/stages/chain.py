"""The post-rollout chain over a store: select -> decontaminate -> dedupe -> tokenize -> shards.

Streams over the store's unit files in batches (``plan_batches``): every batch is read and worked
on by a task (``passes.py``), and the driver only adds up small results — report counters, benchmark
hits, the duplicate edges LSH found and the keys of the clusters they form, row counts and shard
entries — so its memory does not grow with the run. Shard files are packed by tasks too.

Order rules (the same however many tasks or nodes run it, and in process): batches follow the
store's unit order (sorted unit ids); a batch's rows are sorted by (domain, trajectory id); a
domain's shards cut its rows, batch after batch, every ``rows_per_shard`` rows.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pyarrow.parquet as pq

from pipelines.config import RunConfig
from pipelines.stages.executor import Executor, default_executor
from pipelines.stages.passes import STRIDE, BatchContext, BatchParts, BatchScan, edges_of_partition, emit_batch, \
    pack_shard, scan_batch
from pipelines.stages.steps import Decontaminate, Dedupe, Select, Tokenize, WriteShards
from pipelines.store_stats import StoreStats
from schemas import Manifest, ShardEntry, shard_file_name


@dataclass
class ChainOutcome:
    """What the chain hands to the report and the manifest."""

    stats: StoreStats
    hits: list[dict]  # benchmark hits (each a removed trajectory), sorted by id
    selected: int
    after_decontamination: int
    after_dedupe: int
    removed_exact: list[str]
    removed_near: list[str]
    entries: list[ShardEntry]
    render_errors: list[tuple[str, str]]
    stage_s: dict[str, float] = field(default_factory=dict)


def plan_batches(unit_files: list[Path], docs_per_batch: int) -> list[list[str]]:
    """Consecutive unit files, cut when a batch reaches ``docs_per_batch`` trajectories (counted from
    the Parquet footers, not the data)."""
    batches: list[list[str]] = []
    current: list[str] = []
    count = 0
    for path in unit_files:
        current.append(str(path))
        count += pq.ParquetFile(path).metadata.num_rows
        if count >= docs_per_batch:
            batches.append(current)
            current, count = [], 0
    if current:
        batches.append(current)
    return batches


def _partitions(executor: Executor) -> int:
    """Band-key partitions: one per CPU of the cluster on Ray (the reduce runs in parallel), else one."""
    if isinstance(executor, _ray_executor_type()):
        import ray

        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    return 1


def run_chain(config: RunConfig, unit_files: list[Path], shards_dir: Path, *, tokenizer_path: str, index: Any,
              executor: Executor | None = None, on_stage: Callable[[str], None] = lambda name: None) -> ChainOutcome:
    """Run the chain over ``unit_files`` (in store order) and write the shard files into
    ``shards_dir`` (a staging folder the caller publishes with the manifest)."""
    ex = executor or default_executor()
    dedupe = Dedupe.of(config)
    ctx = BatchContext(select=Select.of(config), decontaminate=Decontaminate.of(config), dedupe=dedupe,
                       tokenize=Tokenize.of(config), domain=config.domain, tokenizer_path=tokenizer_path,
                       partitions=_partitions(ex) if dedupe.active else 1, plugins=tuple(config.plugins))
    batches = plan_batches(unit_files, max(1, config.dedupe.chunk_size))
    stage_s: dict[str, float] = {}
    clock = time.monotonic()

    on_stage("decontaminate")
    index_ref = ex.put(index)
    outs = [ex.submit(scan_batch, paths, b, ctx, index_ref, num_returns=3 + ctx.partitions)
            for b, paths in enumerate(batches)]
    scans: list[BatchScan] = ex.get([o[0] for o in outs])
    stage_s["decontaminate"], clock = time.monotonic() - clock, time.monotonic()

    on_stage("dedupe")
    removed_exact: list[str] = []
    removed_near: list[str] = []
    if dedupe.active and outs:
        set_refs = [o[1] for o in outs]
        edge_refs = [ex.submit(_partition_edges, set_refs, dedupe.params(), isinstance(ex, _ray_executor_type()),
                               *[o[3 + p] for o in outs]) for p in range(ctx.partitions)]
        edges = [e for part in ex.get(edge_refs) for e in part]
        removed_exact, removed_near = _keepers(edges, [o[2] for o in outs], ex, exact=config.dedupe.exact)
    del outs  # frees the shingle sets and band keys in the object store
    stage_s["dedupe"], clock = time.monotonic() - clock, time.monotonic()

    on_stage("tokenize")
    drop: list[set[str]] = [{h["id"] for h in scan.hits} for scan in scans]
    for trajectory_id, batch in removed_exact + removed_near:
        drop[batch].add(trajectory_id)
    parts_dir = shards_dir.with_name(shards_dir.name + ".parts")
    shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir(parents=True)
    emitted: list[BatchParts] = ex.get([ex.submit(emit_batch, paths, b, drop[b], ctx, str(parts_dir))
                                        for b, paths in enumerate(batches)])
    stage_s["tokenize"], clock = time.monotonic() - clock, time.monotonic()

    on_stage("shards")
    entries = _pack(emitted, shards_dir, WriteShards.of(config).settings.rows_per_shard, ex)
    shutil.rmtree(parts_dir, ignore_errors=True)
    stage_s["shards"] = time.monotonic() - clock

    selected = sum(s.selected for s in scans)
    clean = sum(s.clean for s in scans)
    return ChainOutcome(
        stats=StoreStats.total(s.stats for s in scans),
        hits=sorted((h for s in scans for h in s.hits), key=lambda h: h["id"]),
        selected=selected, after_decontamination=clean,
        after_dedupe=clean - len(removed_exact) - len(removed_near),
        removed_exact=sorted(i for i, _ in removed_exact), removed_near=sorted(i for i, _ in removed_near),
        entries=entries, render_errors=[e for part in emitted for e in part.render_errors], stage_s=stage_s,
    )


def _ray_executor_type() -> type:
    from pipelines.stages.executor import RayExecutor

    return RayExecutor


def _partition_edges(set_refs: list[Any], params: Any, remote: bool, *routed: Any) -> list[tuple[int, int]]:
    fetch = None
    if remote:
        import ray

        fetch = ray.get
    return edges_of_partition(set_refs, params, *routed, fetch=fetch)


def _keepers(edges: list[tuple[int, int]], keeper_refs: list[Any], ex: Executor, *, exact: bool
             ) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(removed as exact duplicates, removed as near duplicates), each (trajectory id, batch): in
    each cluster the preferred member stays (``dedupe._preference``). Keeper keys are fetched only
    for the batches a cluster touches."""
    from pipelines.lsh import components

    if not edges:
        return [], []
    nodes = sorted({d for e in edges for d in e})
    at = {d: i for i, d in enumerate(nodes)}
    clusters = components(len(nodes), [(at[a], at[b]) for a, b in edges])
    batches = sorted({nodes[i] // STRIDE for c in clusters for i in c})
    keys = dict(zip(batches, ex.get([keeper_refs[b] for b in batches])))
    removed_exact: list[tuple[str, int]] = []
    removed_near: list[tuple[str, int]] = []
    for cluster in clusters:
        docs = [nodes[i] for i in cluster]

        def key(doc: int) -> tuple:
            return keys[doc // STRIDE][1][doc % STRIDE]

        keeper = min(docs, key=key)
        keeper_exact = keys[keeper // STRIDE][2][keeper % STRIDE]
        for doc in docs:
            if doc == keeper:
                continue
            batch, pos = divmod(doc, STRIDE)
            same = exact and keys[batch][2][pos] == keeper_exact
            (removed_exact if same else removed_near).append((keys[batch][0][pos], batch))
    return removed_exact, removed_near


def _pack(emitted: list[BatchParts], shards_dir: Path, rows_per_shard: int, ex: Executor) -> list[ShardEntry]:
    """Cut each domain's rows (parts in batch order) every ``rows_per_shard`` rows; one task a shard."""
    per = max(1, rows_per_shard)
    by_domain: dict[str, list] = {}
    for batch in emitted:
        for part in batch.parts:
            by_domain.setdefault(part.domain, []).append(part)
    jobs = []
    for domain in sorted(by_domain):
        slices: list[tuple[str, int, int]] = []
        room, index = per, 0
        for part in by_domain[domain]:
            first = 0
            while first < part.rows:
                take = min(room, part.rows - first)
                slices.append((part.path, first, first + take))
                first, room = first + take, room - take
                if room == 0:
                    jobs.append(ex.submit(pack_shard, slices, domain, str(shards_dir / shard_file_name(domain, index))))
                    slices, room, index = [], per, index + 1
        if slices:
            jobs.append(ex.submit(pack_shard, slices, domain, str(shards_dir / shard_file_name(domain, index))))
    return list(ex.get(jobs))


def manifest_of(entries: list[ShardEntry], **fields: Any) -> Manifest:
    return Manifest(shards=entries, created_at=time.time(), **fields)
