"""Environment QA of code tasks on this machine (issue 20): how many instances an hour can be
checked, and how many a check drops.

A small instance set is built first (``instances.build``: two bugs each of a few real projects,
boltons among them for its path-dependent test; not timed), then ``pipelines.env_qa.check_file``
judges every instance's gold fix and bug three times through ``trajforge verify``'s entry point
under ``configs/code.yaml``'s sandbox settings, as ``make code-tasks`` does. Figures: instances
checked per hour (wall time of the QA alone, 2 verifications in flight), and the fractions
dropped as flaky (runs disagree) and condition-bound (the same wrong verdict every run).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROJECTS = ("cachetools", "inflection", "boltons")
PER_PROJECT = 2
WORKERS = 2


def run(projects: tuple[str, ...] = PROJECTS, per_project: int = PER_PROJECT, workers: int = WORKERS) -> dict:
    from pipelines.env_qa import RUNS, check_file, load_results
    from synthesizers.domains.code.images import ensure_project_image
    from synthesizers.domains.code.instances import build
    from synthesizers.domains.code.projects import fetch, load_projects

    for spec in load_projects(names=list(projects)):
        fetch(spec)
        ensure_project_image(spec)  # built once and cached by design: not part of the rate
    with tempfile.TemporaryDirectory(prefix="bench-env-qa-") as tmp:
        out = Path(tmp)
        started = time.monotonic()
        built = build(out, per_project * len(projects), projects=list(projects), workers=1)
        build_s = time.monotonic() - started
        started = time.monotonic()
        report = check_file(out / "instances.parquet", "repo", runs=RUNS, workers=workers, log=lambda _: None)
        qa_s = time.monotonic() - started
        results = list(load_results(out / "qa.jsonl").values())
    checked = report["tasks"]
    per_hour = checked / qa_s * 3600 if qa_s else 0.0
    flaky = report["flaky"] / checked if checked else None
    bound = report["condition_bound"] / checked if checked else None
    verifications = checked * RUNS * 2
    return {
        "name": "env_qa",
        "projects": list(projects),
        "instances": checked,
        "runs_per_instance": RUNS,
        "workers": workers,
        "build_s": round(build_s, 1),
        "build_instances": built["instances"],
        "qa_s": round(qa_s, 1),
        "seconds_per_verification": round(qa_s * workers / verifications, 2) if verifications else None,
        "outcomes": {k: report[k] for k in ("passed", "flaky", "condition_bound")},
        "dropped": report["dropped_ids"],
        "reasons": {r.id: r.reasons[:2] for r in results if r.outcome != "passed"},
        "figures": [
            {"figure": f"instances checked per hour ({RUNS} runs of gold + bug each, {workers} in flight)",
             "value": round(per_hour, 1), "goal": "-"},
            {"figure": "flaky fraction (verdicts differ between runs)", "value": round(flaky, 4) if flaky is not None
             else None, "goal": "-"},
            {"figure": "condition-bound fraction (same wrong verdict every run)",
             "value": round(bound, 4) if bound is not None else None, "goal": "-"},
            {"figure": "instances checked", "value": f"{checked}/{built['instances']}", "goal": "all"},
        ],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
