"""One domain's run: seed -> rollout/verify/branch on Ray actors (``scheduler``) -> store ->
decontaminate -> dedupe -> mask/tokenize -> shards + manifest -> report (``finish``, streaming).

Stages after the store are recomputed from it on every run (deterministic, and streamed as Ray
tasks), so resuming only has to skip finished rollout units.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pipelines.config import RunConfig, SamplingConfig, assists_on, with_absolute_paths
from pipelines.finish import RolloutSummary, active_assists, finish, training_view  # noqa: F401 - re-exported
from pipelines.report import RunReport
from pipelines.scheduler import WorkerStartError, rollout_units  # noqa: F401 - WorkerStartError re-exported
from pipelines.seed_qa import SeedQA
from pipelines.store import TrajectoryStore, Unit, plan_units, stable_hash
from schemas import Task, Trajectory, table_to_trajectories

REPO_ROOT = Path(__file__).resolve().parent.parent


class SeedError(ValueError):
    """Seed tasks could not be produced; the message is one line for the user."""


@dataclass
class RunEvents:
    """Callbacks for progress display (the CLI plugs rich in; tests pass nothing)."""

    on_plan: Callable[[int, int, int], None] = lambda tasks, units, pending: None
    on_unit_done: Callable[[Unit, list[Trajectory]], None] = lambda unit, trajs: None
    on_stage: Callable[[str], None] = lambda name: None
    on_unit_failed: Callable[[Unit, str], None] = lambda unit, error: None


@dataclass
class RunResult:
    report: RunReport
    run_dir: Path
    failed_units: list[str] = field(default_factory=list)


def fingerprint(config: RunConfig) -> str:
    """What decides the trajectories; execution knobs (Ray, concurrency) are left out."""
    relevant = config.model_dump(include={"domain", "seed", "limit", "sampling", "branching", "units", "domain_options"})
    relevant["model"] = config.engine.model
    served = config.engine.served_model
    if served and "," in config.engine.model:
        # Several endpoints of one model: the model decides the trajectories, not which servers
        # (or how many) answered, so adding or dropping an endpoint still resumes.
        relevant["model"] = f"served:{served}"
    relevant["agent"] = config.agent.model_dump(exclude={"concurrency", "assist", "infra_retries"})
    # Assists change the rollouts; counted only when off, so folders made with them on still resume.
    if not assists_on(config):
        relevant["assists"] = "none"
    # Fields added later count only when set, so folders made before them still resume.
    for key in ("presence_penalty", "frequency_penalty", "repetition_penalty"):
        if relevant["sampling"][key] == SamplingConfig.model_fields[key].default:
            del relevant["sampling"][key]
    # Verdicts decide branching: a run that sets verifier options resumes only with the same ones
    # (left out when unset, so folders made before these options existed still resume).
    verifier = config.verifier.model_dump(include={"options", "repetition"}, exclude_defaults=True)
    if verifier:
        relevant["verifier"] = verifier
    return stable_hash(json.dumps(relevant, sort_keys=True), length=24)


def seed_tasks(config: RunConfig) -> list[Task]:
    """The sound seed tasks (what ``checked_seed_tasks`` keeps)."""
    return checked_seed_tasks(config)[0]


def checked_seed_tasks(config: RunConfig) -> tuple[list[Task], SeedQA]:
    """The domain's seed tasks less those its seed-time QA marked unsound, and the tally
    (``pipelines.seed_qa``): unsound tasks never reach a rollout."""
    from pipelines import seed_qa
    from synthesizers.domains.registry import get_domain, import_plugins

    import_plugins(config.plugins)
    domain = get_domain(config.domain, config.domain_options)  # bad options: DomainOptionsError, before any write
    try:
        tasks = list(domain.seed_tasks(limit=config.limit, seed=config.seed))
    except (OSError, ValueError, KeyError) as exc:
        raise SeedError(f"seed tasks for {config.domain}: {exc}") from None
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        raise SeedError(f"seed tasks for {config.domain} have duplicate ids: fix the seed source")
    if not tasks:
        raise SeedError(f"no seed tasks for {config.domain}: check domain_options and --limit")
    kept, qa = seed_qa.split(tasks)
    if not kept:
        top = next(iter(qa.dropped_by_reason), "?")
        raise SeedError(f"all {qa.dropped} seed tasks for {config.domain} failed environment QA (most often: {top}): "
                        "check the seed source")
    return kept, qa


# Not shipped to a cluster with the code: environments, caches, outputs and history.
SHIP_EXCLUDES = [".venv", ".cache", ".git", "runs", "bench/results", "**/__pycache__", "*.egg-info", ".pytest_cache"]


def node_env() -> dict[str, str]:
    """Where every node keeps the model and data caches: the driver's own paths, so a node sharing
    the driver's file system uses its caches and any other node fills the same paths on first use."""
    from sandboxes.project import code_cache_dir
    from synthesizers.engines.model_store import default_model_dir

    return {
        "TRAJFORGE_MODEL_DIR": str(default_model_dir().resolve()),
        "TRAJFORGE_CODE_CACHE": str(code_cache_dir().resolve()),
        "TRAJFORGE_CACHE": os.environ.get("TRAJFORGE_CACHE") or str((REPO_ROOT / ".cache").resolve()),
    }


