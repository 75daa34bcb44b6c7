"""The domain mixture behind ``make all`` / ``trajforge run all``.

Every available domain runs with its own config into ``OUT/<domain>/`` (each
resumable as usual); then their shards are mixed into one shard set
``OUT/shards`` whose manifest carries, under ``run_config.mixture``, tokens per
domain against the targets.

Mixing rule: target token shares are renormalised over the domains that
produced tokens. The mixture's total is the domains' natural total, lowered
until no domain must be repeated more than ``max_upsample`` times (the paper
saw 5x upsampling of math hurt other abilities) — or ``total_tokens`` if given,
under the same cap. A domain below its target is repeated (whole copies, then
a seeded sample of rows; copies get ``#r<k>`` appended to their trajectory id);
one above it is sampled down. Shares land within about one row's tokens of
the target; a domain capped by ``max_upsample`` (only possible with
``total_tokens``) is flagged.

Before mixing, the domains' rows are deduped together, one near-duplicate space over the
mixture (``pipelines/mixture_dedupe.py``); the report's ``cross_domain_dedupe`` counts the
rows removed per pair of domains.

Config (YAML)::

    mixture:
      seed: 1234
      max_upsample: 3.0
      total_tokens: null          # default: natural total, capped as above
      tolerance: 0.02             # |share - target| flagged above this
      rows_per_shard: 1000
      dedupe: {exact: true, near: true, threshold: 0.85}   # across domains (a run config's keys)
      domains:
        math: {config: configs/math.yaml, target: 0.3, limit: null}
        code: {config: configs/code.yaml, target: 0.2, limit: 2, overrides: {agent.max_turns: 6}}
        ...
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.config import ConfigError, DedupeConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MixtureDomain(_Strict):
    config: str
    target: float = Field(gt=0)
    limit: int | None = None
    # dotted run-config keys set on top of the domain's config (sizing a small mixture
    # without a second config file), e.g. {"agent.max_turns": 6, "branching.k": 1}
    overrides: dict[str, Any] = Field(default_factory=dict)


class MixtureConfig(_Strict):
    seed: int = 1234
    max_upsample: float = Field(3.0, ge=1.0)
    total_tokens: int | None = None
    tolerance: float = 0.02
    rows_per_shard: int = 1000
    dedupe: DedupeConfig = Field(default_factory=DedupeConfig)  # across domains, before mixing
    domains: dict[str, MixtureDomain]


def load_mixture_config(path: str | Path) -> MixtureConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (pass the mixture YAML with --config)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        raise ConfigError(f"config {path} is not valid YAML: fix the syntax") from None
    if not isinstance(raw, dict) or "mixture" not in raw:
        raise ConfigError(f"config {path} has no 'mixture:' section (see configs/all.yaml)")
    try:
        return MixtureConfig.model_validate(raw["mixture"])
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"config {path}: mixture.{loc}: {err['msg']} (fix that key in the YAML)") from None


def plan_tokens(available: dict[str, int], targets: dict[str, float], max_upsample: float, total: int | None = None) -> dict[str, float]:
    """Desired tokens per domain (see the module docstring)."""
    present = {d: t for d, t in targets.items() if available.get(d, 0) > 0}
    if not present:
        return {}
    norm = sum(present.values())
    shares = {d: t / norm for d, t in present.items()}
    cap = min(available[d] * max_upsample / shares[d] for d in shares)
    budget = min(total if total is not None else sum(available[d] for d in shares), cap)
    return {d: shares[d] * budget for d in shares}


def select_rows(rows: list[Any], desired: float, rng: random.Random) -> list[tuple[Any, int]]:
    """(row, copy index) pairs whose tokens come closest to ``desired``: whole repeats first,
    then a seeded sample for the fraction."""
    available = sum(r.num_tokens for r in rows)
    if not rows or available <= 0:
        return []
    repeats = int(desired // available)
    out = [(r, k) for k in range(repeats) for r in rows]
    rest = desired - repeats * available
    order = list(rows)
    rng.shuffle(order)
    got = 0
    for row in order:
        # take a row when it brings the total closer to the remainder
        if abs(rest - (got + row.num_tokens)) < abs(rest - got):
            out.append((row, repeats))
            got += row.num_tokens
    return out


def mix_rows(domain_rows: dict[str, list[Any]], config: MixtureConfig) -> tuple[list[Any], dict[str, Any]]:
    """The mixed shard rows and the mixture report."""
    from schemas import ShardRow

    available = {d: sum(r.num_tokens for r in rows) for d, rows in domain_rows.items()}
    targets = {d: m.target for d, m in config.domains.items()}
    desired = plan_tokens(available, targets, config.max_upsample, config.total_tokens)
    rng = random.Random(config.seed)
    mixed: list[Any] = []
    per_domain: dict[str, Any] = {}
    for domain in sorted(desired):
        picked = select_rows(sorted(domain_rows[domain], key=lambda r: r.trajectory_id), desired[domain], rng)
        for row, copy in picked:
            mixed.append(row if copy == 0 else ShardRow.model_construct(**{**dict(row), "trajectory_id": f"{row.trajectory_id}#r{copy}"}))
        per_domain[domain] = {"rows": len(picked), "tokens": sum(r.num_tokens for r, _ in picked)}
    total = sum(v["tokens"] for v in per_domain.values()) or 1
    norm = sum(targets[d] for d in desired) or 1
    report: dict[str, Any] = {
        "max_upsample": config.max_upsample,
        "total_tokens": sum(v["tokens"] for v in per_domain.values()),
        "tolerance": config.tolerance,
        "domains": {},
    }
    for domain, target in sorted(targets.items()):
        entry: dict[str, Any] = {"target_share": target, "available_tokens": available.get(domain, 0)}
        if domain in per_domain:
            got = per_domain[domain]
            share = got["tokens"] / total
            entry.update(
                renormalised_target=round(target / norm, 4),
                desired_tokens=round(desired[domain]),
                tokens=got["tokens"],
                rows=got["rows"],
                share=round(share, 4),
                upsample=round(got["tokens"] / available[domain], 3),
                within_tolerance=abs(share - target / norm) <= config.tolerance,
                capped=math.isclose(desired[domain], available[domain] * config.max_upsample, rel_tol=1e-9),
            )
        else:
            entry.update(tokens=0, share=0.0, missing=True)
        report["domains"][domain] = entry
    return mixed, report


def read_shard_rows(shard_dir: Path) -> tuple[list[Any], Any]:
    """Rows and manifest of one domain's shard set."""
    import json

    import pyarrow.parquet as pq

    from schemas import Manifest, ShardRow

    manifest = Manifest.model_validate(json.loads((shard_dir / "manifest.json").read_text()))
    rows = []
    for entry in manifest.shards:
        for rec in pq.read_table(shard_dir / entry.file).to_pylist():
            rows.append(ShardRow.model_construct(**rec))
    return rows, manifest


