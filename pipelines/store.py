"""The trajectory store and work units of a run folder.

A run folder holds ``run.json`` (config + fingerprint), ``trajectories/``
(one Parquet file per finished unit; its existence is the unit's completion
marker, since it is written atomically), ``shards/``, ``report.json``.

Units have deterministic ids (a hash of their task ids), so a re-run plans the
same units, skips the finished ones, and never writes a trajectory twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.atomic import write_json, write_parquet
from schemas import Task, Trajectory, table_to_trajectories, trajectories_to_table


class RunFolderMismatch(ValueError):
    """The run folder was made by a run with a different config."""


@dataclass(frozen=True)
class Unit:
    id: str
    tasks: tuple[Task, ...]


def stable_hash(*parts: object, length: int = 16) -> str:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return digest[:length]


def plan_units(tasks: list[Task], tasks_per_unit: int) -> list[Unit]:
    size = max(1, tasks_per_unit)
    units = []
    for start in range(0, len(tasks), size):
        chunk = tuple(tasks[start : start + size])
        units.append(Unit(id=stable_hash(*(t.id for t in chunk)), tasks=chunk))
    return units


class TrajectoryStore:
    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / "trajectories"

    def unit_path(self, unit_id: str) -> Path:
        return self.dir / f"unit-{unit_id}.parquet"

    def is_done(self, unit_id: str) -> bool:
        return self.unit_path(unit_id).exists()

    def write_unit(self, unit_id: str, trajectories: list[Trajectory]) -> Path:
        path = self.unit_path(unit_id)
        write_parquet(path, trajectories_to_table(trajectories))
        return path

    def read_unit(self, unit_id: str) -> list[Trajectory]:
        return table_to_trajectories(pq.read_table(self.unit_path(unit_id)))

    def read_units(self, unit_ids: list[str]) -> list[Trajectory]:
        out: list[Trajectory] = []
        for unit_id in unit_ids:
            out.extend(self.read_unit(unit_id))
        return out

    def unit_files(self) -> list[Path]:
        """Every finished unit's file, in unit-id order (the order the post-rollout stages keep)."""
        return sorted(self.dir.glob("unit-*.parquet"))

    def tasks(self, unit_files: list[Path] | None = None) -> list[Task]:
        """The distinct tasks of the store, read from their column alone (no trajectory is built)."""
        seen: dict[str, Task] = {}
        for path in self.unit_files() if unit_files is None else unit_files:
            for raw in pq.read_table(path, columns=["task_json"]).column("task_json").to_pylist():
                if raw is not None:
                    task = Task.model_validate_json(raw)
                    seen.setdefault(task.id, task)
        return list(seen.values())

    def claim(self, fingerprint: str, config: dict) -> None:
        """Record the run's config; refuse a folder made by a different one."""
        meta = self.run_dir / "run.json"
        if meta.exists():
            previous = json.loads(meta.read_text()).get("fingerprint")
            if previous != fingerprint:
                raise RunFolderMismatch(
                    f"{self.run_dir} holds a run made with a different config "
                    "(domain, seed, limit, model or sampling changed): use a new --out folder"
                )
            return
        write_json(meta, {"fingerprint": fingerprint, "config": config})
