"""Code-task construction and verification speed on this machine (issue 5).

- validated repo-level instances per hour: a small sample (two projects, a few
  bugs each) through the real loop (baseline twice, inject, run the suite in
  the sandbox, keep >= 1 F2P and >= 1 P2P); the rate counts the whole wall
  time, baselines and image checks included, on one worker;
- sandbox test-run latency per instance: ``RepoCodeVerifier`` judging the
  gold fix of each sampled instance in a fresh box (stage checkout, apply the
  patch, run F2P + P2P, parse the JUnit report).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROJECTS = ("cachetools", "parse")
PER_PROJECT = 3


def run(projects: tuple[str, ...] = PROJECTS, per_project: int = PER_PROJECT) -> dict:
    from sandboxes.base import SandboxLimits
    from sandboxes.docker_backend import DockerSandboxPool
    from schemas import Message, ToolCall
    from synthesizers.domains.code.images import ensure_project_image
    from synthesizers.domains.code.instances import instance_to_task, validate_project
    from synthesizers.domains.code.projects import fetch, load_projects
    from synthesizers.domains.code.tools import submission_text
    from verifiers.code_repo import RepoCodeVerifier

    specs = load_projects(names=list(projects))
    for spec in specs:
        fetch(spec)
        ensure_project_image(spec)  # built once and cached by design: not part of the rate
    rows, attempts = [], 0
    with tempfile.TemporaryDirectory(prefix="bench-code-") as tmp:
        started = time.monotonic()
        for spec in specs:
            got = validate_project(spec, per_project, seed=0, out=Path(tmp), max_attempts=per_project * 4,
                                   log=lambda _: None)
            rows += got
            attempts += len((Path(tmp) / "attempts" / f"{spec.name}-{spec.version}.jsonl").read_text().splitlines())
        build_s = time.monotonic() - started
    latencies, passed = [], 0
    verifier = RepoCodeVerifier()
    for row in rows:
        task = instance_to_task(row)
        spec = next(s for s in specs if s.name == row["project"])
        call = ToolCall.make("c1", "submit", {})
        msgs = [Message(role="assistant", tool_calls=[call]),
                Message(role="tool", name="submit", tool_call_id="c1", content=submission_text(row["fix_patch"]))]
        with DockerSandboxPool(ensure_project_image(spec), size=1,
                               limits=SandboxLimits(memory_mb=768, timeout_s=60)) as pool, pool.acquire() as box:
            s = time.monotonic()
            verdict = verifier.verify(task, msgs, box)
            latencies.append(time.monotonic() - s)
        passed += verdict.passed
    per_hour = len(rows) / build_s * 3600 if build_s else 0.0
    p50 = statistics.median(latencies) if latencies else None
    return {
        "name": "code_tasks",
        "projects": list(projects),
        "instances": len(rows),
        "attempts": attempts,
        "build_s": round(build_s, 1),
        "instances_per_hour": round(per_hour, 1),
        "verify_latency_s": {"p50": round(p50, 2) if p50 else None,
                             "max": round(max(latencies), 2) if latencies else None},
        "gold_fixes_passed": f"{passed}/{len(rows)}",
        "figures": [
            {"figure": "validated repo-level instances per hour (1 worker)", "value": round(per_hour, 1),
             "goal": ">= 200 (make code-tasks's 200 in about an hour)"},
            {"figure": "sandbox test-run latency per instance, p50 (s)", "value": round(p50, 2) if p50 else None,
             "goal": "<= 10"},
            {"figure": "gold fixes verified as passing", "value": f"{passed}/{len(rows)}", "goal": "all"},
        ],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
