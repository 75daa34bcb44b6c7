"""The work the post-rollout steps do on one batch of the store's unit files.

Pure functions of their arguments, so a Ray task on any node and the in-process path run the same
code. A batch is read from its unit files twice (scan, then emit) rather than held between the
passes: the driver never holds trajectories, and the object store holds only dedupe keys.

* ``scan_batch``: counts the batch for the report, selects, finds benchmark hits, and computes the
  dedupe keys of what is left (shingle sets and band keys stay in the object store; the keeper
  keys — id and preference — stay there too until a duplicate cluster needs them).
* ``emit_batch``: selects again, drops what the run decided to drop, tokenizes, and writes the
  batch's rows per domain, sorted by trajectory id, to a part file.
* ``pack_shard``: concatenates row slices of consecutive part files into one shard file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.stages.steps import Decontaminate, Dedupe, Select, Tokenize
from pipelines.store_stats import StoreStats
from schemas import ShardEntry, Trajectory, sha256_file, table_to_trajectories
from schemas.tokens import TokenSource

# Dedupe addresses a document as batch * STRIDE + position, so a partition task finds the batch
# holding a document's shingle set by division (``lsh.group_partition``'s chunk size).
STRIDE = 1 << 32


@dataclass(frozen=True)
class BatchContext:
    """Everything a batch task needs besides its files (small; pickled to every task)."""

    select: Select
    decontaminate: Decontaminate
    dedupe: Dedupe
    tokenize: Tokenize
    domain: str
    tokenizer_path: str
    partitions: int = 1
    plugins: tuple[str, ...] = ()  # the run's plugin modules: a domain defined outside the project


@dataclass
class BatchScan:
    """What a scan returns to the driver."""

    stats: StoreStats
    hits: list[dict] = field(default_factory=list)
    selected: int = 0
    clean: int = 0


@dataclass
class PartFile:
    domain: str
    path: str
    rows: int


@dataclass
class BatchParts:
    parts: list[PartFile] = field(default_factory=list)
    render_errors: list[tuple[str, str]] = field(default_factory=list)


def read_batch(paths: list[str]) -> list[Trajectory]:
    out: list[Trajectory] = []
    for path in paths:
        out.extend(table_to_trajectories(pq.read_table(path)))
    return out


def _domain_view(ctx: BatchContext):
    """The domain's training view: the messages the shards hold (the rollout's, but for a rewrite)."""
    from synthesizers.domains.registry import get_domain, import_plugins

    import_plugins(list(ctx.plugins))
    return get_domain(ctx.domain).training_messages


def _viewed(trajectories: list[Trajectory], ctx: BatchContext) -> list[Trajectory]:
    view = _domain_view(ctx)
    from pipelines.finish import training_view

    return [training_view(t, view, ctx.tokenizer_path) for t in trajectories]


def scan_batch(paths: list[str], batch: int, ctx: BatchContext, index: Any) -> list[Any]:
    """[BatchScan, shingle sets, keeper keys, band keys routed to each of ``ctx.partitions``]."""
    from pipelines.dedupe import _preference, normalized_text
    from pipelines.lsh import signature_chunk

    trajectories = read_batch(paths)
    stats = StoreStats.of(trajectories)
    selected = [t for t in trajectories if ctx.select.keep(t)]
    hits = ctx.decontaminate.hits(selected, index)
    gone = {h["id"] for h in hits}
    clean = _viewed([t for t in selected if t.id not in gone], ctx)
    scan = BatchScan(stats=stats, hits=sorted(hits, key=lambda h: h["id"]), selected=len(selected), clean=len(clean))
    if not ctx.dedupe.active:
        return [scan, None, None, *([[]] * ctx.partitions)]
    texts = [normalized_text(t) for t in clean]
    sets, exact_keys, routed = signature_chunk(texts, batch * STRIDE, ctx.dedupe.params(), ctx.partitions)
    keeper_keys = ([t.id for t in clean], [_preference(t, x) for t, x in zip(clean, texts)], exact_keys)
    return [scan, sets, keeper_keys, *routed]


def edges_of_partition(set_refs: list[Any], params: Any, *routed: Any, fetch: Any = None) -> list[tuple[int, int]]:
    from pipelines.lsh import group_partition

    return group_partition(list(routed), set_refs, STRIDE, params, fetch=fetch)


def emit_batch(paths: list[str], batch: int, drop: set[str], ctx: BatchContext, parts_dir: str) -> BatchParts:
    from pipelines.atomic import write_parquet
    from pipelines.shards import rows_to_table

    kept = [t for t in read_batch(paths) if ctx.select.keep(t) and t.id not in drop]
    rows, errors = ctx.tokenize.rows(_viewed(kept, ctx), ctx.tokenizer_path)
    by_domain: dict[str, list] = {}
    for row in sorted(rows, key=lambda r: (r.domain, r.trajectory_id)):
        by_domain.setdefault(row.domain, []).append(row)
    out = BatchParts(render_errors=errors)
    for domain, domain_rows in sorted(by_domain.items()):
        path = Path(parts_dir) / f"part-{batch:07d}-{domain}.parquet"
        write_parquet(path, rows_to_table(domain_rows))
        out.parts.append(PartFile(domain=domain, path=str(path), rows=len(domain_rows)))
    return out


def pack_shard(slices: list[tuple[str, int, int]], domain: str, out_path: str) -> ShardEntry:
    """One shard from ``(part file, first row, end row)`` slices, in order."""
    from pipelines.atomic import write_parquet

    table = pa.concat_tables([pq.read_table(path).slice(first, end - first) for path, first, end in slices])
    write_parquet(Path(out_path), table)
    col = table.column
    return ShardEntry(
        file=Path(out_path).name,
        domain=domain,
        rows=table.num_rows,
        tokens=int(pc.sum(col("num_tokens")).as_py() or 0),
        loss_tokens=int(pc.sum(col("num_loss_tokens")).as_py() or 0),
        sha256=sha256_file(Path(out_path)),
        token_exact_rows=int(pc.sum(col("token_exact").cast(pa.int64())).as_py() or 0),
        inserted_tokens=int(pc.sum(pc.equal(pc.list_flatten(col("token_source")), int(TokenSource.INSERTED))
                                   .cast(pa.int64())).as_py() or 0),
        drift_rows=int(pc.sum(col("text_drift").cast(pa.int64())).as_py() or 0),
    )
