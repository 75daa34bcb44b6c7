"""The `trajforge` command line (typer + rich).

Every expected failure (bad config, missing model, Docker unavailable, ...)
ends as one line on stderr naming the problem and the fix, exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Verified, loss-masked agent trajectories.")
sandbox_app = typer.Typer(no_args_is_help=True, help="Build or check the sandbox image.")
app.add_typer(sandbox_app, name="sandbox")


class UserError(Exception):
    """An error whose message is already the one line the user should read."""


def overrides(pairs: list[str]) -> dict[str, object]:
    """``--set a.b=VALUE`` pairs as dotted overrides; values read as YAML (``4``, ``true``, ``[a, b]``)."""
    import yaml

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {pair!r}: expected KEY=VALUE with a dotted key, e.g. --set ray.num_workers=4")
        out[key.strip()] = yaml.safe_load(value)
    return out


@app.command()
def run(
    domain: str = typer.Argument(..., help="a domain (math, deep-research, agentic-cot, ...) or all: the mixture of configs/all.yaml"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML run config (default: configs/DOMAIN.yaml)"),
    out: Path = typer.Option(..., "--out", "-o", help="run folder; re-running on it resumes"),
    limit: Optional[int] = typer.Option(None, help="cap on seed tasks"),
    model: Optional[str] = typer.Option(None, help="HF model folder, OpenAI-compatible server URL, or 'embedded'"),
    quiet: bool = typer.Option(False, help="no progress bars"),
    set_: list[str] = typer.Option([], "--set", help="config override KEY=VALUE with a dotted key, e.g. ray.num_workers=4 (repeatable)"),
) -> None:
    """Run one domain end to end into masked shards (``all``: the domain mixture of configs/all.yaml)."""
    from pipelines.config import load_config
    from pipelines.progress import RichRunEvents, print_summary
    from pipelines.run import run_pipeline
    from pipelines.preflight import check_model

    config = config or default_config(domain)
    if domain == "all":
        from pipelines.mixture import run_all

        failed = run_all(config, out, limit=limit, model=model, quiet=quiet)
        if failed:
            raise UserError(f"domain(s) {', '.join(failed)} failed (see {out}/report.json): re-run the same command to retry")
        return
    cfg = load_config(config, domain=None, limit=limit, **{"engine.model": model, **overrides(set_)})
    if cfg.domain != domain:
        raise UserError(f"config {config} is for domain {cfg.domain!r}, not {domain!r}: pass a {domain} config")
    check_model(cfg.engine.model)
    console = Console()
    with RichRunEvents(console, enabled=not quiet) as events:
        result = run_pipeline(cfg, out, events)
    print_summary(console, result)
    if result.failed_units:
        raise UserError(f"{len(result.failed_units)} unit(s) failed: re-run the same command to retry them")


@app.command()
def reshard(
    run_dir: Path = typer.Argument(..., help="a finished run folder"),
    out: Optional[Path] = typer.Option(None, help="write shards and report here (default: the run folder)"),
    masking: Optional[str] = typer.Option(None, help="assistant | assistant+user | all-but-tool | none"),
    include: Optional[str] = typer.Option(None, help="passed | all"),
    train_on_inserted: Optional[bool] = typer.Option(None, "--train-on-inserted/--no-train-on-inserted",
                                                     help="loss on tokens the framework inserted"),
    require_token_exact: Optional[bool] = typer.Option(None, "--require-token-exact/--allow-text-rows"),
    dedupe_threshold: Optional[float] = typer.Option(None, help="near-duplicate Jaccard threshold"),
    allow_benchmark_seeds: Optional[bool] = typer.Option(None, "--allow-benchmark-seeds/--no-benchmark-seeds",
                                                         help="shard trajectories of tasks that are benchmark items"),
    quiet: bool = typer.Option(False, help="no progress"),
) -> None:
    """Decontaminate, dedupe, mask and shard a finished run's store again (no new rollouts)."""
    from pipelines.progress import RichRunEvents
    from pipelines.reshard import reshard as run_reshard
    from schemas import MASKING_POLICIES

    if masking is not None and masking not in MASKING_POLICIES:
        raise UserError(f"--masking {masking!r} is unknown: use one of {', '.join(MASKING_POLICIES)}")
    overrides = {"shards.masking": masking, "shards.include": include, "shards.train_on_inserted": train_on_inserted,
                 "shards.require_token_exact": require_token_exact, "dedupe.threshold": dedupe_threshold,
                 "allow_benchmark_seeds": allow_benchmark_seeds}
    console = Console()
    with RichRunEvents(console, enabled=not quiet) as events:
        report = run_reshard(run_dir, out=out, overrides=overrides, events=events)
    console.print(f"{report.shard_rows} rows in {report.shard_files} shard file(s), {report.loss_tokens} loss tokens "
                  f"-> {(out or run_dir) / 'shards'}")


