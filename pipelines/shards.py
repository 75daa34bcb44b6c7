"""Turn trajectories into loss-masked Parquet shards plus ``manifest.json``.

Rows are ordered by trajectory id so the same trajectories always give the
same bytes. The shard set is written into a fresh folder and swapped in at the
end, so readers never see a half-written set.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa

from schemas import Manifest, ShardEntry, ShardRow, sha256_file, shard_arrow_schema, shard_file_name
from pipelines.atomic import write_json, write_parquet



def rows_to_table(rows: list[ShardRow]) -> pa.Table:
    schema = shard_arrow_schema()
    data = {name: [getattr(r, name) for r in rows] for name in schema.names}
    return pa.Table.from_pydict(data, schema=schema)


def write_shard_set(
    rows: Iterable[ShardRow],
    out_dir: Path,
    *,
    tokenizer_id: str,
    masking_policy: str,
    rows_per_shard: int,
    run_config: dict[str, Any],
    tokenizer_sha256: str = "",
    train_on_inserted: bool = False,
    assists: list[str] | None = None,
    decontamination: dict[str, Any] | None = None,
) -> Manifest:
    out_dir = Path(out_dir)
    staging = staging_dir(out_dir)
    by_domain: dict[str, list[ShardRow]] = {}
    for row in sorted(rows, key=lambda r: (r.domain, r.trajectory_id)):
        by_domain.setdefault(row.domain, []).append(row)
    entries = []
    for domain, domain_rows in sorted(by_domain.items()):
        for index, start in enumerate(range(0, len(domain_rows), max(1, rows_per_shard))):
            chunk = domain_rows[start : start + rows_per_shard]
            name = shard_file_name(domain, index)
            write_parquet(staging / name, rows_to_table(chunk))
            entries.append(
                ShardEntry(
                    file=name,
                    domain=domain,
                    rows=len(chunk),
                    tokens=sum(r.num_tokens for r in chunk),
                    loss_tokens=sum(r.num_loss_tokens for r in chunk),
                    sha256=sha256_file(staging / name),
                    token_exact_rows=sum(1 for r in chunk if r.token_exact),
                    inserted_tokens=sum(r.inserted_tokens for r in chunk),
                    drift_rows=sum(1 for r in chunk if r.text_drift),
                )
            )
    manifest = Manifest(
        tokenizer_id=tokenizer_id,
        tokenizer_sha256=tokenizer_sha256,
        masking_policy=masking_policy,
        train_on_inserted=train_on_inserted,
        assists=list(assists or []),
        decontamination=dict(decontamination or {}),
        shards=entries,
        run_config=run_config,
        created_at=time.time(),
    )
    publish(staging, out_dir, manifest)
    return manifest


def staging_dir(out_dir: Path) -> Path:
    """A fresh, empty folder beside ``out_dir`` to write a shard set into before ``publish``."""
    staging = Path(out_dir).with_name(Path(out_dir).name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def publish(staging: Path, out_dir: Path, manifest: Manifest) -> None:
    """Write the manifest into ``staging`` and swap it in for ``out_dir``: readers see the old set
    or the new one, never half of one."""
    write_json(staging / "manifest.json", manifest.model_dump())
    old = out_dir.with_name(out_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(old)
    staging.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
