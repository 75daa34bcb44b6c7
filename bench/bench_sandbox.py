"""Sandbox exec latency: p50/p95 of a trivial command, and of a python3 start,
in a warm hardened pool (goal: p95 of `true` under 150 ms on this machine)."""

from __future__ import annotations

import statistics
import time


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50_ms": round(pick(0.50) * 1000, 1), "p95_ms": round(pick(0.95) * 1000, 1),
            "mean_ms": round(statistics.mean(ordered) * 1000, 1)}


def run(n: int = 60) -> dict:
    from sandboxes.docker_backend import DockerSandboxPool
    from sandboxes.image import ensure_image

    image = ensure_image()
    t0 = time.monotonic()
    with DockerSandboxPool(image=image, size=2) as pool:
        start_s = time.monotonic() - t0
        results = {}
        for label, cmd in (("true", ["true"]), ("python3", ["python3", "-c", "print(1)"])):
            samples = []
            for _ in range(n):
                with pool.acquire() as box:
                    s = time.monotonic()
                    r = box.exec(cmd)
                    samples.append(time.monotonic() - s)
                    assert r.exit_code == 0, r
            results[label] = _percentiles(samples)
    return {
        "name": "sandbox_exec_latency",
        "image": image,
        "pool_start_s": round(start_s, 2),
        "execs_per_command": n,
        "exec_true": results["true"],
        "exec_python3": results["python3"],
        "figures": [
            {"figure": "exec `true` p50 (ms)", "value": results["true"]["p50_ms"], "goal": "-"},
            {"figure": "exec `true` p95 (ms)", "value": results["true"]["p95_ms"], "goal": "<= 150"},
            {"figure": "exec python3 p50 (ms)", "value": results["python3"]["p50_ms"], "goal": "-"},
            {"figure": "exec python3 p95 (ms)", "value": results["python3"]["p95_ms"], "goal": "<= 300"},
        ],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