def default_config(domain: str) -> Path:
    """``configs/DOMAIN.yaml`` of the working folder, else of the checkout."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        candidate = root / "configs" / f"{domain}.yaml"
        if candidate.is_file():
            return candidate
    raise UserError(f"no configs/{domain}.yaml for domain {domain!r}: pass --config FILE")


@app.command()
def verify(
    input: Path = typer.Option(..., "--input", "-i", help="JSONL: {id, domain, task, messages}"),
    output: Path = typer.Option(..., "--output", "-o", help="JSONL: {id, passed, score, reason}"),
    workers: int = typer.Option(4, help="rows verified at once"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="judge as a run of this run (or mixture) config "
                                          "does: its domain options, verifier settings and sandbox limits "
                                          "(default: each domain's defaults)"),
) -> None:
    """Re-verify a dataset: any domain and task kind with a verifier (sandboxed rows run in their task's image)."""
    from pipelines.verify_cmd import verify_file

    summary = verify_file(input, output, workers=workers, config=config)
    Console().print(
        f"verified {summary.total} rows: [green]{summary.passed} passed[/], [red]{summary.failed} failed[/]"
        + (f" ({summary.bad_rows} malformed)" if summary.bad_rows else "")
        + f" -> {output}"
    )


@sandbox_app.command("build")
def sandbox_build() -> None:
    """Build (or find) the sandbox image."""
    from sandboxes.image import ensure_image

    Console().print(f"sandbox image: {ensure_image()}")


@sandbox_app.command("check")
def sandbox_check() -> None:
    """Run the containment checks against the sandbox image."""
    from sandboxes.image import main as image_main

    code = image_main(["check"])
    if code:
        raise typer.Exit(code)


@app.command()
def train(
    config: Path = typer.Option(..., "--config", "-c", help="trainer YAML"),
    shards: Path = typer.Option(..., "--shards", help="shard folder with manifest.json"),
    out: Path = typer.Option(..., "--out", "-o", help="checkpoint/log folder; re-running resumes"),
    tokenizer: Optional[str] = typer.Option(None, help="must match the shards' manifest"),
) -> None:
    """Train on shards (the tiny config runs on CPU)."""
    from trainer.shards import ShardError
    from trainer.train import train_main

    try:
        train_main(config, shards, out, tokenizer=tokenizer)
    except (ShardError, ValueError) as exc:  # wrong tokenizer, bad sha256, bad trainer config
        raise UserError(str(exc)) from None


@app.command()
def review(
    run_dir: Path = typer.Argument(..., help="a run folder (the --out of `trajforge run`)"),
    sample: int = typer.Option(50, help="trajectories in the reproducible sample (0: all)"),
    seed: int = typer.Option(0, help="sample seed: the same seed shows the same trajectories"),
    domain: Optional[str] = typer.Option(None, help="only this domain"),
    verdict: Optional[str] = typer.Option(None, help="passed or failed"),
    reason: Optional[str] = typer.Option(None, help="a verdict-reason shape, as report.json's failure_reasons names it"),
    inserted: bool = typer.Option(False, "--inserted", help="only trajectories whose token trace holds inserted text"),
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8765, help="port (0: any free one)"),
    export: bool = typer.Option(False, "--export", help="write review/accepted.txt and shards-reviewed/, then exit"),
) -> None:
    """Sample and read a run's trajectories in the browser; mark accept/reject."""
    from pipelines.review.listing import Filters
    from pipelines.review.serve import export as export_reviewed, serve

    if verdict not in (None, "passed", "failed"):
        raise UserError(f"--verdict must be passed or failed, not {verdict!r}")
    if export:
        ids, out, rows = export_reviewed(run_dir)
        Console().print(f"accepted ids -> {ids}; reviewed shard set ({rows} rows) -> {out}")
        return
    filters = Filters(domain=domain or "", verdict=verdict or "", reason=reason or "", inserted="yes" if inserted else "",
                      sample=sample or None, seed=seed)
    try:
        serve(run_dir, filters, host, port, announce=lambda url: print(f"review {run_dir} at {url}  (Ctrl-C stops)", flush=True))
    except OSError as exc:  # busy port, bad host
        raise UserError(str(exc)) from None


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run folder")) -> None:
    """Recompute report.json from the store and write report.html (plots)."""
    from pipelines.report_html import regenerate

    for path in regenerate(run_dir):
        Console().print(f"wrote {path}")


