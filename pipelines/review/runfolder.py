"""Read-only access to a run folder for the reviewer page and the HTML report.

Two layouts are understood: a domain run (``RUN/trajectories``, ``RUN/shards``)
and a mixture (``trajforge run all``: ``RUN/<domain>/trajectories`` per domain,
the mixed set in ``RUN/shards``, each domain's own set in ``RUN/<domain>/shards``).

Shard rows are located by trajectory id through an index of the ``trajectory_id``
column only; a row's token lists are read when a page asks for them, so a large
run opens quickly. Mixture copies carry ``#r<k>`` after the id: they count as the
original trajectory.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from schemas import Manifest, Trajectory, table_to_trajectories
from schemas.tokens import TokenSource

_COPY_SUFFIX = re.compile(r"#r\d+$")


def base_id(trajectory_id: str) -> str:
    """The stored trajectory behind a shard row id (mixture upsampling appends ``#r<k>``)."""
    return _COPY_SUFFIX.sub("", trajectory_id)


@dataclass(frozen=True)
class ShardLocation:
    shard_dir: Path
    file: str
    row: int


class RunFolder:
    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        if not self.dir.is_dir():
            raise FileNotFoundError(f"no run folder at {self.dir}: pass the --out folder of a run")
        if not self.store_dirs:
            raise FileNotFoundError(f"{self.dir} holds no trajectories/ folder: is it a run folder?")

    @cached_property
    def store_dirs(self) -> list[Path]:
        own = self.dir / "trajectories"
        if own.is_dir():
            return [own]
        return sorted(p for p in self.dir.glob("*/trajectories") if p.is_dir())

    @cached_property
    def trajectories(self) -> list[Trajectory]:
        out: list[Trajectory] = []
        for folder in self.store_dirs:
            for path in sorted(folder.glob("unit-*.parquet")):
                out.extend(table_to_trajectories(pq.read_table(path)))
        return sorted(out, key=lambda t: t.id)

    @cached_property
    def by_id(self) -> dict[str, Trajectory]:
        return {t.id: t for t in self.trajectories}

    @cached_property
    def inserted_ids(self) -> frozenset[str]:
        """Trajectories whose token trace holds inserted (source 3) tokens: the listing's facet,
        scanned once, since a finished run does not change."""
        return frozenset(t.id for t in self.trajectories if t.token_trace is not None
                         and int(TokenSource.INSERTED) in t.token_trace.sources)

    @cached_property
    def children(self) -> dict[str, list[Trajectory]]:
        out: dict[str, list[Trajectory]] = {}
        for t in self.trajectories:
            if t.parent_id:
                out.setdefault(t.parent_id, []).append(t)
        return out

    @cached_property
    def shard_dirs(self) -> list[Path]:
        """Shard sets, the run's own (or the mixture) first, then each domain's."""
        found = [self.dir / "shards"] + sorted(self.dir.glob("*/shards"))
        return [d for d in found if (d / "manifest.json").is_file()]

    def manifest(self, shard_dir: Path | None = None) -> Manifest | None:
        shard_dir = shard_dir or (self.shard_dirs[0] if self.shard_dirs else None)
        if shard_dir is None:
            return None
        return Manifest.model_validate(json.loads((shard_dir / "manifest.json").read_text()))

    @cached_property
    def shard_index(self) -> dict[str, ShardLocation]:
        index: dict[str, ShardLocation] = {}
        for shard_dir in self.shard_dirs:
            for entry in self.manifest(shard_dir).shards:
                ids = pq.read_table(shard_dir / entry.file, columns=["trajectory_id"]).column(0).to_pylist()
                for row, tid in enumerate(ids):
                    index.setdefault(tid, ShardLocation(shard_dir, entry.file, row))
                    index.setdefault(base_id(tid), ShardLocation(shard_dir, entry.file, row))
        return index

    def shard_row(self, trajectory_id: str) -> tuple[dict[str, Any], ShardLocation] | None:
        where = self.shard_index.get(trajectory_id)
        if where is None:
            return None
        table = pq.read_table(where.shard_dir / where.file)
        return table.slice(where.row, 1).to_pylist()[0], where

    def report(self) -> dict[str, Any]:
        path = self.dir / "report.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def run_config(self, domain: str | None = None) -> dict[str, Any]:
        """The run's config; in a mixture folder, the config of ``domain``'s run."""
        path = self.dir / "run.json"
        if not path.is_file() and domain:
            path = self.dir / domain / "run.json"
        return json.loads(path.read_text()).get("config", {}) if path.is_file() else {}


def resolve_tokenizer_path(tokenizer_id: str, run_config: dict[str, Any] | None = None) -> str | None:
    """Where the manifest's tokenizer lives: the id itself if it is a path, the embedded
    model folder if the names match, the run's configured tokenizer/model otherwise."""
    if Path(tokenizer_id).is_dir():
        return tokenizer_id
    from synthesizers.engines.model_store import default_model_dir

    embedded = default_model_dir()
    tokenizer_id = Path(tokenizer_id).name  # a hub id (org/name) matches a local folder by its name
    if embedded.name == tokenizer_id and embedded.is_dir():
        return str(embedded)
    engine = (run_config or {}).get("engine", {})
    for candidate in (engine.get("tokenizer"), engine.get("model")):
        if candidate and Path(candidate).is_dir() and Path(candidate).name == tokenizer_id:
            return candidate
    sibling = embedded.parent / tokenizer_id
    return str(sibling) if sibling.is_dir() else None
