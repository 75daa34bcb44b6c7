"""The trace route of a guided repo rollout, for a failure without a library frame: the pytest plugin
``trace_calls`` run for real (on the host on a tiny project; in the real sandbox on cachetools), the
parser of its listing (``localize.traced_windows``), and where the plugin is staged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandboxes.project import is_test_path
from synthesizers.domains.code import trace_calls
from synthesizers.domains.code.localize import TRACED_COUNT, Window, traced_windows

PKG = '''def helper(x):
    return x + 1


def parse(xs):
    out = []
    for x in xs:
        out.append(helper(x))
    return list(map(lambda y: y, out))


def only_passing():
    return 2
'''
TESTS = '''import unittest

from pkg.core import helper, only_passing, parse


def test_parse():
    assert parse([1, 2, 3]) == [2, 3, 5]


def test_passes():
    assert only_passing() == 2


class Case(unittest.TestCase):
    def test_unittest_style(self):
        self.assertEqual(helper(1), 3)
'''
CONFTEST = "def pytest_configure(config):\n    config.seen = sum(range(3))\n"


def _lines(name: str) -> tuple[int, int]:
    """First and last line of the function ``name`` in PKG."""
    lines = PKG.splitlines()
    first = next(i for i, line in enumerate(lines, 1) if line.startswith(f"def {name}("))
    last = first
    while last < len(lines) and lines[last].startswith("    "):
        last += 1
    return first, last


def run_traced(root: Path, *args: str) -> subprocess.CompletedProcess:
    """The plugin's file staged as ``tf_trace_calls`` outside the project, as ``tools.workspace`` does."""
    plugins = root.parent / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "tf_trace_calls.py").write_text(Path(trace_calls.__file__).read_text())
    env = {**os.environ, "PYTHONPATH": f"{root}:{plugins}", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tf_trace_calls", "-q", "--tb=no", "-p",
                           "no:cacheprovider", "-o", "addopts=", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "core.py").write_text(PKG)
    (root / "tests" / "test_core.py").write_text(TESTS)
    (root / "tests" / "conftest.py").write_text(CONFTEST)
    return root


def test_the_plugin_lists_what_the_failing_tests_ran_fewest_calls_first(project):
    done = run_traced(project, "tests")
    assert done.returncode == 1, done.stdout + done.stderr  # two tests fail, one passes
    out = done.stdout
    (parse_first, parse_last), (helper_first, helper_last) = _lines("parse"), _lines("helper")
    # parse ran once (test_parse); helper three times under parse and once in the unittest-style test
    listing = [f"{trace_calls.HEADER} (fewest calls first; 2 of 2):",
               f"  pkg/core.py:{parse_first}-{parse_last} parse (1 call)",
               f"  pkg/core.py:{helper_first}-{helper_last} helper (4 calls)"]
    assert "\n".join(listing) in out, out
    assert "only_passing" not in out  # it ran in a passing test only
    assert "lambda" not in out  # part of parse, listed already
    assert "test_parse (" not in out and "conftest" not in out  # tests and their config are not the library
    assert traced_windows(out) == [Window("pkg/core.py", parse_first, parse_last),
                                   Window("pkg/core.py", helper_first, helper_last)]
    assert traced_windows(out, count=1, span=2) == [Window("pkg/core.py", parse_first, parse_first + 2)]


def test_when_no_test_fails_the_listing_says_so(project):
    done = run_traced(project, "tests", "-k", "passes")
    assert done.returncode == 0, done.stdout + done.stderr
    first, last = _lines("only_passing")
    assert f"no test failed; functions the tests ran (fewest calls first; 1 of 1):\n  pkg/core.py:{first}-{last} " \
           "only_passing (1 call)" in done.stdout


def test_the_listing_is_cut_at_max_listed_and_the_parser_takes_the_first_count():
    calls = {(f"src/m{i}.py", 10 * i + 1, f"f{i}"): [i + 1, 100 - i, 10 * i + 5] for i in range(20)}
    lines = trace_calls.listing(calls)
    assert len(lines) == 1 + trace_calls.MAX_LISTED
    assert lines[0] == f"{trace_calls.HEADER} (fewest calls first; {trace_calls.MAX_LISTED} of 20):"
    assert lines[1] == "  src/m0.py:1-5 f0 (1 call)" and lines[2] == "  src/m1.py:11-15 f1 (2 calls)"
    text = "exit code: 1\n" + "\n".join(lines)
    assert traced_windows(text) == [Window(f"src/m{i}.py", 10 * i + 1, 10 * i + 5) for i in range(TRACED_COUNT)]
    # fewer calls first; among as many calls the longer function, then the one called last
    tied = {("a.py", 1, "early"): [2, 5, 3], ("b.py", 1, "late"): [2, 9, 3], ("c.py", 1, "once"): [1, 1, 3],
            ("d.py", 1, "long"): [2, 1, 30]}
    assert [name for _, _, _, name, _ in trace_calls.ranked(tied)] == ["once", "long", "late", "early"]


