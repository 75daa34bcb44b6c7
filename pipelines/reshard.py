"""``trajforge reshard RUN_DIR``: decontamination, dedupe, shards and report again from a finished
run's store, without rolling anything out.

The store keeps every trajectory with its exact token trace, so another masking policy (the
paper's ablation), inserted tokens trained or not, another dedupe threshold or benchmark set
cost the post-rollout stages only. Only those sections of the run's config may change: a
change to anything that decides the rollouts would make shards the store cannot back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.config import ConfigError, RunConfig
from pipelines.finish import RolloutSummary, finish
from pipelines.report import RunReport

POST_ROLLOUT = ("shards", "dedupe", "decontam")
POST_ROLLOUT_KEYS = ("allow_benchmark_seeds",)  # top-level keys that decide only what is sharded


def resharded_config(run_dir: Path, overrides: dict[str, Any]) -> RunConfig:
    """The run's config (``run.json``) with ``overrides`` (dotted keys under ``POST_ROLLOUT``)."""
    meta = run_dir / "run.json"
    if not meta.is_file():
        raise ConfigError(f"no run.json in {run_dir}: pass a run folder made by `trajforge run`")
    raw = json.loads(meta.read_text())["config"]
    for dotted, value in overrides.items():
        if value is None:
            continue
        if dotted in POST_ROLLOUT_KEYS:
            raw[dotted] = value
            continue
        section, _, leaf = dotted.partition(".")
        if section not in POST_ROLLOUT or not leaf:
            raise ConfigError(f"reshard cannot change {dotted!r}: only {', '.join(POST_ROLLOUT)} settings "
                              "(anything else needs a new run)")
        raw.setdefault(section, {})[leaf] = value
    try:
        return RunConfig.model_validate(raw)
    except ValueError as exc:
        raise ConfigError(f"reshard: {' '.join(str(exc).split())[:300]}") from None


def reshard(run_dir: Path, *, out: Path | None = None, overrides: dict[str, Any] | None = None,
            events: Any = None) -> RunReport:
    from pipelines.decontaminate import benchmark_seeds, load_index
    from pipelines.run import RunEvents, init_ray, resolve_tokenizer
    from pipelines.store import TrajectoryStore

    run_dir = Path(run_dir)
    config = resharded_config(run_dir, overrides or {})
    store = TrajectoryStore(run_dir)
    unit_files = store.unit_files()
    if not unit_files:
        raise ConfigError(f"{run_dir} holds no finished unit: nothing to reshard")
    tasks = store.tasks(unit_files)
    benchmarks, seeded_from = benchmark_seeds(tasks, load_index(config.decontam, config.domain),
                                              allow=config.allow_benchmark_seeds, min_hits=config.decontam.min_hits,
                                              where=config.decontam.check)
    # A served model's tokenizer was established when the run started and is in run.json.
    tokenizer_path = config.engine.tokenizer or resolve_tokenizer(config)
    previous = json.loads((run_dir / "report.json").read_text()) if (run_dir / "report.json").is_file() else {}
    target = Path(out) if out is not None else run_dir
    target.mkdir(parents=True, exist_ok=True)
    started_ray = init_ray(config)
    try:
        report = finish(config, target, unit_files, tokenizer_path=tokenizer_path, benchmarks=benchmarks,
                        seeded_from=seeded_from, events=events or RunEvents(), html=target.resolve() == run_dir.resolve(),
                        rollout=RolloutSummary(tasks=previous.get("tasks", len(tasks)),
                                               units_total=previous.get("units_total", len(unit_files))))
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    report.extra["resharded_from"] = str(run_dir.resolve())
    report.extra["reshard_overrides"] = {k: v for k, v in (overrides or {}).items() if v is not None}
    from pipelines.atomic import write_json

    write_json(target / "report.json", report.to_dict())
    return report
