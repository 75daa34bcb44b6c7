"""Run a Python project's pytest suite in a sandbox and read the outcome from JUnit XML.

Generic: any ``ProjectSpec`` (see ``sandboxes.project``); nothing here knows
who asks (task construction, verification or a benchmark).

Only the structured report counts, never stdout: the XML goes to a path with
128 random bits in it (``/tmp/tf-<hex>/<hex>.xml``) that nothing in the
checkout can know before the run, and a test that is absent from it (never
ran, deselected, collection error, crash, run killed) has no outcome at all.

A per-test timeout is enforced by a tiny plugin written next to the report
(``SIGALRM`` per test, raising a ``BaseException`` so ``except Exception`` in
the code under test cannot swallow it); the whole run also has a wall-clock
limit from the sandbox's ``exec``.

Test ids are ``<classname>::<name>`` as the XML writes them, e.g.
``tests.test_cache.LRUCacheTest::test_lru`` — stable across runs and the same
for the baseline, bug injection and verification.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from sandboxes.base import Sandbox
from sandboxes.project import ProjectSpec, python_path

PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"
_RANK = {PASSED: 0, SKIPPED: 1, FAILED: 2, ERROR: 3}  # a test reported twice keeps its worst outcome

_TIMEOUT_PLUGIN = '''\
import signal
import pytest

LIMIT = {limit!r}


class PerTestTimeout(BaseException):
    pass


def _alarm(signum, frame):
    raise PerTestTimeout("test took longer than %s s (per-test timeout)" % LIMIT)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, LIMIT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
'''


@dataclass
class PytestRun:
    outcomes: dict[str, str] = field(default_factory=dict)  # test id -> passed|failed|error|skipped
    messages: dict[str, str] = field(default_factory=dict)  # test id -> failure message (for statements)
    exit_code: int | None = None
    timed_out: bool = False
    report_found: bool = False
    output_tail: str = ""  # for problem statements and debugging; never used to judge
    duration_s: float = 0.0

    def passed(self, test_id: str) -> bool:
        return self.outcomes.get(test_id) == PASSED

    def failure_text(self) -> str:
        return self.output_tail


def parse_junit(xml_bytes: bytes) -> dict[str, str]:
    return parse_junit_details(xml_bytes)[0]


def parse_junit_details(xml_bytes: bytes, message_chars: int = 800) -> tuple[dict[str, str], dict[str, str]]:
    """(test id -> outcome, test id -> failure/error message with the start of its traceback)."""
    root = ET.fromstring(xml_bytes)
    outcomes: dict[str, str] = {}
    messages: dict[str, str] = {}
    for case in root.iter("testcase"):
        cls, name = case.get("classname", ""), case.get("name", "")
        test_id = f"{cls}::{name}" if cls else name
        status = PASSED
        for child in case:
            tag = {"failure": FAILED, "error": ERROR, "skipped": SKIPPED}.get(child.tag)
            if tag and _RANK[tag] > _RANK[status]:
                status = tag
            if tag in (FAILED, ERROR) and test_id not in messages:
                text = (child.get("message") or "") + "\n" + (child.text or "")
                messages[test_id] = text.strip()[:message_chars]
        if test_id in outcomes and _RANK[outcomes[test_id]] > _RANK[status]:
            status = outcomes[test_id]
        outcomes[test_id] = status
    return outcomes, messages


def run_pytest(box: Sandbox, spec: ProjectSpec, repo_dir: str, deps_dir: str | None, *,
               per_test_timeout_s: float = 20.0, total_timeout_s: float = 300.0,
               test_paths: list[str] | None = None, tail_chars: int = 6000) -> PytestRun:
    """One pytest run over ``test_paths`` (default: the project's) in ``repo_dir``."""
    token = secrets.token_hex(16)
    run_dir = f"/tmp/tf-{token}"
    plugin = f"tf_timeout_{secrets.token_hex(4)}"
    report = f"{run_dir}/{secrets.token_hex(16)}.xml"
    box.put_files({f"{run_dir}/{plugin}.py": _TIMEOUT_PLUGIN.format(limit=float(per_test_timeout_s))})
    env = {
        "PYTHONPATH": ":".join(python_path(spec, repo_dir, deps_dir) + [run_dir]),
        "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp", "PYTHONHASHSEED": "0", "LANG": "C.UTF-8",
    }
    argv = ["python3", "-s", "-P", "-m", "pytest", "-p", plugin, "-p", "no:cacheprovider",
            "--junitxml", report, "-o", "junit_family=xunit1", "-q", "-rN", "--color=no",
            *spec.pytest_args, *(test_paths or spec.test_paths)]
    result = box.exec(argv, timeout_s=total_timeout_s, workdir=repo_dir, env=env)
    run = PytestRun(exit_code=result.exit_code, timed_out=result.timed_out, duration_s=result.duration_s,
                    output_tail=(result.stdout + result.stderr)[-tail_chars:])
    try:
        xml = box.get_file(report)
    except Exception:  # noqa: BLE001 - missing, too large, box gone: no report
        xml = b""
    finally:
        box.exec(["rm", "-rf", run_dir], timeout_s=10)
    if xml:
        try:
            run.outcomes, run.messages = parse_junit_details(xml)
            run.report_found = True
        except ET.ParseError:
            run.report_found = False
    return run
