"""Build a reviewed shard set: the run's shards filtered to accepted trajectories.

The rows are copied as they are (same tokens, same masks) into
``RUN/shards-reviewed`` through the ordinary shard writer, so the new set has
its own manifest with fresh sha256s, the same tokenizer and masking policy, and
``run_config.review`` saying where it came from and how many rows were kept.
A mixture copy (``id#r<k>``) is kept when its original is accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pyarrow.parquet as pq

from pipelines.review.runfolder import base_id
from pipelines.shards import write_shard_set
from schemas import Manifest, ShardRow


class NoShards(FileNotFoundError):
    """The run folder has no shard set to filter."""


def build_reviewed_shards(
    run_dir: Path, accepted: Iterable[str], *, source: str = "shards", out_name: str = "shards-reviewed"
) -> tuple[Path, Manifest]:
    run_dir = Path(run_dir)
    src = run_dir / source
    manifest_path = src / "manifest.json"
    if not manifest_path.is_file():
        raise NoShards(f"no shard set at {src}: the run has not written shards yet")
    original = Manifest.model_validate_json(manifest_path.read_text())
    keep = set(accepted)
    rows: list[ShardRow] = []
    for entry in original.shards:
        for row in pq.read_table(src / entry.file).to_pylist():
            if base_id(row["trajectory_id"]) in keep:
                rows.append(ShardRow.model_validate(row))
    per_shard = max((s.rows for s in original.shards), default=1000)
    config = dict(original.run_config)
    config["review"] = {
        "source": str(src.resolve()),
        "accepted_ids": len(keep),
        "rows_kept": len(rows),
        "rows_in_source": original.total_rows,
    }
    out = run_dir / out_name
    manifest = write_shard_set(
        rows,
        out,
        tokenizer_id=original.tokenizer_id,
        masking_policy=original.masking_policy,
        rows_per_shard=per_shard,
        run_config=config,
    )
    return out, manifest
