"""The baseline of a project's suite in the sandbox: which tests pass reliably.

The pristine checkout's suite runs twice (``runs``); a test that passed every
time is a PASS_TO_PASS candidate, one whose outcome differed is flaky and
excluded everywhere (it could neither prove a bug nor a fix), one that failed,
errored or was skipped every time is simply never used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sandboxes.base import Sandbox
from sandboxes.project import CHECKOUT_DIR, ProjectSpec, pristine_files, stage_deps, stage_files
from sandboxes.pytest_junit import PASSED, run_pytest


@dataclass
class Baseline:
    project: str
    passing: list[str] = field(default_factory=list)  # passed in every run
    flaky: list[str] = field(default_factory=list)  # outcome differed between runs
    failing: list[str] = field(default_factory=list)  # never passed
    run_seconds: list[float] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return len(self.passing) >= 2


def run_baseline(box: Sandbox, spec: ProjectSpec, runs: int = 2, per_test_timeout_s: float = 20.0,
                 total_timeout_s: float = 300.0) -> Baseline:
    repo = stage_files(box, pristine_files(spec), CHECKOUT_DIR)
    deps = stage_deps(box, spec)
    outcomes = []
    seconds = []
    for _ in range(max(1, runs)):
        started = time.monotonic()
        run = run_pytest(box, spec, repo, deps, per_test_timeout_s=per_test_timeout_s,
                         total_timeout_s=total_timeout_s)
        seconds.append(time.monotonic() - started)
        if not run.report_found:
            raise RuntimeError(f"{spec.name}: baseline run left no report (exit {run.exit_code}):\n"
                               f"{run.output_tail[-1500:]}")
        outcomes.append(run.outcomes)
    box.exec(["rm", "-rf", repo], timeout_s=30)
    ids = sorted(set().union(*outcomes))
    result = Baseline(project=spec.name, run_seconds=seconds)
    for test_id in ids:
        seen = {o.get(test_id, "missing") for o in outcomes}
        if seen == {PASSED}:
            result.passing.append(test_id)
        elif PASSED in seen:
            result.flaky.append(test_id)
        else:
            result.failing.append(test_id)
    return result
