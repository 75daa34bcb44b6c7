"""The reviewer's list: a reproducible sample, filters, and facet counts.

Facets: domain, verdict, branch/original, review mark, the verdict's reason
without its particulars (``boxed '…' == gold '…', but wrong arithmetic: '…' (…)``),
so a reviewer can audit one kind of rejection at a time, and whether the token
trace holds text the framework inserted into an assistant turn (source 3).

The sample order is a seeded hash of each trajectory id, so a given seed always
shows the same trajectories in the same order, and narrowing a filter keeps the
trajectories that were already on screen (the sample of a subset is the subset
of the sample order). Filters narrow first, then the first ``sample`` are shown.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlencode
from dataclasses import dataclass, field
from typing import Any

from pipelines.report import reason_shape
from pipelines.review.provenance import has_inserted
from schemas import Trajectory

FACETS = ("domain", "verdict", "kind", "mark", "reason", "inserted")


@dataclass
class Filters:
    domain: str = ""
    verdict: str = ""  # passed | failed
    kind: str = ""  # original | branch
    mark: str = ""  # accept | reject | unmarked
    reason: str = ""  # a verdict reason's shape, as report.json's failure_reasons counts them
    inserted: str = ""  # yes | no: the token trace has inserted (source 3) tokens
    sample: int | None = None  # None: every matching trajectory
    seed: int = 0

    def query(self, **override: Any) -> str:
        """The URL query string for these filters (empty values left out)."""
        values = {**self.__dict__, **override}
        return urlencode([(k, values[k]) for k in (*FACETS, "sample", "seed") if values[k] not in ("", None)])


def facet_value(t: Trajectory, facet: str, marks: dict[str, dict], inserted: frozenset[str] | None = None) -> str:
    """``inserted``: ids of trajectories with inserted tokens, computed once (else scanned here)."""
    if facet == "inserted":
        return "yes" if (t.id in inserted if inserted is not None else has_inserted(t)) else "no"
    if facet == "domain":
        return t.domain
    if facet == "verdict":
        return "passed" if t.verdict and t.verdict.passed else "failed"
    if facet == "kind":
        return "branch" if t.parent_id else "original"
    if facet == "reason":
        return reason_shape(t.error or (t.verdict.reason if t.verdict else "not verified"))
    mark = marks.get(t.id)
    return mark["decision"] if mark else "unmarked"


def sample_key(seed: int, trajectory_id: str) -> str:
    return hashlib.sha256(f"{seed}\x1f{trajectory_id}".encode()).hexdigest()


def _matches(t: Trajectory, f: Filters, marks: dict[str, dict], inserted: frozenset[str], skip: str = "") -> bool:
    return all(
        not getattr(f, facet) or facet_value(t, facet, marks, inserted) == getattr(f, facet)
        for facet in FACETS
        if facet != skip
    )


@dataclass
class Listing:
    rows: list[Trajectory]
    matching: int
    total: int
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def build_listing(trajectories: list[Trajectory], f: Filters, marks: dict[str, dict],
                  inserted: frozenset[str] | None = None) -> Listing:
    """``inserted``: ids with inserted tokens, when the caller keeps them (a run's do not change)."""
    if inserted is None:
        inserted = frozenset(t.id for t in trajectories if has_inserted(t))
    matching = [t for t in trajectories if _matches(t, f, marks, inserted)]
    matching.sort(key=lambda t: sample_key(f.seed, t.id))
    rows = matching if f.sample is None else matching[: max(0, f.sample)]
    # Facet counts under the *other* active filters, so each number is what clicking it shows.
    counts: dict[str, dict[str, int]] = {}
    for facet in FACETS:
        bucket: dict[str, int] = {}
        for t in trajectories:
            if _matches(t, f, marks, inserted, skip=facet):
                value = facet_value(t, facet, marks, inserted)
                bucket[value] = bucket.get(value, 0) + 1
        counts[facet] = dict(sorted(bucket.items()))
    return Listing(rows=rows, matching=len(matching), total=len(trajectories), counts=counts)


def neighbours(listing: Listing, trajectory_id: str) -> tuple[str | None, str | None]:
    """Previous and next ids around ``trajectory_id`` in the listing (for j / k)."""
    ids = [t.id for t in listing.rows]
    if trajectory_id not in ids:
        return None, ids[0] if ids else None
    i = ids.index(trajectory_id)
    return (ids[i - 1] if i > 0 else None), (ids[i + 1] if i + 1 < len(ids) else None)
