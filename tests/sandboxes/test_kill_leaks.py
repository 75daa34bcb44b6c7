"""Nothing leaks: a run killed with SIGKILL (its whole process group, at random moments) leaves no
container of its own behind once the same run starts again, and the run never holds more
containers than its cap while it runs, is killed and restarts.

Real Ray, real Docker, the scripted engine (tests/pipelines/test_run.py's configuration with a
per-turn delay so the run is mid-way when killed). ``TRAJFORGE_KILL_ROUNDS`` sets the number of kills
(default 4; ``python tests/sandboxes/test_kill_leaks.py 10`` runs ten and prints a summary).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.ray, pytest.mark.docker, pytest.mark.slow]
RUN_CAP = 2  # pool_size 2, one worker, one image; the host cap is set to the same in a private slot folder


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(
        """
domain: math
seed: 7
limit: 400
engine:
  model: "python:tests.fakes:ScriptedEngine"
  options: {delay_s: 0.25}
agent: {max_turns: 3, concurrency: 8}
branching: {enabled: true, k: 2}
units: {tasks_per_unit: 2}
sandbox: {pool_size: 2}
shards: {include: all}
domain_options: {sources: [generator]}
"""
    )
    return path


def _containers(run_id: str) -> list[dict[str, str]]:
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label=trajforge.run={run_id}",
         "--format", '{{.ID}} {{.Label "trajforge.owner_pid"}}'],
        capture_output=True, text=True, check=True).stdout
    return [dict(zip(("id", "owner_pid"), line.split())) for line in out.splitlines() if line.strip()]


class _Sampler(threading.Thread):
    """Counts the run's containers (``docker ps``) every ~0.2 s while the test runs."""

    def __init__(self, run_id: str):
        super().__init__(daemon=True)
        self.run_id, self.peak, self.samples, self._halt = run_id, 0, 0, threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, len(_containers(self.run_id)))
            self.samples += 1
            self._halt.wait(0.2)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _launch(config: Path, out: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", "math", "--config", str(config), "--out", str(out), "--quiet"],
        cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )


def _wait_for(predicate, timeout_s: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def kill_rounds(tmp_path: Path, rounds: int, seed: int = 0) -> dict:
    from pipelines.store import stable_hash

    rng = random.Random(seed)
    out = tmp_path / "run"
    run_id = stable_hash(out.resolve())
    config = _config(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TRAJFORGE_SANDBOX_HOST_CAP": str(RUN_CAP),
           "TRAJFORGE_SANDBOX_SLOTS_DIR": str(tmp_path / "slots")}
    sampler = _Sampler(run_id)
    sampler.start()
    kills, left_after_kill, left_after_next_start, killed_owners = [], [], [], set()
    try:
        for i in range(rounds + 1):
            proc = _launch(config, out, env)
            # The next start: once its own boxes are up, nothing of a killed owner may remain.
            started = _wait_for(lambda: any(c["owner_pid"] not in killed_owners for c in _containers(run_id)),
                                240, proc)
            assert started, f"start {i} brought up no sandbox (exit {proc.poll()})"
            stale = [c for c in _containers(run_id) if c["owner_pid"] in killed_owners]
            left_after_next_start.append(len(stale))
            if i == rounds:  # the last start is stopped cleanly
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=120)
                break
            # A random moment: the pool is up; kill within the next few seconds (mid-rollout,
            # mid-reset, mid-start of a box, ...).
            time.sleep(rng.uniform(0.0, 4.0))
            owners = {c["owner_pid"] for c in _containers(run_id)}
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed_owners |= owners
            kills.append(len(owners))
            time.sleep(2.0)  # what the killed run's processes left once they are gone
            left_after_kill.append(sum(c["owner_pid"] in killed_owners for c in _containers(run_id)))
        # Every owner is gone now; a final sweep of this run must find nothing the last stop left.
        assert _wait_for(lambda: not _containers(run_id), 30), "a cleanly stopped run left containers"
    finally:
        sampler.stop()
        leftovers = _containers(run_id)
        if leftovers:
            subprocess.run(["docker", "rm", "-f", *[c["id"] for c in leftovers]], capture_output=True)
    return {"kills": len(kills), "left_after_kill": left_after_kill, "left_after_next_start": left_after_next_start, "peak_containers": sampler.peak,
            "cap": RUN_CAP, "samples": sampler.samples, "leftover_at_end": len(leftovers)}


def test_sigkill_at_random_moments_leaves_no_container_and_keeps_the_cap(tmp_path):
    rounds = int(os.environ.get("TRAJFORGE_KILL_ROUNDS", "4"))
    result = kill_rounds(tmp_path, rounds, seed=rounds)
    assert result["kills"] == rounds
    assert sum(result["left_after_kill"]) > 0, result  # the kills did leave boxes: the sweep is what removed them
    assert result["left_after_next_start"] == [0] * (rounds + 1), result
    assert result["leftover_at_end"] == 0, result
    assert result["samples"] > 0 and result["peak_containers"] <= RUN_CAP, result


if __name__ == "__main__":
    import tempfile

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    with tempfile.TemporaryDirectory() as d:
        t0 = time.time()
        res = kill_rounds(Path(d), n, seed=n)
        res["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(res))