def init_ray(config: RunConfig) -> bool:
    """Start or join Ray for this run; True when this call started it (the caller shuts it down).

    A local Ray gets the checkout on ``PYTHONPATH``. A cluster (``ray.address`` or ``RAY_ADDRESS``)
    gets the code shipped with the job (``runtime_env.working_dir``: nodes need not hold this
    checkout) and the cache paths of ``node_env``."""
    import ray

    if ray.is_initialized():
        return False
    env = {
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", str(int(max(1, config.engine.kv_cache_gb)))),
        "VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "WARNING"),
        "TOKENIZERS_PARALLELISM": "false",
    }
    address = config.ray.address or os.environ.get("RAY_ADDRESS")
    if address:
        runtime_env: dict[str, Any] = {"working_dir": str(REPO_ROOT), "excludes": SHIP_EXCLUDES,
                                       "env_vars": {**env, **node_env()}}
        ray.init(address=address, runtime_env=runtime_env, logging_level="ERROR",
                 log_to_driver=bool(os.environ.get("TRAJFORGE_RAY_LOGS")))
    else:
        env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")] if p)
        # "local": a new Ray of our own, never a cluster some other process left running here.
        ray.init(address="local", ignore_reinit_error=True, include_dashboard=False, logging_level="ERROR",
                 log_to_driver=bool(os.environ.get("TRAJFORGE_RAY_LOGS")), runtime_env={"env_vars": env})
    _sigterm_unwinds()
    return True


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _sigterm_unwinds() -> None:
    """SIGTERM (``kill PID``, a scheduler's stop) unwinds like Ctrl-C, so the ``finally`` blocks
    close every rollout worker and its engine. Installed after ``ray.init``, whose own handler
    ends the driver at once and leaves a vLLM engine's worker processes running."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)


def _say_if_not_incremental(tokenizer_path: str) -> None:
    """One line at start when the template rules out token-in/token-out rollouts."""
    from pipelines.tokenize import load_tokenizer
    from synthesizers.token_conversation import probe_template

    try:
        problem = probe_template(load_tokenizer(tokenizer_path))
    except Exception as exc:  # a tokenizer that does not load fails later, with its own message
        problem = None if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
    if problem is not None:
        print(f"note: token-exact rollouts are off for this run ({problem}); rows are tokenised from text "
              "and marked token_exact: false", file=sys.stderr)


def resolve_tokenizer(config: RunConfig) -> str:
    """The tokenizer rollouts and shards use. A served model's is established against the server
    (``synthesizers.engines.served``) and set on ``config.engine`` for the workers' HTTP engines
    (``tokenizer``; ``options.token_exact`` False where the server cannot return ids); one
    that cannot be established stops the run in one line (``PreflightError``)."""
    from synthesizers.engines.spec import parse_model_spec

    model, spec = config.engine.model, parse_model_spec(config.engine.model)
    if spec.kind == "url":
        from pipelines.preflight import PreflightError
        from synthesizers.engines.served import TokenizerNotEstablished, establish_tokenizer

        try:
            established = establish_tokenizer(model, config.engine.tokenizer, api_key=config.engine.options.get("api_key"))
        except TokenizerNotEstablished as exc:
            raise PreflightError(str(exc)) from None
        config.engine.tokenizer = established.path
        config.engine.served_model = established.served_model
        config.engine.options["token_exact"] = established.token_exact and config.engine.options.get("token_exact", True)
        return established.path
    if config.engine.tokenizer:
        return config.engine.tokenizer
    if spec.kind == "path":
        return spec.value
    from synthesizers.engines.model_store import ensure_embedded_model

    return str(ensure_embedded_model())


def run_pipeline(config: RunConfig, out_dir: Path, events: RunEvents | None = None) -> RunResult:
    events = events or RunEvents()
    started = time.monotonic()
    out_dir = Path(out_dir)
    tasks, qa = checked_seed_tasks(config)
    from pipelines.decontaminate import benchmark_seeds, decontaminate, load_index

    # Before anything is written: a bad source, or seeds that are benchmark items, fail fast.
    benchmarks = load_index(config.decontam, config.domain)
    benchmarks, seeded_from = benchmark_seeds(tasks, benchmarks, allow=config.allow_benchmark_seeds,
                                              min_hits=config.decontam.min_hits, where=config.decontam.check)
    units = plan_units(tasks, config.units.tasks_per_unit)
    from pipelines.preflight import check_sandbox, check_verifier_options
    from synthesizers.domains.registry import domain_class

    check_verifier_options(config.domain, config.verifier.options)

    if domain_class(config.domain).needs_sandbox:
        check_sandbox()  # before anything is written: Docker down -> one clear line
    tokenizer_path = resolve_tokenizer(config)  # before anything is written: a URL's is checked with the server
    store = TrajectoryStore(out_dir)
    store.claim(fingerprint(config), config.model_dump())
    from pipelines import seed_qa

    seed_qa.write(out_dir, qa)  # the report (and a later reshard's) reads it from the folder
    pending = [u for u in units if not store.is_done(u.id)]
    events.on_plan(len(tasks), len(units), len(pending))
    _say_if_not_incremental(tokenizer_path)
    started_ray = init_ray(config)
    try:
        failed_units: list[str] = []
        rollout_s, completion_tokens, workers = 0.0, 0, []
        if pending:
            events.on_stage("rollout")
            t0 = time.monotonic()
            outcome = rollout_units(with_absolute_paths(config), pending, store, stable_hash(out_dir.resolve()),
                                    on_done=events.on_unit_done, on_failed=events.on_unit_failed)
            failed_units, completion_tokens = outcome.failed, outcome.completion_tokens
            workers = [w.to_dict() for w in outcome.workers]
            rollout_s = time.monotonic() - t0

        done_units = [u.id for u in units if store.is_done(u.id)]
        report = finish(
            config, out_dir, [store.unit_path(u) for u in done_units], tokenizer_path=tokenizer_path,
            benchmarks=benchmarks, seeded_from=seeded_from, events=events,
            rollout=RolloutSummary(tasks=len(tasks), units_total=len(units),
                                   units_run_now=len(pending) - len(failed_units), failed_units=failed_units,
                                   rollout_s=rollout_s, completion_tokens=completion_tokens, started=started,
                                   workers=workers),
        )
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    return RunResult(report=report, run_dir=out_dir, failed_units=failed_units)