def test_the_parser_skips_test_files_a_clipped_line_and_other_text():
    text = ("exit code: 1\nF\nfunctions the failing tests ran (fewest calls first; 4 of 4):\n"
            "  tests/helpers.py:3-9 make (1 call)\n  src/pkg/a.py:10-60 big (1 call)\n"
            "[... 300 characters cut ...]\nc/pkg/b.py:7-9 cut (2 calls)\n  src/pkg/c.py:20-20 Cls.<lambda> (3 calls)\n"
            "src/pkg/d.py:5: in f\nFAILED tests/test_a.py::test_x - assert 1 == 2")
    assert traced_windows(text, span=24) == [Window("src/pkg/a.py", 10, 34), Window("src/pkg/c.py", 20, 20)]
    assert traced_windows("exit code: 1\nno function of the checkout ran in a test") == []


@pytest.mark.parametrize("path", ["src/pkg/m.py", "tests/test_m.py", "pkg/testing/util.py", "pkg/m_test.py",
                                  "conftest.py", "pkg/conftest.py", "setup.py", "test_top.py", "pkg/tests.py",
                                  "docs/conf.py", "pkg/test/x.py", "pkg/contest.py"])
def test_the_plugins_own_test_rule_is_the_projects(path):
    assert trace_calls.is_test_path(path) == is_test_path(path)


@pytest.fixture(scope="module")
def lru_task(code_project, tmp_path_factory):
    """The LRU bug of the code tests (the most recent key evicted) through the real validation loop:
    its failing tests assert on the cache's contents, so their traceback has no library frame."""
    from synthesizers.domains.code.instances import instance_to_task, validate_project
    from synthesizers.domains.code.mutate import Mutation
    from tests.synthesizers.domains.code.helpers import LRU_FILE, buggy_lru

    mutation = Mutation(LRU_FILE, 1, "real", "LRUCache.popitem", "", "", buggy_lru(code_project))
    rows = validate_project(code_project, quota=1, seed=0, out=tmp_path_factory.mktemp("lru"), max_attempts=1,
                            candidates=[mutation])
    assert len(rows) == 1
    return instance_to_task(rows[0])


@pytest.mark.docker
def test_in_the_sandbox_the_trace_lists_the_buggy_function_the_failing_test_ran(lru_task, code_project, code_pool):
    from synthesizers.domains.base import ToolContext
    from synthesizers.domains.code.domain import reproduce_command, trace_command
    from synthesizers.domains.code.localize import frame_windows
    from synthesizers.domains.code.tools import BashTool, SubmitTool
    from tests.synthesizers.domains.code.helpers import BUG_LINE, LRU_FILE, buggy_lru

    project, f2p = lru_task.payload["project"], list(lru_task.payload["FAIL_TO_PASS"])
    with code_pool.acquire() as box:
        ctx = ToolContext(task=lru_task, sandbox=box, state={})
        bash = BashTool()
        reproduced = bash.run({"command": reproduce_command(project, f2p)}, ctx)
        assert reproduced.startswith("exit code: 1") and frame_windows(reproduced) == [], reproduced
        traced = bash.run({"command": trace_command(project, f2p)}, ctx)
        assert traced.startswith("exit code: 1") and "functions the failing tests ran (fewest calls first" in traced, traced
        listed = [line.split()[1] for line in traced.splitlines() if line.startswith("  src/")]
        assert "LRUCache.popitem" in listed, traced  # the buggy function ran in the failing test
        windows = traced_windows(traced, count=len(listed), span=200)
        buggy = buggy_lru(code_project).splitlines()
        assert buggy.count(BUG_LINE.rstrip("\n")) == 1
        bug_at = buggy.index(BUG_LINE.rstrip("\n")) + 1
        assert any(w.path == LRU_FILE and w.start_line <= bug_at <= w.end_line for w in windows), (bug_at, traced)
        # the plugin lies outside the checkout: neither in it nor in the submitted diff
        staged = box.exec(["sh", "-c", "ls /work/.tf/plugins; find /work/repo -name 'tf_trace*'"], timeout_s=10)
        assert staged.stdout.split() == ["tf_trace_calls.py"], staged.stdout
        assert SubmitTool().run({}, ctx).startswith("Submitted an empty patch")


