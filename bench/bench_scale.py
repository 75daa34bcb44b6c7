"""Post-rollout stages at scale: a synthetic store through ``trajforge reshard``.

The store is written by a child process (so its making does not count against the driver): N
trajectories of realistic lengths (2–50 KB of assistant text, log-normal around ~10 KB; word
salad over a 20k-word vocabulary so shingles are as varied as real text; 1% planted near copies),
text-mode rows (no token trace: the template renders each row, the costlier path). A second child
runs ``reshard`` on it with a local Ray and reports its own peak RSS — the driver's — with the wall
time of each stage and trajectories/s per core.

    python -m bench.run scale                   # 20,000 trajectories (~230 MB of text; minutes)
    TRAJFORGE_SCALE_N=200000 python -m bench.run scale --timeout 7200    # the issue's size (~2.3 GB; an
                                                # hour or more on 2 cores: the committed result)
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_DEFAULT = 20_000
PER_UNIT = 200
GOAL_RSS_MB = 1024


def make_store(run_dir: Path, n: int, seed: int = 11) -> int:
    """Writes the store (unit files + run.json); returns the bytes of assistant text."""
    import numpy as np

    from pipelines.config import RunConfig
    from pipelines.store import TrajectoryStore
    from schemas import Message, Task, Trajectory, Verdict

    rng = np.random.default_rng(seed)
    vocab = np.array([f"{''.join(rng.choice(list('abcdefghijklmnopqrstuvwxyz'), size=int(k)))}"
                      for k in rng.integers(2, 10, size=20_000)])
    store = TrajectoryStore(run_dir)
    config = RunConfig.model_validate({"domain": "math", "decontam": {"benchmarks": []}})
    store.claim("bench-scale", config.model_dump())
    total = 0
    previous = ""
    for u in range(0, n, PER_UNIT):
        batch = []
        for i in range(u, min(n, u + PER_UNIT)):
            size = int(min(50_000, max(2_000, rng.lognormal(np.log(9_000), 0.6))))
            if previous and rng.random() < 0.01:
                words = previous.split()
                words[len(words) // 2] = "planted"
                text = " ".join(words)
            else:
                text = " ".join(rng.choice(vocab, size=size // 6))
            previous = text
            total += len(text)
            task = Task(id=f"task-{i}", domain="math", payload={"question": f"problem {i}", "answer": "1"})
            batch.append(Trajectory(id=f"t{i:07d}", task_id=task.id, domain="math", task=task,
                                    verdict=Verdict(passed=True, score=1.0),
                                    messages=[Message(role="user", content=f"problem {i}"),
                                              Message(role="assistant", content=text)]))
        store.write_unit(f"{u:08d}", batch)
    return total


def _reshard_child(run_dir: str, out: str) -> None:
    from pipelines.reshard import reshard
    from pipelines.run import RunEvents

    stamps: list[tuple[str, float]] = []
    t0 = time.monotonic()
    report = reshard(Path(run_dir), out=Path(out), events=RunEvents(on_stage=lambda s: stamps.append((s, time.monotonic()))))
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "wall_s": time.monotonic() - t0, "stage_s": report.funnel["totals"],
                      "rows": report.shard_rows, "removed_near": report.dedupe_removed_near,
                      "removed_exact": report.dedupe_removed_exact}))


def run() -> dict:
    n = int(os.environ.get("TRAJFORGE_SCALE_N", N_DEFAULT))
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="tf-scale-") as tmp:
        run_dir = Path(tmp) / "run"
        t0 = time.monotonic()
        made = subprocess.run([sys.executable, "-c", f"from bench.bench_scale import make_store; from pathlib import Path; "
                               f"print(make_store(Path({str(run_dir)!r}), {n}))"],
                              capture_output=True, text=True, check=True)
        text_bytes = int(made.stdout.strip().splitlines()[-1])
        make_s = time.monotonic() - t0
        child = subprocess.run([sys.executable, "-c", f"from bench.bench_scale import _reshard_child; "
                                f"_reshard_child({str(run_dir)!r}, {str(Path(tmp) / 'out')!r})"],
                               capture_output=True, text=True)
        if child.returncode != 0:
            raise RuntimeError(f"reshard failed: {child.stderr.strip().splitlines()[-1:]}")
        result = json.loads(child.stdout.strip().splitlines()[-1])
    stages = {k[:-2]: round(v, 2) for k, v in result["stage_s"].items()
              if k.endswith("_s") and k[:-2] in ("decontaminate", "dedupe", "tokenize", "shards")}
    per_core = {stage: round(n / seconds / cores, 1) for stage, seconds in stages.items() if seconds > 0}
    return {
        "trajectories": n,
        "text_mb": round(text_bytes / 1e6, 1),
        "store_made_s": round(make_s, 1),
        "reshard_wall_s": round(result["wall_s"], 1),
        "stage_s": stages,
        "trajectories_per_s_per_core": per_core,
        "rows": result["rows"],
        "removed_near": result["removed_near"],
        "removed_exact": result["removed_exact"],
        "load_average": os.getloadavg(),
        "figures": [
            {"figure": f"reshard driver peak RSS at {n:,} trajectories (MB)", "value": round(result["peak_rss_mb"]),
             "goal": f"<= {GOAL_RSS_MB}"},
            {"figure": "reshard trajectories/s per core (whole chain)", "value": round(n / result["wall_s"] / cores, 1),
             "goal": "-"},
        ],
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
