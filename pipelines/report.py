"""The run report: counts per stage, pass rates, branch yield, tokens, throughput, token provenance.

Computed from the trajectory store (not from in-memory counters), so a resumed
run reports on everything it holds, including units finished before a kill.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from schemas import Manifest, Trajectory
from pipelines.store_stats import StoreStats


@dataclass
class RunReport:
    domain: str
    tasks: int
    units_total: int
    units_run_now: int
    units_resumed: int
    trajectories: int
    originals: int
    branches: int
    passed: int
    failed: int
    passed_originals: int
    passed_branches: int
    branched_parents: int
    rescued_parents: int  # failed originals with at least one passing branch
    branch_yield: float  # rescued_parents / branched_parents
    pass_rate: float  # over originals
    errors: int
    stop_reasons: dict[str, int]
    dedupe_removed_exact: int
    dedupe_removed_near: int
    shard_rows: int
    shard_files: int
    tokens: int
    loss_tokens: int
    completion_tokens: int
    wall_s: float
    rollout_s: float
    completion_tokens_per_s: float
    # Why trajectories failed: verdict reasons with their particulars blanked, most common first.
    failure_reasons: dict[str, int] = field(default_factory=dict)
    # Failures by whose they are: "model" or "infrastructure" (retried, never branched or sharded,
    # and left out of pass_rate); infrastructure_retries: tries beyond the first, over all rollouts,
    # plus engine requests an endpoint failed and another endpoint of the pool served.
    failures_by_cause: dict[str, int] = field(default_factory=dict)
    infrastructure_retries: int = 0
    # Seed tasks -> ... -> shard rows, and what each accepted trajectory cost (pipelines.funnel).
    funnel: dict[str, Any] = field(default_factory=dict)
    # Token provenance per domain: {"shards": {...}, "store": {...}} (see ``provenance``).
    provenance: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_BRACKETED = re.compile(r"\([^()]*(?:\(…\)[^()]*)*\)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_LISTED = re.compile(r"'…' \(…\)(?:; '…' \(…\))*(?: and N more)?")  # a list of examples counts as one


def reason_shape(reason: str, limit: int = 90) -> str:
    """A verdict reason without its particulars, so reasons can be counted:
    ``boxed '9' != gold '8'`` -> ``boxed '…' != gold '…'``."""
    if not (reason or "").strip():
        return "(no reason)"
    shape = _QUOTED.sub("'…'", reason)
    while (inner := _BRACKETED.sub("(…)", shape)) != shape:  # nested brackets, innermost first
        shape = inner
    shape = _LISTED.sub("'…' (…)", _NUMBER.sub("N", shape))
    shape = " ".join(shape.split())
    return shape if len(shape) <= limit else shape[: limit - 1] + "…"


def provenance(stats: StoreStats, manifest: Manifest) -> dict[str, dict[str, dict[str, int]]]:
    """Per domain: how the shard rows were tokenised (token-exact or from text, drift, inserted
    and loss tokens, from the manifest) and which stored trajectories carry a token trace,
    inserted (source 3) or grammar-constrained (source 2) tokens."""
    shards: dict[str, Counter] = {}
    for e in manifest.shards:
        c = shards.setdefault(e.domain, Counter())
        c.update(rows=e.rows, token_exact_rows=e.token_exact_rows, not_token_exact_rows=e.rows - e.token_exact_rows,
                 drift_rows=e.drift_rows, inserted_tokens=e.inserted_tokens, loss_tokens=e.loss_tokens)
    store = stats.provenance
    zero_shards = dict.fromkeys(("rows", "token_exact_rows", "not_token_exact_rows", "drift_rows", "inserted_tokens",
                                 "loss_tokens"), 0)
    zero_store = dict.fromkeys(("trajectories", "with_trace", "with_inserted", "with_guided", "inserted_tokens",
                                "guided_tokens"), 0)
    return {d: {"shards": {**zero_shards, **shards.get(d, {})}, "store": {**zero_store, **store.get(d, {})}}
            for d in sorted(set(shards) | set(store))}


def build_report(
    *,
    domain: str,
    tasks: int,
    units_total: int,
    units_run_now: int,
    trajectories: list[Trajectory] | None = None,
    stats: StoreStats | None = None,
    removed_exact: int,
    removed_near: int,
    manifest: Manifest,
    wall_s: float,
    rollout_s: float,
    completion_tokens_now: int,
) -> RunReport:
    """The report of a store described by ``stats`` (or, for small stores and tests, of ``trajectories``)."""
    s = stats if stats is not None else StoreStats.of(trajectories or [])
    return RunReport(
        domain=domain,
        tasks=tasks,
        units_total=units_total,
        units_run_now=units_run_now,
        units_resumed=units_total - units_run_now,
        trajectories=s.trajectories,
        originals=s.originals,
        branches=s.branches,
        passed=s.passed,
        failed=s.trajectories - s.passed,
        passed_originals=s.passed_originals,
        passed_branches=s.passed_branches,
        branched_parents=s.branched_parents,
        rescued_parents=s.rescued_parents,
        branch_yield=round(s.rescued_parents / s.branched_parents, 4) if s.branched_parents else 0.0,
        # Over the originals the model was judged on: infrastructure failures say nothing of it.
        pass_rate=round(s.passed_judged_originals / s.judged_originals, 4) if s.judged_originals else 0.0,
        errors=s.errors,
        stop_reasons=dict(s.stop_reasons),
        dedupe_removed_exact=removed_exact,
        dedupe_removed_near=removed_near,
        shard_rows=manifest.total_rows,
        shard_files=len(manifest.shards),
        tokens=manifest.total_tokens,
        loss_tokens=sum(s.loss_tokens for s in manifest.shards),
        completion_tokens=s.completion_tokens,
        wall_s=round(wall_s, 2),
        rollout_s=round(rollout_s, 2),
        completion_tokens_per_s=round(completion_tokens_now / rollout_s, 1) if rollout_s > 0 else 0.0,
        failure_reasons=dict(s.failure_shapes.most_common(12)),
        failures_by_cause=dict(s.failures_by_cause),
        infrastructure_retries=s.infrastructure_retries,
        provenance=provenance(s, manifest),
    )