TTL_GOOD = "            return self.timer() < link.expires"  # TTLCache.__contains__
TTL_BUG = TTL_GOOD.replace("<", "<=")


@pytest.fixture(scope="module")
def ttl_slip(code_project, tmp_path_factory):
    """A one-token slip (``<`` to ``<=``) in TTLCache.__contains__ through the real validation loop:
    the failing TTL tests assert on ``key in cache``, so no library frame, and the fix is one of
    the line's single-token repairs."""
    from synthesizers.domains.code.instances import instance_to_task, validate_project
    from synthesizers.domains.code.mutate import Mutation
    from tests.synthesizers.domains.code.helpers import LRU_FILE, pristine_lru

    good = pristine_lru(code_project)
    assert good.count(TTL_GOOD + "\n") == 1
    line = good.splitlines().index(TTL_GOOD) + 1
    mutation = Mutation(LRU_FILE, line, "compare", "TTLCache.__contains__", TTL_GOOD.strip(), TTL_BUG.strip(),
                        good.replace(TTL_GOOD + "\n", TTL_BUG + "\n"))
    rows = validate_project(code_project, quota=1, seed=0, out=tmp_path_factory.mktemp("ttl"), max_attempts=1,
                            candidates=[mutation])
    assert len(rows) == 1
    task = instance_to_task(rows[0])
    return task, line


@pytest.mark.docker
async def test_a_guided_rollout_without_a_library_frame_traces_views_the_buggy_function_and_fixes_it(
        ttl_slip, code_pool):
    """The whole route in the real sandbox, every call checked against its turn's grammar: reproduce
    (no library frame), trace, view the listed function that holds the bug, repair, check, submit."""
    from pipelines.rollout import RolloutSettings, TaskRunner
    from synthesizers.agent_loop import Budget
    from synthesizers.domains.code.domain import reproduce_command, trace_command
    from synthesizers.domains.code.localize import calls_and_results, frame_windows
    from synthesizers.engines.base import SamplingParams
    from tests.fakes import FakeEngine
    from tests.synthesizers.domains.code.helpers import LRU_FILE
    from tests.synthesizers.domains.code.test_controllers import RecordingCodeDomain, allowed_tools, call, turn_admits
    from verifiers.code_repo import RepoCodeVerifier

    task, bug_at = ttl_slip
    project, f2p = task.payload["project"], task.payload["FAIL_TO_PASS"]

    def reply(messages):
        done = calls_and_results(messages)
        steps = [lambda: call("bash", command=reproduce_command(project, f2p)),
                 lambda: call("bash", command=trace_command(project, f2p)),
                 lambda: call("view", **next(w for w in traced_windows(done[1].text) if w.path == LRU_FILE
                                             and w.start_line <= bug_at <= w.end_line).arguments()),
                 lambda: call("edit", path=LRU_FILE, old_str=TTL_BUG, new_str=TTL_GOOD),
                 lambda: call("bash", command=reproduce_command(project, f2p, traceback="line")),
                 lambda: call("submit")]
        return steps[len(done)]() if len(done) < len(steps) else "Fixed the expiry check."

    engine = FakeEngine(reply)
    settings = RolloutSettings(sampling=SamplingParams(max_tokens=256), seed=3, branches=0,
                               budget=Budget(max_turns=10, max_total_tokens=100_000, max_tool_output_chars=12_000))
    domain = RecordingCodeDomain({"guided": True})
    runner = TaskRunner(engine, domain, lambda kind: RepoCodeVerifier(), settings, pools=lambda image: code_pool, concurrency=1)
    (traj,) = await runner.run_task(task)
    assert traj.verdict.passed, traj.verdict.reason
    done = calls_and_results(traj.messages)
    assert frame_windows(done[0].text) == [] and "TTLCache.__contains__" in done[1].text, done[1].text
    sent = [SamplingParams(**fields) for fields in domain.sent]  # every turn's, forced ones included
    assert [allowed_tools(p) for p in sent] == [{"bash"}, {"bash"}, {"view"}, {"view", "edit"}, {"bash"}, {"submit"},
                                                None]
    # reproduce, trace, check and submit had one possible call each: forced, never sampled
    assert [p.forced_text is not None for p in sent] == [True, True, False, False, True, True, False]
    assert len(engine.seen) == 3
    for params, step in zip(sent, done):  # every call was the turn's
        assert turn_admits(params, step.name, step.args), (step.name, step.args)
