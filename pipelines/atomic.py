"""Atomic writes: a reader sees the old file or the new one, never half of one.

Everything a run writes goes through here (``schemas.atomic``: temp file in the same
folder, fsync, ``os.replace``), which is what makes a SIGKILL at any moment safe to resume.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.atomic import atomic_write, write_text


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(path: Path, table: pa.Table) -> None:
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
