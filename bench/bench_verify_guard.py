"""The guarded repo-level verifier against gold fixes and no-fix tampering patches (issue 20, item 4).

For each instance (``$TRAJFORGE_BENCH_INSTANCES`` or ``.cache/code/instances/instances.parquet``;
when neither exists, a few are built here as ``bench_code_tasks`` does):
- its gold fix through ``RepoCodeVerifier`` (guarded: static check + two runs) and through a
  plain run (one pytest run judged by its JUnit XML, the verifier before the guard), with latency;
- on the first instance of each project, no-fix patches that forge the test run in-process
  (report objects, a hook, ``sys.modules``, an exit with a forged JUnit XML and summary, and the
  same reached through names built at run time), appended to the buggy file: accepted or not by
  the plain run, by the guarded verifier, and by its run-time layer alone (static check off).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FORGE_REPORTS = '''
import _pytest.reports as _r
_orig = _r.TestReport.from_item_and_call.__func__
def _forged(cls, item, call):
    rep = _orig(cls, item, call)
    rep.outcome, rep.longrepr = "passed", None
    return rep
_r.TestReport.from_item_and_call = classmethod(_forged)
'''
FORGE_HOOK = '''
import gc, pytest
class _Forge:
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        rep = (yield).get_result()
        rep.outcome, rep.longrepr = "passed", None
for _o in gc.get_objects():
    if type(_o).__name__ == "PytestPluginManager":
        _o.register(_Forge(), "forge")
        break
'''
SYS_MODULES = '''
import sys
_run = sys.modules["_pyt" + "est.runner"]
def _car(item, when, log=True, **kw):
    call = _run.call_runtest_hook(item, when, **kw)
    rep = item.ihook.pytest_runtest_makereport(item=item, call=call)
    rep.outcome, rep.longrepr = "passed", None
    if log:
        item.ihook.pytest_runtest_logreport(report=rep)
    return rep
_run.call_and_report = _car
'''
BUILT_NAMES = '''
_m = getattr(__import__("_pyt" + "est.reports", fromlist=["x"]), "Test" + "Report")
_o = _m.from_item_and_call.__func__
def _f(cls, item, call):
    rep = _o(cls, item, call)
    rep.outcome, rep.longrepr = "passed", None
    return rep
setattr(_m, "from_item_and_call", classmethod(_f))
'''
EXIT_TEMPLATE = '''
import os as _os
_argv = open("/proc/self/cmdline", "rb").read().split(b"\\0")
with open(_argv[_argv.index(b"--junitxml") + 1].decode(), "w") as _f:
    _f.write({xml!r})
print("============ {n} passed in 0.50s ============")
_os._exit(0)
'''


def _exit_attack(ids: list[str]) -> str:
    cases = "".join(f'<testcase classname="{t.split("::")[0]}" name="{t.split("::")[1]}"/>' for t in ids)
    return EXIT_TEMPLATE.format(xml=f"<testsuite>{cases}</testsuite>", n=len(ids))


def _instances() -> list[dict]:
    import pyarrow.parquet as pq

    path = Path(os.environ.get("TRAJFORGE_BENCH_INSTANCES") or ".cache/code/instances/instances.parquet")
    if path.is_file():
        return pq.read_table(path).to_pylist()
    from synthesizers.domains.code.instances import validate_project
    from synthesizers.domains.code.projects import fetch, load_projects

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-guard-") as tmp:
        for spec in load_projects(names=["cachetools", "parse", "inflection"]):
            fetch(spec)
            rows += validate_project(spec, 2, seed=0, out=Path(tmp), max_attempts=8, log=lambda _: None)
    return rows


def _plain_accepts(box, spec, files, f2p, p2p) -> bool:
    from sandboxes.project import stage_deps, stage_files
    from sandboxes.pytest_junit import run_pytest

    repo = stage_files(box, files, "plain")
    run = run_pytest(box, spec, repo, stage_deps(box, spec))
    return all(run.passed(t) for t in f2p + p2p)


def run() -> dict:
    from sandboxes.base import SandboxLimits
    from sandboxes.docker_backend import DockerSandboxPool
    from sandboxes.project import ProjectSpec, patched_checkout
    from sandboxes.tree_diff import apply_patch, file_diff, parse_diff
    from schemas import Message, ToolCall
    from synthesizers.domains.code.images import ensure_project_image
    from synthesizers.domains.code.instances import instance_to_task
    from synthesizers.domains.code.tools import submission_text
    import verifiers.code_repo as code_repo

    def msgs(patch: str) -> list[Message]:
        call = ToolCall.make("c1", "submit", {})
        return [Message(role="assistant", tool_calls=[call]),
                Message(role="tool", name="submit", tool_call_id="c1", content=submission_text(patch))]

    rows = _instances()
    verifier = code_repo.RepoCodeVerifier()
    gold_new = gold_plain = 0
    lat_new, lat_plain, attacks, seen = [], [], [], set()
    failures: list[str] = []
    for row in rows:
        task = instance_to_task(row)
        spec = ProjectSpec.from_dict(task.payload["project"])
        f2p, p2p = list(row["FAIL_TO_PASS"]), list(row["PASS_TO_PASS"])
        raw, buggy = patched_checkout(spec, row["bug_patch"])
        fixed = dict(raw) | dict(buggy) | {p: c for p, c in apply_patch(buggy, parse_diff(row["fix_patch"])).items()
                                          if c is not None}
        with DockerSandboxPool(ensure_project_image(spec), size=1,
                               limits=SandboxLimits(memory_mb=768, timeout_s=60)) as pool:
            with pool.acquire() as box:
                s = time.monotonic()
                gold_plain += _plain_accepts(box, spec, fixed, f2p, p2p)
                lat_plain.append(time.monotonic() - s)
            with pool.acquire() as box:
                s = time.monotonic()
                v = verifier.verify(task, msgs(row["fix_patch"]), box)
                lat_new.append(time.monotonic() - s)
            gold_new += v.passed
            if not v.passed:
                failures.append(f"{row['instance_id']}: {v.reason[:200]}")
            if spec.name in seen:
                continue
            seen.add(spec.name)
            target = row["file"]
            for name, attack in (("report-objects", FORGE_REPORTS), ("hook", FORGE_HOOK), ("sys-modules", SYS_MODULES),
                                 ("built-names", BUILT_NAMES), ("exit-forged-xml", _exit_attack(f2p + p2p))):
                patch = file_diff(target, buggy[target], buggy[target] + attack)
                with pool.acquire() as box:
                    plain = _plain_accepts(box, spec, dict(raw) | dict(buggy) | {target: buggy[target] + attack}, f2p, p2p)
                with pool.acquire() as box:
                    full = verifier.verify(task, msgs(patch), box)
                saved = code_repo.refusal
                code_repo.refusal = lambda *a: None
                try:
                    with pool.acquire() as box:
                        runtime = verifier.verify(task, msgs(patch), box)
                finally:
                    code_repo.refusal = saved
                attacks.append({"instance": row["instance_id"], "attack": name, "plain_accepts": plain,
                                "guarded_accepts": full.passed, "runtime_only_accepts": runtime.passed,
                                "guarded_reason": full.reason[:160], "runtime_reason": runtime.reason[:160]})
    n, m = len(rows), len(attacks)
    p50 = lambda xs: round(statistics.median(xs), 2) if xs else None  # noqa: E731
    return {
        "name": "verify_guard",
        "instances": n,
        "projects": sorted({r["project"] for r in rows}),
        "gold_fail_reasons": failures,
        "attacks": attacks,
        "figures": [
            {"figure": "gold fixes passing, guarded verifier", "value": f"{gold_new}/{n}", "goal": "all"},
            {"figure": "gold fixes passing, plain run (before the guard)", "value": f"{gold_plain}/{n}", "goal": "-"},
            {"figure": "no-fix tampering patches accepted, plain run",
             "value": f"{sum(a['plain_accepts'] for a in attacks)}/{m}", "goal": "-"},
            {"figure": "no-fix tampering patches accepted, guarded verifier",
             "value": sum(a["guarded_accepts"] for a in attacks), "goal": "<= 0"},
            {"figure": "no-fix tampering patches accepted, run-time layer alone (static check off)",
             "value": sum(a["runtime_only_accepts"] for a in attacks), "goal": "<= 0"},
            {"figure": "verify latency p50, guarded (s)", "value": p50(lat_new), "goal": "-"},
            {"figure": "verify latency p50, plain run (s)", "value": p50(lat_plain), "goal": "-"},
        ],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
