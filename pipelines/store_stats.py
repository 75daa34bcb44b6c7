"""What the report needs to know of a store, as counters that add up.

A streaming stage counts each unit of the store in a worker (``StoreStats.of``) and the driver adds
the parts (``+``), so the report of a million trajectories is built without holding one of them.
Every field is a sum or a ``Counter``; branch parents are counted per unit, which holds because a
trajectory's branches are rolled out in the unit of their parent.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Iterable

from schemas import Trajectory
from schemas.tokens import TokenSource

@dataclass
class StoreStats:
    trajectories: int = 0
    originals: int = 0
    branches: int = 0
    passed: int = 0
    passed_originals: int = 0
    passed_branches: int = 0
    branched_parents: int = 0
    rescued_parents: int = 0  # failed originals with at least one passing branch
    judged_originals: int = 0  # originals without an infrastructure failure (pass rate's base)
    passed_judged_originals: int = 0
    judged: int = 0  # trajectories with a verdict that is not an infrastructure failure
    passed_judged: int = 0
    errors: int = 0
    infrastructure_retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    engine_s: float = 0.0
    sandbox_tool_s: float = 0.0
    verify_s: float = 0.0
    stop_reasons: Counter = field(default_factory=Counter)
    failure_shapes: Counter = field(default_factory=Counter)  # reason shapes of failed trajectories
    failures_by_cause: Counter = field(default_factory=Counter)
    # Token provenance of the stored trajectories per domain (trajectories, with_trace, ...).
    provenance: dict[str, Counter] = field(default_factory=dict)

    @classmethod
    def of(cls, trajectories: Iterable[Trajectory]) -> "StoreStats":
        from pipelines.report import reason_shape

        s = cls()
        parents: set[str] = set()
        rescued: set[str] = set()
        for t in trajectories:
            v = t.verdict
            ok = bool(v and v.passed)
            infra = bool(v and v.infrastructure)
            original = t.parent_id is None
            s.trajectories += 1
            s.passed += ok
            s.errors += bool(t.error)
            if original:
                s.originals += 1
                s.passed_originals += ok
                if not infra:
                    s.judged_originals += 1
                    s.passed_judged_originals += ok
            else:
                s.branches += 1
                s.passed_branches += ok
                parents.add(t.parent_id)
                if ok:
                    rescued.add(t.parent_id)
            if v is not None and not infra:
                s.judged += 1
                s.passed_judged += ok
            s.stop_reasons[t.stop_reason] += 1
            if not ok:
                s.failure_shapes[reason_shape(t.error or (v.reason if v else "not verified"))] += 1
                s.failures_by_cause[v.cause if v else "model"] += 1
            s.infrastructure_retries += max(0, t.timings.attempts - 1) + t.timings.endpoint_retries
            s.prompt_tokens += t.tokens.prompt
            s.completion_tokens += t.tokens.completion
            s.engine_s += t.timings.generate_s
            s.sandbox_tool_s += t.timings.tools_s
            s.verify_s += t.timings.verify_s
            trace = t.token_trace
            inserted = trace.count(TokenSource.INSERTED) if trace else 0
            guided = trace.count(TokenSource.GUIDED) if trace else 0
            s.provenance.setdefault(t.domain, Counter()).update(
                trajectories=1, with_trace=int(bool(trace and len(trace))), with_inserted=int(inserted > 0),
                with_guided=int(guided > 0), inserted_tokens=inserted, guided_tokens=guided)
        s.branched_parents, s.rescued_parents = len(parents), len(rescued)
        return s

    def __add__(self, other: "StoreStats") -> "StoreStats":
        out = StoreStats()
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name == "provenance":
                merged = {d: Counter(c) for d, c in mine.items()}
                for d, c in theirs.items():
                    merged.setdefault(d, Counter()).update(c)
                setattr(out, f.name, merged)
            elif isinstance(mine, Counter):
                setattr(out, f.name, mine + theirs)  # counts are positive: nothing is dropped
            else:
                setattr(out, f.name, mine + theirs)
        return out

    @staticmethod
    def total(parts: Iterable["StoreStats"]) -> "StoreStats":
        out = StoreStats()
        for part in parts:
            out = out + part
        return out
