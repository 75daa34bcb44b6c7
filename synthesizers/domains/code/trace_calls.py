"""A pytest plugin (``-p tf_trace_calls``) that lists the checkout's own functions the failing tests ran.

Why: a failure without a library frame in its traceback (an assertion in the test itself) gives a
guided rollout nothing to open, and ``grep`` for the names the test calls rarely shows the buggy
line. The functions a failing test *ran* almost always hold the buggy one, and the ones called
fewest times are the likeliest (a helper called once per test, not a loop's inner call): so the
rollout runs the failing tests once more under this plugin and views windows from the definitions
it lists (``localize.traced_windows``). Measured: see docs/small-model-assists.md (guided-code-turns).

This file is staged as it is into the rollout's sandbox, outside the checkout (``tools.workspace``),
and imported there by pytest: it may import only the standard library and pytest. What it records:
for each test's call phase (``sys.setprofile`` around ``pytest_runtest_call``, so fixtures and
collection do not count), every function entered (not a comprehension or lambda: the function
around it is listed) whose file lies under the directory pytest was started in and is not a test
file (the rule of ``sandboxes.project.is_test_path``); a test counts as failing when the report of
its call phase says so (a unittest-style test's call does not raise). In the terminal summary it
prints at most ``MAX_LISTED`` functions (``ranked``)::

    functions the failing tests ran (fewest calls first; 1 of 1):
      src/pkg/m.py:120-131 parse (1 call)

``path:first-last`` is the function's code (first line: its ``def`` or first decorator; last: the
last line its code covers), so the reader can open it whole. Calls are counted per entry (a
generator's every resumption counts), over the failing tests' call phases only.
"""

from __future__ import annotations

import os
import sys

import pytest

HEADER = "functions the failing tests ran"
MAX_LISTED = 8  # the listing goes into a 135M model's context (with pytest's own lines: ~15 in all)
_TEST_CONFIG = {"conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", "setup.py", ".coveragerc",
                "noxfile.py", "sitecustomize.py", "usercustomize.py"}
_TEST_DIRS = {"test", "tests", "testing"}

# (relative path, first line, qualified name) -> [calls, order of the last call, last line]
_failing: dict[tuple[str, int, str], list[int]] = {}
_every: dict[tuple[str, int, str], list[int]] = {}
_root = [os.getcwd() + os.sep]
_clock = [0]


def is_test_path(path: str) -> bool:
    """``sandboxes.project.is_test_path``, repeated here because this file runs without trajforge."""
    parts = path.split("/")
    base = parts[-1]
    return (any(p in _TEST_DIRS for p in parts[:-1]) or base.startswith("test_") or base.endswith("_test.py")
            or base in _TEST_CONFIG)


def _last_line(code) -> int:
    lines = [line for _, _, line in code.co_lines() if line] if hasattr(code, "co_lines") else []
    return max(lines, default=code.co_firstlineno)


def _recorder(calls: dict[tuple[str, int, str], list[int]], mine: dict[str, str | None]):
    def profile(frame, event, arg):
        if event != "call":
            return
        code = frame.f_code
        where = code.co_filename
        rel = mine.get(where, "")
        if rel == "":
            rel = mine[where] = (where[len(_root[0]):] if where.startswith(_root[0])
                                 and not is_test_path(where[len(_root[0]):]) else None)
        if rel is None:
            return
        _clock[0] += 1
        if code.co_name.startswith("<"):  # a comprehension, lambda or module body: its function counts
            return
        key = (rel, code.co_firstlineno, getattr(code, "co_qualname", code.co_name))
        entry = calls.get(key)
        if entry is None:
            calls[key] = [1, _clock[0], _last_line(code)]
        else:
            entry[0] += 1
            entry[1] = _clock[0]

    return profile


_files: dict[str, str | None] = {}


def pytest_configure(config) -> None:
    _root[0] = str(config.invocation_params.dir).rstrip(os.sep) + os.sep


_by_test: dict[str, dict[tuple[str, int, str], list[int]]] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    calls = _by_test[item.nodeid] = {}
    sys.setprofile(_recorder(calls, _files))
    try:
        yield
    finally:
        sys.setprofile(None)


def pytest_runtest_logreport(report) -> None:
    """The call phase's report says whether the test failed (a unittest test's call does not raise)."""
    if report.when != "call" or report.nodeid not in _by_test:
        return
    calls = _by_test.pop(report.nodeid)
    for into in ((_every, _failing) if report.failed else (_every,)):
        for key, (count, last, end) in calls.items():
            entry = into.setdefault(key, [0, 0, end])
            entry[0] += count
            entry[1] = max(entry[1], last)


def ranked(calls: dict[tuple[str, int, str], list[int]]) -> list[tuple[str, int, int, str, int]]:
    """(path, first line, last line, name, calls), fewest calls first, then the longest, then the
    latest called. Why the longest before the latest: an injected bug lies on any line, so a
    longer function more likely holds it (measured: see docs/small-model-assists.md)."""
    order = sorted(calls.items(), key=lambda kv: (kv[1][0], kv[0][1] - kv[1][2], -kv[1][1]))
    return [(path, first, end, name, count) for (path, first, name), (count, _, end) in order]


def listing(calls: dict[tuple[str, int, str], list[int]], header: str = HEADER) -> list[str]:
    rows = ranked(calls)
    lines = [f"{header} (fewest calls first; {min(len(rows), MAX_LISTED)} of {len(rows)}):"]
    lines += [f"  {path}:{first}-{end} {name} ({count} call{'' if count == 1 else 's'})"
              for path, first, end, name, count in rows[:MAX_LISTED]]
    return lines


def pytest_terminal_summary(terminalreporter) -> None:
    if _failing:
        lines = listing(_failing)
    elif _every:
        lines = listing(_every, "no test failed; functions the tests ran")
    else:
        lines = ["no function of the checkout ran in a test"]
    for line in lines:
        terminalreporter.write_line(line)
