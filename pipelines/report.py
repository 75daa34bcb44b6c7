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
from schemas.tokens import TokenSource


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
    # and left out of pass_rate); infrastructure_retries: tries beyond the first, over all rollouts.
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


def failure_reasons(trajectories: list[Trajectory], top: int = 12) -> dict[str, int]:
    """The ``top`` most common reason shapes of failed trajectories (errors count by their error)."""
    counts = Counter(
        reason_shape(t.error or (t.verdict.reason if t.verdict else "not verified"))
        for t in trajectories if not (t.verdict and t.verdict.passed)
    )
    return dict(counts.most_common(top))


def provenance(trajectories: list[Trajectory], manifest: Manifest) -> dict[str, dict[str, dict[str, int]]]:
    """Per domain: how the shard rows were tokenised (token-exact or from text, drift, inserted
    and loss tokens, from the manifest) and which stored trajectories carry a token trace,
    inserted (source 3) or grammar-constrained (source 2) tokens."""
    shards: dict[str, Counter] = {}
    for e in manifest.shards:
        c = shards.setdefault(e.domain, Counter())
        c.update(rows=e.rows, token_exact_rows=e.token_exact_rows, not_token_exact_rows=e.rows - e.token_exact_rows,
                 drift_rows=e.drift_rows, inserted_tokens=e.inserted_tokens, loss_tokens=e.loss_tokens)
    store: dict[str, Counter] = {}
    for t in trajectories:
        c = store.setdefault(t.domain, Counter())
        trace = t.token_trace
        inserted = trace.count(TokenSource.INSERTED) if trace else 0
        guided = trace.count(TokenSource.GUIDED) if trace else 0
        c.update(trajectories=1, with_trace=int(bool(trace and len(trace))), with_inserted=int(inserted > 0),
                 with_guided=int(guided > 0), inserted_tokens=inserted, guided_tokens=guided)
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
    trajectories: list[Trajectory],
    removed_exact: int,
    removed_near: int,
    manifest: Manifest,
    wall_s: float,
    rollout_s: float,
    completion_tokens_now: int,
) -> RunReport:
    originals = [t for t in trajectories if t.parent_id is None]
    # Pass rate over the originals the model was judged on: infrastructure failures say nothing of it.
    judged = [t for t in originals if not (t.verdict and t.verdict.infrastructure)]
    branches = [t for t in trajectories if t.parent_id is not None]
    passed = [t for t in trajectories if t.verdict and t.verdict.passed]
    parents = {t.parent_id for t in branches}
    rescued = {t.parent_id for t in branches if t.verdict and t.verdict.passed}
    return RunReport(
        domain=domain,
        tasks=tasks,
        units_total=units_total,
        units_run_now=units_run_now,
        units_resumed=units_total - units_run_now,
        trajectories=len(trajectories),
        originals=len(originals),
        branches=len(branches),
        passed=len(passed),
        failed=len(trajectories) - len(passed),
        passed_originals=sum(1 for t in originals if t.verdict and t.verdict.passed),
        passed_branches=sum(1 for t in branches if t.verdict and t.verdict.passed),
        branched_parents=len(parents),
        rescued_parents=len(rescued),
        branch_yield=round(len(rescued) / len(parents), 4) if parents else 0.0,
        pass_rate=round(sum(1 for t in judged if t.verdict and t.verdict.passed) / len(judged), 4)
        if judged
        else 0.0,
        errors=sum(1 for t in trajectories if t.error),
        stop_reasons=dict(Counter(t.stop_reason for t in trajectories)),
        dedupe_removed_exact=removed_exact,
        dedupe_removed_near=removed_near,
        shard_rows=manifest.total_rows,
        shard_files=len(manifest.shards),
        tokens=manifest.total_tokens,
        loss_tokens=sum(s.loss_tokens for s in manifest.shards),
        completion_tokens=sum(t.tokens.completion for t in trajectories),
        wall_s=round(wall_s, 2),
        rollout_s=round(rollout_s, 2),
        completion_tokens_per_s=round(completion_tokens_now / rollout_s, 1) if rollout_s > 0 else 0.0,
        failure_reasons=failure_reasons(trajectories),
        failures_by_cause=dict(Counter(t.verdict.cause if t.verdict else "model" for t in trajectories
                                       if not (t.verdict and t.verdict.passed))),
        infrastructure_retries=sum(max(0, t.timings.attempts - 1) for t in trajectories),
        provenance=provenance(trajectories, manifest),
    )
