"""After the rollouts: the store's unit files -> select -> decontaminate -> dedupe -> tokenize/mask
-> shards -> report, streaming (``pipelines/stages``). ``trajforge run`` calls it once its units are done; ``trajforge reshard``
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
from pipelines.funnel import funnel
from pipelines.report import RunReport, build_report
from pipelines.shards import publish, staging_dir
from pipelines.stages.executor import Executor
from schemas import Manifest, Trajectory


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
    workers: list[dict] = field(default_factory=list)  # per rollout worker: node, units, trajectories, busy_s


def finish(config: RunConfig, out_dir: Path, unit_files: list[Path], *, tokenizer_path: str, benchmarks: Any,
           seeded_from: Any, rollout: RolloutSummary, events: Any, html: bool = True,
           executor: Executor | None = None) -> RunReport:
    """Shards and report of the store's ``unit_files`` (in store order) under ``config`` into
    ``out_dir`` (``shards/``, ``report.json``, and ``report.html`` when ``html``: the page reads the
    store, so only a run folder gets one). The stages stream over the files as Ray tasks when Ray
    is up, in process otherwise, with the same result (``pipelines/stages``)."""
    from pipelines.decontaminate import DecontamResult
    from pipelines.stages import run_chain

    # Absolute: the stage tasks may run on other nodes, in the shipped code's folder.
    out_dir, unit_files = Path(out_dir).resolve(), [Path(p).resolve() for p in unit_files]
    if Path(tokenizer_path).exists():
        tokenizer_path = str(Path(tokenizer_path).resolve())
    shards_dir = out_dir / "shards"
    staging = staging_dir(shards_dir)
    outcome = run_chain(config, unit_files, staging, tokenizer_path=tokenizer_path, index=benchmarks,
                        executor=executor, on_stage=events.on_stage)
    clean = DecontamResult(kept=[], removed=outcome.hits, benchmarks=benchmarks.texts_per_benchmark)
    from pipelines.tokenizer_identity import tokenizer_identity

    tokenizer_name, tokenizer_sha256 = tokenizer_identity(tokenizer_path)
    manifest = Manifest(
        tokenizer_id=tokenizer_name,
        tokenizer_sha256=tokenizer_sha256,
        masking_policy=config.shards.masking,
        train_on_inserted=config.shards.train_on_inserted,
        assists=active_assists(config),
        decontamination=clean.summary(seeded_from),
        shards=outcome.entries,
        run_config=config.model_dump(),
        created_at=time.time(),
    )
    publish(staging, shards_dir, manifest)
    report = build_report(
        domain=config.domain,
        tasks=rollout.tasks,
        units_total=rollout.units_total,
        units_run_now=rollout.units_run_now,
        stats=outcome.stats,
        removed_exact=len(outcome.removed_exact),
        removed_near=len(outcome.removed_near),
        manifest=manifest,
        wall_s=time.monotonic() - rollout.started,
        rollout_s=rollout.rollout_s,
        completion_tokens_now=rollout.completion_tokens,
    )
    report.funnel = funnel(outcome.stats, tasks=rollout.tasks, after_decontamination=outcome.after_decontamination,
                           after_dedupe=outcome.after_dedupe, rows=manifest.total_rows,
                           loss_tokens=sum(e.loss_tokens for e in manifest.shards), stage_s=outcome.stage_s)
    report.extra = {
        "failed_units": rollout.failed_units,
        "render_errors": outcome.render_errors,
        "tokenizer": tokenizer_name,
        "assists": active_assists(config),
        "run_dir": str(out_dir.resolve()),
        "decontamination": clean.report(config.decontam.ngram, benchmark_seeds=seeded_from),
        **({"workers": rollout.workers} if rollout.workers else {}),
    }
    from pipelines import seed_qa

    if (qa := seed_qa.read(out_dir)) is not None:  # tasks dropped before any rollout, and idle passes
        report.extra["seed_qa"] = qa
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


def active_assists(config: RunConfig) -> list[str]:
    """The names of the small-model assists this run's domain steered its rollouts with."""
    from synthesizers.domains.registry import domain_class, import_plugins

    import_plugins(config.plugins)
    return list(domain_class(config.domain).assists) if assists_on(config) else []


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


