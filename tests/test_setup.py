"""Set-up plumbing: scripts/setup.sh, the Makefile, .ci/run and the bench runner.

These are fast: they run setup.sh only in --check mode or in a scratch copy
where it stops at its input checks, never installing anything.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP = ROOT / "scripts" / "setup.sh"
STEPS = ("apt", "venv", "docker", "model", "image")


def _run(cmd, *, cwd=ROOT, env_extra=None, timeout=120):
    # Under `make test` the parent make's variables would leak into `make -n` ("Entering directory").
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEFILES")}
    env.update({"CI": "true", **(env_extra or {})})
    return subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def _scratch_repo(tmp_path: Path, *, with_cpu_req: bool = True) -> Path:
    """A copy of the set-up inputs without a venv: setup.sh finds its root from its own path."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(SETUP, repo / "scripts" / "setup.sh")
    (repo / "requirements").mkdir()
    for name in ("cpu.txt", "data.txt", "cuda.txt"):
        if name != "cpu.txt" or with_cpu_req:
            shutil.copy2(ROOT / "requirements" / name, repo / "requirements" / name)
    shutil.copy2(ROOT / "pyproject.toml", repo / "pyproject.toml")
    return repo


@pytest.mark.docker
def test_check_reports_every_step_done_on_a_set_up_machine():
    proc = _run(["bash", str(SETUP), "--check"], env_extra={"TRAJFORGE_DEVICE": "cpu"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[1] for line in lines] == list(STEPS), lines
    assert not any("TODO" in line for line in lines), lines


@pytest.mark.parametrize("mode", [[], ["--check"]])
def test_missing_requirement_file_is_one_clear_line(tmp_path, mode):
    repo = _scratch_repo(tmp_path, with_cpu_req=False)
    proc = _run(["bash", str(repo / "scripts" / "setup.sh"), *mode], cwd=tmp_path,
                env_extra={"TRAJFORGE_DEVICE": "cpu"})
    assert proc.returncode != 0
    assert proc.stdout == ""  # stopped before any step
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, err
    assert "requirements/cpu.txt missing" in err[0] and "git checkout" in err[0]
    assert not (repo / ".cache").exists() and not (repo / ".venv").exists()  # nothing half-made


def test_bad_device_is_one_clear_line(tmp_path):
    repo = _scratch_repo(tmp_path)
    proc = _run(["bash", str(repo / "scripts" / "setup.sh"), "--check"], env_extra={"TRAJFORGE_DEVICE": "tpu"})
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "TRAJFORGE_DEVICE" in err[0] and "cpu or cuda" in err[0], err


def test_check_on_a_fresh_clone_lists_work_and_changes_nothing(tmp_path):
    repo = _scratch_repo(tmp_path)
    before = sorted(p.relative_to(repo) for p in repo.rglob("*"))
    proc = _run(["bash", str(repo / "scripts" / "setup.sh"), "--check"], env_extra={"TRAJFORGE_DEVICE": "cpu"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[1] for line in lines] == list(STEPS), lines
    venv_line = lines[1]
    assert "TODO" in venv_line and "create .venv" in venv_line
    assert "make setup" in proc.stderr
    assert sorted(p.relative_to(repo) for p in repo.rglob("*")) == before


def test_unknown_option_is_rejected():
    proc = _run(["bash", str(SETUP), "--frobnicate"])
    assert proc.returncode == 2 and "unknown option" in proc.stderr


def test_ci_run_propagates_make_test_exit_code(tmp_path):
    """Exit code 5 (pytest collected nothing) must fail CI, not pass."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake_make = fake_bin / "make"
    fake_make.write_text('#!/bin/sh\necho "make $*" >"$FAKE_MAKE_LOG"\nexit 5\n')
    fake_make.chmod(fake_make.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "make.log"
    proc = _run([str(ROOT / ".ci" / "run")],
                env_extra={"PATH": f"{fake_bin}:{os.environ['PATH']}", "FAKE_MAKE_LOG": str(log)})
    assert proc.returncode == 5
    assert log.read_text().strip() == "make test"


@pytest.mark.parametrize("target", ["demo", "math", "test", "test-fast", "bench", "code"])
def test_every_target_runs_setup_first(target):
    proc = _run(["make", "-n", target])
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert "scripts/setup.sh" in lines[0], lines


def test_make_test_selects_all_but_gpu_and_does_not_mask_failures():
    out = _run(["make", "-n", "test"]).stdout
    cmd = [line for line in out.splitlines() if "pytest" in line]
    assert len(cmd) == 1 and '-m "not gpu"' in cmd[0]
    assert "|| true" not in out and "; true" not in out


def test_bench_runner_discovers_modules_and_formats_figures():
    from bench import run as bench_run

    names = bench_run.discover()
    assert names and all((ROOT / "bench" / f"bench_{n}.py").is_file() for n in names)
    skipped = bench_run.figures({"skipped": "no GPU"})
    assert skipped == [{"figure": "skipped", "value": "no GPU", "goal": "-", "met": None}]
    assert bench_run.figures({"error": "exit code 1"})[0]["figure"] == "error"
    rows = bench_run.figures({"figures": [{"figure": "ratio", "value": 0.95123, "goal": ">= 0.9"}]})
    assert rows == [{"figure": "ratio", "value": 0.95123, "goal": ">= 0.9", "met": True}]  # more in tests/bench
    machine = bench_run.machine()
    assert machine["cpu_count"] and "torch" in machine["versions"]
