"""Reviewers' accept/reject marks, stored durably in the run folder.

Layout under ``RUN/review/``:

- ``marks/<key>.json`` — the current mark of one trajectory, one file each, written
  atomically (temp file + rename). Reviewers marking *different* trajectories
  never touch the same file, so no mark is lost however many write at once;
  two marks on the same trajectory resolve to the later one, whole.
- ``history.jsonl`` — every mark ever made (including clears), appended with a
  single ``write`` on an ``O_APPEND`` descriptor so concurrent lines do not
  interleave: the audit trail behind the current marks.
- ``accepted.txt`` — the export: accepted trajectory ids, one a line.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from pipelines.atomic import write_json, write_text

DECISIONS = ("accept", "reject")
_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,120}$")


class MarkError(ValueError):
    """A mark request that cannot be stored (unknown decision, empty id)."""


class MarkStore:
    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir) / "review"
        self.marks_dir = self.dir / "marks"
        self.history = self.dir / "history.jsonl"

    def _path(self, trajectory_id: str) -> Path:
        # Ids are hex hashes today; anything else is hashed so it can never escape the folder.
        key = trajectory_id if _SAFE.match(trajectory_id) and not trajectory_id.startswith(".") else (
            "h-" + hashlib.sha256(trajectory_id.encode()).hexdigest()
        )
        return self.marks_dir / f"{key}.json"

    def set(self, trajectory_id: str, decision: str, comment: str = "", reviewer: str = "") -> dict[str, Any]:
        if not trajectory_id:
            raise MarkError("a mark needs a trajectory id")
        if decision not in DECISIONS:
            raise MarkError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
        mark = {
            "trajectory_id": trajectory_id,
            "decision": decision,
            "comment": comment,
            "reviewer": reviewer,
            "at": time.time(),
        }
        write_json(self._path(trajectory_id), mark)
        self._log(mark)
        return mark

    def clear(self, trajectory_id: str, reviewer: str = "") -> None:
        try:
            os.unlink(self._path(trajectory_id))
        except FileNotFoundError:
            pass
        self._log({"trajectory_id": trajectory_id, "decision": "clear", "reviewer": reviewer, "at": time.time()})

    def get(self, trajectory_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._path(trajectory_id).read_text())
        except FileNotFoundError:
            return None

    def all(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if not self.marks_dir.is_dir():
            return out
        for path in self.marks_dir.glob("*.json"):  # temp files start with '.' and end in .tmp
            try:
                mark = json.loads(path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                continue  # cleared between listing and reading
            out[mark["trajectory_id"]] = mark
        return out

    def accepted_ids(self) -> list[str]:
        return sorted(tid for tid, m in self.all().items() if m["decision"] == "accept")

    def export_accepted(self) -> Path:
        path = self.dir / "accepted.txt"
        ids = self.accepted_ids()
        write_text(path, "".join(f"{i}\n" for i in ids))
        return path

    def _log(self, entry: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        fd = os.open(self.history, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