@app.command()
def audit(
    shards: Path = typer.Argument(..., help="a shard folder (with manifest.json), e.g. runs/demo/shards"),
    rescore: Optional[str] = typer.Option(None, help="feed rows back to this model ('embedded', a folder, or a vLLM server URL) and "
                                          "compare the stored logprobs"),
    rows: int = typer.Option(8, help="rows to rescore"),
    output: Optional[Path] = typer.Option(None, help="also write the audit as JSON here"),
) -> None:
    """Check every row: token-exact, no drift, loss only on sampled tokens; exit 1 when a row fails."""
    from pipelines.audit import audit_shards

    if not (shards / "manifest.json").is_file():
        raise UserError(f"no manifest.json in {shards}: pass a shard folder such as runs/demo/shards")
    result = audit_shards(shards, rescore_model=rescore, rescore_rows=rows)
    text = result.model_dump_json(indent=2)
    Console().print_json(text)
    if output is not None:
        from pipelines.atomic import write_json

        write_json(output, json.loads(text))
    if not result.clean:
        raise typer.Exit(1)


def _known_errors() -> tuple[type[BaseException], ...]:
    from pipelines.config import ConfigError
    from pipelines.run import SeedError, WorkerStartError
    from pipelines.store import RunFolderMismatch
    from synthesizers.domains.base import DomainOptionsError
    from synthesizers.domains.registry import UnknownDomain

    from pipelines.preflight import PreflightError

    known: list[type[BaseException]] = [
        UserError, ConfigError, SeedError, RunFolderMismatch, UnknownDomain, DomainOptionsError, PreflightError,
        WorkerStartError, FileNotFoundError,
    ]
    try:
        from sandboxes.daemon import SandboxUnavailable

        known.append(SandboxUnavailable)
    except ImportError:
        pass
    return tuple(known)


INTERRUPTED = 130


def _is_usage_error(exc: BaseException) -> bool:
    """A click usage error (missing or unknown option, bad value); typer ships its own copy of click,
    so its classes are matched by name along the class's bases, whichever copy raised it."""
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__) and hasattr(exc, "format_message")


def main() -> None:
    try:
        # Not standalone: typer *returns* 130 for Ctrl-C (or SIGTERM, see run.py) instead of raising.
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        code = INTERRUPTED
    except Exception as exc:
        from synthesizers.domains.base import DomainOptionsError

        if _is_usage_error(exc):  # one line, as every other expected failure
            command = getattr(getattr(exc, "ctx", None), "command_path", None) or "trajforge"
            print(f"error: {' '.join(exc.format_message().split())} (see `{command} --help`)", file=sys.stderr)
            sys.exit(getattr(exc, "exit_code", 2) or 2)
        if isinstance(exc, _known_errors()):
            # One line per problem, never wrapped (bad domain options: one line per bad key).
            for line in str(exc).splitlines() if isinstance(exc, DomainOptionsError) else [str(exc)]:
                print(f"error: {' '.join(line.split())}", file=sys.stderr)
            sys.exit(2)
        raise
    if code == INTERRUPTED:
        print("interrupted: re-run the same command to resume", file=sys.stderr)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