def run_mixture(
    config: MixtureConfig,
    out_dir: Path,
    *,
    run_domain: Callable[[str, Any, Path], Any],
    limit: int | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Run every available domain (``run_domain(name, RunConfig, dir)``), then mix. Returns the report."""
    from pipelines.atomic import write_json
    from pipelines.config import load_config
    from pipelines.shards import write_shard_set
    from synthesizers.domains.registry import DOMAINS

    out_dir = Path(out_dir)
    runs: dict[str, Any] = {}
    domain_rows: dict[str, list[Any]] = {}
    manifests = {}
    for name, spec in config.domains.items():
        if name not in DOMAINS:
            runs[name] = {"status": "skipped", "why": "domain not built yet"}
            continue
        if not Path(spec.config).is_file():
            runs[name] = {"status": "skipped", "why": f"no config {spec.config}"}
            continue
        sized = {"limit": limit if limit is not None else spec.limit, "engine.model": model}
        cfg = load_config(spec.config, **{**spec.overrides, **sized})
        if cfg.domain != name:
            raise ConfigError(f"mixture domain {name!r} points at {spec.config}, a config for {cfg.domain!r}")
        try:
            run_domain(name, cfg, out_dir / name)
        except Exception as exc:  # one domain's failure leaves the others' mixture standing
            runs[name] = {"status": "failed", "why": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
            continue
        domain_rows[name], manifests[name] = read_shard_rows(out_dir / name / "shards")
        runs[name] = {"status": "ok", "run_dir": str((out_dir / name).resolve()), "config": spec.config}
    if not manifests:
        raise ConfigError("no domain of the mixture produced shards: " + "; ".join(f"{d}: {r['why']}" for d, r in runs.items()))
    kinds = {(m.tokenizer_id, m.tokenizer_sha256, m.masking_policy, m.train_on_inserted) for m in manifests.values()}
    if len(kinds) > 1:
        raise ConfigError(f"mixture domains disagree on tokenizer/masking {sorted(kinds, key=str)}: use one tokenizer and policy")
    from pipelines.mixture_dedupe import dedupe_across_domains

    domain_rows, cross = dedupe_across_domains(domain_rows, {d: out_dir / d for d in domain_rows}, config.dedupe)
    rows, report = mix_rows(domain_rows, config)
    tokenizer, tokenizer_sha256, masking, train_on_inserted = kinds.pop()
    report["cross_domain_dedupe"] = cross
    report["runs"] = runs
    manifest = write_shard_set(
        rows, out_dir / "shards", tokenizer_id=tokenizer, masking_policy=masking,
        tokenizer_sha256=tokenizer_sha256, train_on_inserted=train_on_inserted,
        assists=sorted(set().union(*(m.assists for m in manifests.values()))),
        rows_per_shard=config.rows_per_shard, run_config={"mixture": report, "config": config.model_dump()},
        decontamination={name: m.decontamination for name, m in sorted(manifests.items())},  # per domain
    )
    report["shard_files"] = len(manifest.shards)
    report["tokens_per_domain"] = manifest.tokens_per_domain()
    write_json(out_dir / "report.json", report)
    return report


def run_all(config_path: Path, out: Path, *, limit: int | None, model: str | None, quiet: bool) -> list[str]:
    """The CLI's ``run all``: progress per domain, a table at the end; returns failed domains."""
    from rich.console import Console
    from rich.table import Table

    from pipelines.preflight import check_model
    from pipelines.progress import RichRunEvents, print_summary
    from pipelines.run import run_pipeline

    console = Console()
    config = load_mixture_config(config_path)
    if model:
        check_model(model)

    def run_domain(name: str, cfg: Any, run_dir: Path) -> None:
        console.rule(f"{name}")
        with RichRunEvents(console, enabled=not quiet) as events:
            result = run_pipeline(cfg, run_dir, events)
        print_summary(console, result)
        if result.failed_units:
            raise RuntimeError(f"{len(result.failed_units)} unit(s) failed")

    report = run_mixture(config, out, run_domain=run_domain, limit=limit, model=model)
    table = Table(title=f"mixture -> {Path(out) / 'shards'}")
    for col in ("domain", "status", "target", "share", "tokens", "available", "upsample"):
        table.add_column(col)
    for name, entry in report["domains"].items():
        status = report["runs"].get(name, {}).get("status", "")
        table.add_row(name, status, f"{entry.get('renormalised_target', entry['target_share'])}", f"{entry['share']}",
                      str(entry["tokens"]), str(entry["available_tokens"]), str(entry.get("upsample", "-")))
    console.print(table)
    cross = report["cross_domain_dedupe"]
    spans = ", ".join(f"{pair} {c['exact']}+{c['near']}" for pair, c in cross["pairs"].items() if c["exact"] or c["near"])
    console.print(f"cross-domain dedupe over {cross['documents']} rows: "
                  f"{sum(c['exact'] + c['near'] for c in cross['removed'].values())} removed (exact+near: {spans or 'none'})")
    for name, run in report["runs"].items():
        if run["status"] != "ok":
            console.print(f"[yellow]{name}: {run['status']} ({run['why']})[/]")
    return [n for n, r in report["runs"].items() if r["status"] == "failed"]
