"""After the rollouts: the store's trajectories -> decontaminate -> dedupe -> tokenize/mask ->
shards -> report. ``trajforge run`` calls it once its units are done; ``trajforge reshard``
calls it again on a finished run's store (another masking policy, dedupe threshold, ...)
without rolling anything out.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.atomic import write_json
from pipelines.config import RunConfig, assists_on
from pipelines.dedupe import dedupe
from pipelines.funnel import funnel
from pipelines.report import RunReport, build_report
from pipelines.shards import write_shard_set
from schemas import Trajectory, table_to_trajectories


@dataclass
class RolloutSummary:
    """What the rollout stage reports beside the store (a reshard has none of it: zeros)."""

    tasks: int
    units_total: int
    units_run_now: int = 0
    failed_units: list[str] = field(default_factory=list)
    rollout_s: float = 0.0
    completion_tokens: int = 0
    started: float = field(default_factory=time.monotonic)


def finish(config: RunConfig, out_dir: Path, trajectories: list[Trajectory], *, tokenizer_path: str, benchmarks: Any,
           seeded_from: Any, rollout: RolloutSummary, events: Any, html: bool = True) -> RunReport:
    """Shards and report of ``trajectories`` under ``config`` into ``out_dir`` (``shards/``,
    ``report.json``, and ``report.html`` when ``html``: the page reads the store, so only a run
    folder gets one); Ray must be up (tokenizing runs as Ray tasks)."""
    from pipelines.decontaminate import decontaminate

    everything = trajectories
    # An infrastructure failure is never data, whatever shards.include says.
    selected = [t for t in everything if not (t.verdict and t.verdict.infrastructure)
                and (config.shards.include == "all" or (t.verdict and t.verdict.passed))]
    stage_s: dict[str, float] = {}
    clock = time.monotonic()
    events.on_stage("decontaminate")
    clean = decontaminate(selected, benchmarks, where=config.decontam.check, min_hits=config.decontam.min_hits)
    # Optional domain hook: the messages the shards should hold (Agentic-CoT rewrites).
    from synthesizers.domains.registry import get_domain

    view = getattr(get_domain(config.domain), "training_messages", None)
    kept = [training_view(t, view, tokenizer_path) for t in clean.kept] if view else clean.kept
    stage_s["decontaminate"], clock = time.monotonic() - clock, time.monotonic()
    events.on_stage("dedupe")
    deduped = dedupe(
        kept,
        exact=config.dedupe.exact,
        near=config.dedupe.near,
        threshold=config.dedupe.threshold,
        num_perm=config.dedupe.num_perm,
        shingle_size=config.dedupe.shingle_size,
        bands=config.dedupe.bands,
        chunk_size=config.dedupe.chunk_size,
    )
    stage_s["dedupe"], clock = time.monotonic() - clock, time.monotonic()
    events.on_stage("tokenize")
    rows, render_errors = _tokenize(config, deduped.kept, tokenizer_path) if deduped.kept else ([], [])
    stage_s["tokenize"], clock = time.monotonic() - clock, time.monotonic()
    events.on_stage("shards")
    from pipelines.tokenizer_identity import tokenizer_identity

    tokenizer_name, tokenizer_sha256 = tokenizer_identity(tokenizer_path)
    manifest = write_shard_set(
        rows,
        out_dir / "shards",
        tokenizer_id=tokenizer_name,
        tokenizer_sha256=tokenizer_sha256,
        masking_policy=config.shards.masking,
        rows_per_shard=config.shards.rows_per_shard,
        run_config=config.model_dump(),
        train_on_inserted=config.shards.train_on_inserted,
        assists=active_assists(config),
        decontamination=clean.summary(seeded_from),
    )
    stage_s["shards"] = time.monotonic() - clock
    report = build_report(
        domain=config.domain,
        tasks=rollout.tasks,
        units_total=rollout.units_total,
        units_run_now=rollout.units_run_now,
        trajectories=everything,
        removed_exact=len(deduped.removed_exact),
        removed_near=len(deduped.removed_near),
        manifest=manifest,
        wall_s=time.monotonic() - rollout.started,
        rollout_s=rollout.rollout_s,
        completion_tokens_now=rollout.completion_tokens,
    )
    report.funnel = funnel(everything, tasks=rollout.tasks, after_decontamination=len(clean.kept),
                           after_dedupe=len(deduped.kept), rows=manifest.total_rows,
                           loss_tokens=sum(e.loss_tokens for e in manifest.shards), stage_s=stage_s)
    report.extra = {
        "failed_units": rollout.failed_units,
        "render_errors": render_errors,
        "tokenizer": tokenizer_name,
        "assists": active_assists(config),
        "run_dir": str(out_dir.resolve()),
        "decontamination": clean.report(config.decontam.ngram, benchmark_seeds=seeded_from),
    }
    write_json(out_dir / "report.json", report.to_dict())
    if not html:
        return report
    from pipelines.report_html import write_report_html

    try:
        write_report_html(out_dir)
    except Exception as exc:  # the page is derived from files already written: never fail a finished run
        print(f"warning: report.html not written ({type(exc).__name__}: {exc}); `trajforge report {out_dir}` retries",
              file=sys.stderr)
    return report


def _tokenize_chunk(table, tokenizer_path: str, options):
    from pipelines.tokenize import trajectories_to_rows

    return trajectories_to_rows(table_to_trajectories(table), tokenizer_path, options)


def _tokenize(config: RunConfig, trajectories: list[Trajectory], tokenizer_path: str):
    import ray

    from pipelines.tokenize import RowOptions
    from schemas import trajectories_to_table

    options = RowOptions(policy=config.shards.masking, train_on_inserted=config.shards.train_on_inserted,
                         require_token_exact=config.shards.require_token_exact)
    remote = ray.remote(num_cpus=1)(_tokenize_chunk)
    chunk = 64
    refs = [
        remote.remote(trajectories_to_table(trajectories[i : i + chunk]), tokenizer_path, options)
        for i in range(0, len(trajectories), chunk)
    ]
    rows, errors = [], []
    for part_rows, part_errors in ray.get(refs):
        rows.extend(part_rows)
        errors.extend(part_errors)
    return rows, errors


def active_assists(config: RunConfig) -> list[str]:
    """The names of the small-model assists this run's domain steered its rollouts with."""
    from synthesizers.domains.base import domain_assists
    from synthesizers.domains.registry import get_domain

    return list(domain_assists(get_domain(config.domain))) if assists_on(config) else []


def training_view(trajectory: Trajectory, view, tokenizer_path: str) -> Trajectory:
    """The trajectory as the shards should hold it. A view with other context messages than the
    rollout's (a rewrite) keeps its assistant turns' tokens on the new context, marked not exact
    (``token_conversation.rebase``); without a shared assistant turn its row comes from text."""
    messages = view(trajectory)
    if messages == trajectory.messages:
        return trajectory
    trace = None
    if trajectory.token_trace is not None:
        from pipelines.tokenize import load_tokenizer
        from synthesizers.token_conversation import rebase

        trace = rebase(trajectory.token_trace, trajectory.messages, messages, load_tokenizer(tokenizer_path),
                       trajectory.tools or None)
    return trajectory.model_copy(update={"messages": messages, "token_trace": trace})


