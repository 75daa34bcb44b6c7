"""Sandbox exec latency through the in-box runner and through ``docker exec``, side by side; pool
hand-out; 64 concurrent agent loops that each run tools (goals on the 2-core machine: runner `true`
p50 <= 10 ms, p95 <= 30 ms; hand-out p50 <= 20 ms; 64/64 loops, 0 daemon errors).

The two paths run in blocks, runner first: interleaved, a ``docker exec``'s own teardown (containerd,
runc) would still be running during the next runner sample. Each block records the host's load. An
agent loop
here is a model turn (a sleep standing in for a GPU engine's ~100 ms) then a tool call that borrows a
box for the call, as stateless sandbox tools do.

gVisor rows (``runtime: runsc``) come after, where the daemon has runsc registered
(``python -m sandboxes.gvisor register``): pool start, exec through ``docker exec`` (the only path a
runsc pool allows, see sandboxes/gvisor.py), hand-out. Where it does not, the result says so instead.
"""

from __future__ import annotations

import os
import statistics
import time


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50_ms": round(pick(0.50) * 1000, 2), "p95_ms": round(pick(0.95) * 1000, 2),
            "mean_ms": round(statistics.mean(ordered) * 1000, 2), "n": len(ordered)}


def _exec_latency(pool, via: str, cmd: list[str], n: int) -> dict:
    """``n`` execs of ``cmd`` in one acquired box, with the host's 1-minute load before them."""
    load = os.getloadavg()[0]
    samples = []
    with pool.acquire() as box:
        assert box.exec(cmd).exit_code == 0  # warm: attach the runner, page in the binary
        for _ in range(n):
            s = time.perf_counter()
            r = box.exec(cmd)
            samples.append(time.perf_counter() - s)
            assert r.exit_code == 0, r
        assert box.calls[via] >= n and box.calls["docker" if via == "runner" else "runner"] == 0
    return {**_percentiles(samples), "load_1m": round(load, 2)}


def _hand_out(pool, n: int) -> dict[str, dict]:
    acquire, release = [], []
    for _ in range(n):
        cm = pool.acquire()
        s = time.perf_counter()
        box = cm.__enter__()
        acquire.append(time.perf_counter() - s)
        box.exec("touch /work/x /tmp/y; sleep 0 &")  # something for the reset to wipe
        s = time.perf_counter()
        cm.__exit__(None, None, None)
        release.append(time.perf_counter() - s)
    return {"acquire": _percentiles(acquire), "release_reset": _percentiles(release)}


