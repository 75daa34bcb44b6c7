"""Seed-time task QA: tasks a domain marked unsound never reach a rollout, and the run says how many.

A domain checks its tasks while seeding (cheap, in process) and marks each checked task
with ``payload["qa"]``: ``{"unsound": reason | None, "noop_passes": bool, ...}``
(tool use: ``environments.qa.check_stateful``, the expected actions replay and change the
state; deep research: ``deep_research.soundness``, the answer is in a cited document and
the hop chain is reachable by search). ``split`` keeps the sound tasks and tallies the rest;
the run writes the tally to ``seed_qa.json`` in its folder, and the report (json and page)
shows it: tasks checked, dropped (by reason, particulars blanked), and the sound tasks that
an agent doing nothing would pass (by source).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from schemas import Task

QA_KEY = "qa"
FILE_NAME = "seed_qa.json"


@dataclass
class SeedQA:
    seeded: int = 0  # tasks the domain yielded
    checked: int = 0  # of them, tasks that carry a QA mark
    dropped: int = 0
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    dropped_by_source: dict[str, int] = field(default_factory=dict)
    noop_passes: int = 0  # kept tasks an agent that does nothing passes (e.g. τ²'s refusal tasks)
    noop_passes_by_source: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _shape(reason: str) -> str:
    from pipelines.report import reason_shape  # one way of blanking particulars, shared with failure reasons

    return reason_shape(str(reason))


def split(tasks: list[Task]) -> tuple[list[Task], SeedQA]:
    """(sound tasks, in order; the tally). Tasks without a QA mark are kept (not checked)."""
    kept: list[Task] = []
    qa = SeedQA(seeded=len(tasks))
    reasons: Counter[str] = Counter()
    dropped_sources: Counter[str] = Counter()
    noop_sources: Counter[str] = Counter()
    for task in tasks:
        mark = task.payload.get(QA_KEY)
        if not isinstance(mark, dict):
            kept.append(task)
            continue
        qa.checked += 1
        if mark.get("unsound"):
            reasons[_shape(mark["unsound"])] += 1
            dropped_sources[task.source] += 1
            continue
        kept.append(task)
        if mark.get("noop_passes"):
            noop_sources[task.source] += 1
    qa.dropped = sum(reasons.values())
    qa.dropped_by_reason = dict(reasons.most_common())
    qa.dropped_by_source = dict(sorted(dropped_sources.items()))
    qa.noop_passes = sum(noop_sources.values())
    qa.noop_passes_by_source = dict(sorted(noop_sources.items()))
    return kept, qa


def write(out_dir: Path, qa: SeedQA) -> None:
    from pipelines.atomic import write_json

    write_json(Path(out_dir) / FILE_NAME, qa.to_dict())


def read(out_dir: Path) -> dict[str, Any] | None:
    """The run's tally, or None for a folder written before seed QA existed."""
    path = Path(out_dir) / FILE_NAME
    return json.loads(path.read_text()) if path.is_file() else None
