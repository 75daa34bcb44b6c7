"""Judge a patched checkout's tests so that code under test cannot forge the outcome.

Trust boundary. Code under test runs inside the pytest process, as the same
user as everything else in the box, so *anything* inside the box can be
rewritten by it: pytest's report objects and hooks, the JUnit XML, stdout,
the exit status, files, other processes of the box. Only the host is outside.
The host therefore trusts no single statement from the box, and decides from
three things the patched code cannot produce on its own:

1. **An authenticated record per run.** The collector plugin
   (``sandboxes/pytest_guard_plugin.py``) carries a fresh 256-bit key, is
   loaded with ``-p`` before any conftest or project module, deletes its own
   file, and at session end writes every test's outcome with an HMAC under the
   key to a random path. A run that exits early (``os._exit``, a signal, a
   crash), a forged report file, or a record written by anything without the
   key gives no valid record: the verdict fails. Processes the run left behind
   are killed before the record is read.
2. **Poisoned twins across two runs.** The suite runs twice, each time in a
   fresh checkout of a freshly reset box (processes killed, ``/work``, ``/tmp``
   and ``/dev/shm`` emptied). Every FAIL_TO_PASS and PASS_TO_PASS test is made
   to fail after its body in exactly one of the two runs, chosen at random per
   test; its verdict comes from the other run. Both runs look the same from
   inside (same command line, same plugin, same tests), so code that forges
   outcomes cannot tell a poisoned test from a real one: a poisoned test
   reported as passing is proof of forgery, and a forger that guesses is caught
   with probability at least 1 - 4^-k for k FAIL_TO_PASS tests.
3. **What the collector sees in-process**, recorded in the authenticated
   record: pytest/pluggy/unittest/builtins functions or classes replaced, hooks
   implemented by patched or run-time-written code, a test's code or binding
   swapped after collection, checkout code files changed during the run, and
   (through an audit hook, which cannot be removed) code or report files written
   and function bodies swapped while patched code is on the stack.

Residual risk, by design stated: code that already has the key (it must read
the collector's memory: frames, ``gc``, ``ctypes``, ``/proc/self/mem``) and
that also distinguishes poisoned from real tests can forge both layers. Every
such means is refused before the run by ``verifiers.code_tamper``; a patch
that evaded that list too would still have to beat the poison by chance.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from sandboxes.base import Sandbox
from sandboxes.project import CHECKOUT_DIR, ProjectSpec, python_path, stage_deps, stage_files
from sandboxes.pytest_junit import PASSED, parse_junit

_PLUGIN = Path(__file__).with_name("pytest_guard_plugin.py")
_CONFIG_LINE = "_CONFIG: dict = {}  # replaced by the host when the file is sent\n"


@dataclass
class GuardRun:
    """One pytest run: the authenticated record (None: missing or forged) and the JUnit outcomes."""

    record: dict | None
    junit: dict[str, str]
    poisoned: frozenset[str]
    exit_code: int | None
    timed_out: bool
    problem: str | None = None  # why the record cannot be used


@dataclass
class Judgement:
    outcomes: dict[str, str] = field(default_factory=dict)  # test id -> outcome in the run where it was not poisoned
    tampering: str | None = None  # the runs show forged outcomes: the submission's fault
    no_record: str | None = None  # a run left no usable record (crash, early exit, timeout)
    runs: list[GuardRun] = field(default_factory=list)

    def passed(self, test_id: str) -> bool:
        return self.outcomes.get(test_id) == PASSED


class GuardInfrastructureError(RuntimeError):
    """The box could not be made fresh between runs: the machinery's failure, not the submission's."""

    infrastructure = True


def plugin_source(config: dict) -> str:
    text = _PLUGIN.read_text()
    if _CONFIG_LINE not in text:
        raise RuntimeError(f"{_PLUGIN} lost its config line")
    return text.replace(_CONFIG_LINE, f"_CONFIG = {config!r}\n", 1)


def fresh_box(box: Sandbox, reset_first: bool = True) -> None:
    """No process, file or shared memory of an earlier run survives into the next one.

    ``/dev/shm`` is writable in every box and no reset empties it, so it is emptied here before each
    run, the first too: whatever an earlier user of the box left there must not reach this run."""
    reset = getattr(box, "reset", None)
    if reset_first and callable(reset):
        if not reset():
            raise GuardInfrastructureError("sandbox reset failed between guarded runs")
    elif reset_first:
        box.exec(["sh", "-c", f"kill -9 -1; rm -rf /tmp/tf-* {box.workdir.rstrip('/')}/{CHECKOUT_DIR}"],
                 timeout_s=30)
    box.exec(["sh", "-c", "find /dev/shm -mindepth 1 -delete 2>/dev/null; true"], timeout_s=10)


def _one_run(box: Sandbox, spec: ProjectSpec, files: dict[str, bytes | str], changed: list[str],
             poisoned: frozenset[str], per_test_timeout_s: float, total_timeout_s: float) -> GuardRun:
    # The checkout path the instance was validated at (a suite may depend on it); the box is fresh.
    repo = stage_files(box, files, CHECKOUT_DIR)
    deps = stage_deps(box, spec)
    run_dir = f"/tmp/tf-{secrets.token_hex(16)}"
    plugin = f"tf_{secrets.token_hex(6)}"
    record = f"{run_dir}/{secrets.token_hex(16)}"
    report = f"{run_dir}/{secrets.token_hex(16)}.xml"
    key = secrets.token_bytes(32)
    scan = [repo] + ([deps] if deps and deps.startswith(box.workdir) else [])
    config = {"key": key.hex(), "record": record, "run_dir": run_dir, "per_test_timeout_s": float(per_test_timeout_s),
              "poison": sorted(poisoned), "repo": repo, "scan": scan,
              "changed": sorted(f"{repo}/{p}" for p in changed)}
    box.put_files({f"{run_dir}/{plugin}.py": plugin_source(config)})
    env = {"PYTHONPATH": ":".join(python_path(spec, repo, deps) + [run_dir]),
           "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp", "PYTHONHASHSEED": "0", "LANG": "C.UTF-8"}
    argv = ["python3", "-s", "-P", "-m", "pytest", "-p", plugin, "-p", "no:cacheprovider",
            "--junitxml", report, "-o", "junit_family=xunit1", "-q", "-rN", "--color=no",
            *spec.pytest_args, *spec.test_paths]
    result = box.exec(argv, timeout_s=total_timeout_s, workdir=repo, env=env)
    # Whatever the run left running could still write its files: end it before reading them.
    box.exec(["sh", "-c", "kill -9 -1; true"], timeout_s=10)
    run = GuardRun(record=None, junit={}, poisoned=poisoned, exit_code=result.exit_code, timed_out=result.timed_out)
    run.record, run.problem = _read_record(box, record, key)
    try:
        run.junit = parse_junit(box.get_file(report))
    except Exception:  # noqa: BLE001 - missing, forged into garbage, too large: no JUnit opinion
        run.junit = {}
    return run


def _read_record(box: Sandbox, path: str, key: bytes) -> tuple[dict | None, str | None]:
    try:
        raw = box.get_file(path)
    except Exception:  # noqa: BLE001 - missing or too large
        return None, "no record"
    mac, _, body = raw.partition(b"\n")
    if not hmac.compare_digest(mac, hmac.new(key, body, "sha256").hexdigest().encode()):
        return None, "forged record"
    try:
        return json.loads(body), None
    except json.JSONDecodeError:
        return None, "forged record"


def judge(box: Sandbox, spec: ProjectSpec, files: dict[str, bytes | str], changed: list[str],
          f2p: list[str], p2p: list[str], *, per_test_timeout_s: float = 20.0,
          total_timeout_s: float = 300.0) -> Judgement:
    """Run the suite twice (see the module docstring) and say each test's outcome, or why none can be trusted."""
    ids = sorted(set(f2p) | set(p2p))
    first = frozenset(t for t in ids if secrets.randbits(1))
    out = Judgement()
    for i, poisoned in enumerate((first, frozenset(ids) - first)):
        fresh_box(box, reset_first=i > 0)
        run = _one_run(box, spec, files, changed, poisoned, per_test_timeout_s, total_timeout_s)
        out.runs.append(run)
        if run.problem == "forged record":
            out.tampering = "the test run's outcome record was forged"
            return out
        if run.record is None:
            why = "timed out" if run.timed_out else f"exit code {run.exit_code}"
            out.no_record = f"test run left no outcome record ({why})"
            return out
        if run.record.get("tamper"):
            out.tampering = "; ".join(run.record["tamper"][:3])
            return out
        recorded = run.record.get("outcomes") or {}
        forged = sorted(t for t in poisoned if recorded.get(t) == PASSED or run.junit.get(t) == PASSED)
        if forged:
            out.tampering = (f"a test the verifier made fail was reported passing ({forged[0]}): "
                             "test outcomes are being forged")
            return out
        for t in ids:
            if t not in poisoned:
                # Both the record and the JUnit XML must say passed; either saying otherwise wins.
                rec, jx = recorded.get(t), run.junit.get(t)
                out.outcomes[t] = PASSED if rec == PASSED and jx == PASSED else (rec if rec != PASSED else jx) \
                    or "not run"
    return out