def _agent_loops(image: str, loops: int = 64, turns: int = 6, think_s: float = 0.1,
                 size: int = 4, max_size: int = 16) -> dict:
    import threading

    from docker.errors import DockerException

    from sandboxes.docker_backend import DockerSandboxPool, SandboxError

    waits: list[float] = []
    errors: dict[str, int] = {}
    done = [0]
    lock = threading.Lock()

    def loop(k: int) -> None:
        try:
            for turn in range(turns):
                time.sleep(think_s)
                s = time.perf_counter()
                with pool.acquire(timeout_s=300) as box:
                    wait = time.perf_counter() - s
                    r = box.exec(["python3", "-c", f"print({k} * {turn})"], timeout_s=30)
                    assert r.stdout == f"{k * turn}\n", r
                with lock:
                    waits.append(wait)
            with lock:
                done[0] += 1
        except (DockerException, SandboxError, AssertionError) as exc:
            with lock:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    with DockerSandboxPool(image=image, size=size, max_size=max_size) as pool:
        t0 = time.monotonic()
        threads = [threading.Thread(target=loop, args=(k,)) for k in range(loops)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(900)
        wall = time.monotonic() - t0
        stats = dict(pool.stats)
    return {"loops": loops, "turns": turns, "think_s": think_s, "pool_size": size, "pool_max_size": max_size,
            "completed": done[0], "errors": errors, "daemon_errors": sum(errors.values()),
            "tool_calls_per_s": round(len(waits) / wall, 1), "wall_s": round(wall, 2),
            "hand_out_wait": _percentiles(waits) if waits else {}, "pool": stats}


def run(n: int = 200) -> dict:
    from sandboxes.docker_backend import DockerSandboxPool
    from sandboxes.image import ensure_image

    image = ensure_image()
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    with DockerSandboxPool(image=image, size=2, exec_via="runner") as runner_pool, \
            DockerSandboxPool(image=image, size=1, exec_via="docker") as docker_pool:
        start_s = time.monotonic() - t0
        pools = {"runner": runner_pool, "docker": docker_pool}
        true = {via: _exec_latency(pool, via, ["true"], n) for via, pool in pools.items()}
        py = {via: _exec_latency(pool, via, ["python3", "-c", "print(1)"], max(n // 4, 20))
              for via, pool in pools.items()}
        hand_out = _hand_out(runner_pool, max(n // 4, 20))
    loops = _agent_loops(image)
    gvisor = _gvisor(image, n)
    result = {
        "name": "sandbox_exec_latency",
        "image": image,
        "pool_start_s": round(start_s, 2),
        "exec_true": true,
        "exec_python3": py,
        "hand_out": hand_out,
        "agent_loops": loops,
        "gvisor": gvisor,
        "load_avg_1m_before": round(load_before, 2),
        "figures": [
            {"figure": "runner exec `true` p50 (ms)", "value": true["runner"]["p50_ms"], "goal": "<= 10"},
            {"figure": "runner exec `true` p95 (ms)", "value": true["runner"]["p95_ms"], "goal": "<= 30"},
            {"figure": "docker exec `true` p50 (ms)", "value": true["docker"]["p50_ms"], "goal": "-"},
            {"figure": "docker exec `true` p95 (ms)", "value": true["docker"]["p95_ms"], "goal": "-"},
            {"figure": "runner exec python3 p50 (ms)", "value": py["runner"]["p50_ms"], "goal": "-"},
            {"figure": "runner exec python3 p95 (ms)", "value": py["runner"]["p95_ms"], "goal": "-"},
            {"figure": "docker exec python3 p50 (ms)", "value": py["docker"]["p50_ms"], "goal": "-"},
            {"figure": "pool hand-out p50 (ms)", "value": hand_out["acquire"]["p50_ms"], "goal": "<= 20"},
            {"figure": "release + reset p50 (ms)", "value": hand_out["release_reset"]["p50_ms"], "goal": "-"},
            {"figure": "64 agent loops completed", "value": f"{loops['completed']}/{loops['loops']}", "goal": "all"},
            {"figure": "64 agent loops: daemon errors", "value": loops["daemon_errors"], "goal": "<= 0"},
            {"figure": "64 agent loops: tool calls/s", "value": loops["tool_calls_per_s"], "goal": "-"},
            {"figure": "64 agent loops: hand-out wait p50 (ms)",
             "value": loops["hand_out_wait"].get("p50_ms"), "goal": "-"},
            {"figure": "64 agent loops: peak boxes", "value": loops["pool"]["peak_boxes"],
             "goal": f"<= {loops['pool_max_size']}"},
        ] + _gvisor_figures(gvisor),
    }
    return result


def _gvisor(image: str, n: int) -> dict:
    """The same exec and hand-out measurements with boxes under gVisor (runsc), if the daemon has it."""
    from sandboxes.daemon import ensure_docker
    from sandboxes.gvisor import RuntimeUnavailable, require_runtime
    from sandboxes.pool import DockerSandboxPool

    try:
        require_runtime(ensure_docker(), "runsc")
    except RuntimeUnavailable as exc:
        return {"available": False, "reason": str(exc)}
    t0 = time.monotonic()
    # Only through docker exec: under runsc the runner's channel is reachable from inside the box.
    with DockerSandboxPool(image=image, size=2, exec_via="docker", runtime="runsc") as pool:
        start_s = time.monotonic() - t0
        true = {"docker": _exec_latency(pool, "docker", ["true"], n)}
        py = {"docker": _exec_latency(pool, "docker", ["python3", "-c", "print(1)"], max(n // 4, 20))}
        hand_out = _hand_out(pool, max(n // 4, 20))
    return {"available": True, "pool_start_s": round(start_s, 2), "exec_true": true, "exec_python3": py,
            "hand_out": hand_out}


def _gvisor_figures(g: dict) -> list[dict]:
    if not g.get("available"):
        return [{"figure": "gVisor (runsc)", "value": "not available", "goal": "-"}]
    return [
        {"figure": "runsc: docker exec `true` p50 (ms)", "value": g["exec_true"]["docker"]["p50_ms"], "goal": "-"},
        {"figure": "runsc: docker exec `true` p95 (ms)", "value": g["exec_true"]["docker"]["p95_ms"], "goal": "-"},
        {"figure": "runsc: docker exec python3 p50 (ms)", "value": g["exec_python3"]["docker"]["p50_ms"],
         "goal": "-"},
        {"figure": "runsc: pool hand-out p50 (ms)", "value": g["hand_out"]["acquire"]["p50_ms"], "goal": "-"},
        {"figure": "runsc: release + reset p50 (ms)", "value": g["hand_out"]["release_reset"]["p50_ms"],
         "goal": "-"},
        {"figure": "runsc: pool start, 2 boxes (s)", "value": g["pool_start_s"], "goal": "-"},
    ]


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
