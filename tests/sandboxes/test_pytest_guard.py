"""The guarded test run on a real project (cachetools) in the real sandbox: code under test that forges
outcomes at run time is caught even when nothing refused it beforehand, and a real fix still passes.

Each attack is a *no-fix* patch (the LRU bug stays) handed straight to ``judge``, i.e. past the static
check, so what is tested here is the run-time layer alone: report objects, hooks, plugins written at
run time, ``sys.modules``, exit paths with a forged JUnit XML, forged files beside the record, test
code swapped, and a forger the in-process checks cannot see (only the poisoned twins catch it).
"""

from __future__ import annotations

import pytest

from sandboxes.project import pristine_files, stage_deps, stage_files
from sandboxes.pytest_guard import judge
from sandboxes.pytest_junit import run_pytest
from tests.synthesizers.domains.code.helpers import LRU_FILE, buggy_lru, measure_lru_bug

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def ids(code_project, code_pool):
    """(FAIL_TO_PASS, PASS_TO_PASS) of the LRU bug, measured for real."""
    return measure_lru_bug(code_project, code_pool)


def run(code_project, code_pool, ids, lru_source, extra=None, changed=(LRU_FILE,), fools_plain_run=False):
    files = dict(pristine_files(code_project))
    files[LRU_FILE] = lru_source
    files.update(extra or {})
    with code_pool.acquire() as box:
        if fools_plain_run:  # the attack is real: a plain pytest run reports the bug's failing tests as passing
            repo = stage_files(box, files, "plain")
            plain = run_pytest(box, code_project, repo, stage_deps(box, code_project))
            assert all(plain.passed(t) for t in ids[0]), [plain.outcomes.get(t) for t in ids[0]]
            box.reset()
        return judge(box, code_project, files, list(changed), *ids)


def test_a_real_fix_passes_with_complementary_poison(code_project, code_pool, ids):
    j = run(code_project, code_pool, ids, pristine_files(code_project)[LRU_FILE].decode())
    assert j.tampering is None and j.no_record is None, (j.tampering, j.no_record)
    assert all(j.passed(t) for t in ids[0] + ids[1])
    first, second = (r.poisoned for r in j.runs)
    assert not first & second and first | second == set(ids[0] + ids[1])
    for r in j.runs:  # each poisoned test ran, was made to fail, and the record says so
        assert set(r.record["poisoned"]) == r.poisoned
        assert all(r.record["outcomes"][t] == "failed" for t in r.poisoned)


def test_the_bug_without_tampering_fails_honestly(code_project, code_pool, ids):
    j = run(code_project, code_pool, ids, buggy_lru(code_project))
    assert j.tampering is None and j.no_record is None
    assert not any(j.passed(t) for t in ids[0]) and all(j.passed(t) for t in ids[1])


FORGE_REPORTS = '''\
import _pytest.reports as _r
_orig = _r.TestReport.from_item_and_call.__func__
def _forged(cls, item, call):
    rep = _orig(cls, item, call)
    rep.outcome, rep.longrepr = "passed", None
    return rep
_r.TestReport.from_item_and_call = classmethod(_forged)
'''

FORGE_HOOK = '''\
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

PLUGIN_FILE = '''\
import gc, os
_src = """
import pytest
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    rep = (yield).get_result()
    rep.outcome, rep.longrepr = "passed", None
"""
with open(os.path.join(os.path.dirname(__file__), "_plug.py"), "w") as _f:
    _f.write(_src)
from cachetools import _plug
for _o in gc.get_objects():
    if type(_o).__name__ == "PytestPluginManager":
        _o.register(_plug, "plug")
        break
'''

SYS_MODULES = '''\
import sys
_run = sys.modules["_pytest." + "runner"]
def _car(item, when, log=True, **kw):
    call = _run.call_runtest_hook(item, when, **kw)
    rep = item.ihook.pytest_runtest_makereport(item=item, call=call)
    rep.outcome, rep.longrepr = "passed", None
    if log:
        item.ihook.pytest_runtest_logreport(report=rep)
    return rep
_run.call_and_report = _car
'''

EXIT_WITH_FORGED_XML = '''\
import os
_argv = open("/proc/self/cmdline", "rb").read().split(b"\\0")
with open(_argv[_argv.index(b"--junitxml") + 1].decode(), "w") as _f:
    _f.write('<testsuite><testcase classname="tests.test_lru.LRUCacheTest" name="test_lru"/></testsuite>')
print("============ 215 passed in 0.50s ============")
os._exit(0)
'''

FORGE_BESIDE_THE_RECORD = '''\
import glob
for _d in glob.glob("/tmp/tf-*"):
    with open(_d + "/forged", "w") as _f:
        _f.write("{}")
'''

SWAP_TEST_CODE = '''
import gc as _gc, types as _types
def _noop(self):
    pass
_swapped = []
def _swap():
    if _swapped:
        return
    _swapped.append(1)
    for o in _gc.get_objects():
        if isinstance(o, _types.FunctionType) and (o.__module__ or "").startswith("tests.") \\
                and o.__name__.startswith("test") and o.__code__.co_argcount == 1 and not o.__code__.co_freevars:
            o.__code__ = _noop.__code__
_init = LRUCache.__init__
def _swapping_init(self, *a, **k):
    _swap()
    _init(self, *a, **k)
LRUCache.__init__ = _swapping_init
'''


@pytest.mark.parametrize("attack,expect", [
    (FORGE_REPORTS, "TestReport.from_item_and_call was replaced"),
    (FORGE_HOOK, "hook pytest_runtest_makereport is implemented by code the patch wrote"),
    (PLUGIN_FILE, "_plug.py"),
    (SYS_MODULES, "_pytest.runner.call_and_report was replaced"),
    (FORGE_BESIDE_THE_RECORD, "patched code wrote /tmp/tf-"),
], ids=["report-objects", "hook", "plugin-written-at-run-time", "sys-modules", "file-beside-the-record"])
def test_forging_inside_the_run_is_tampering(code_project, code_pool, ids, attack, expect):
    j = run(code_project, code_pool, ids, attack + buggy_lru(code_project),
            fools_plain_run=attack is not FORGE_BESIDE_THE_RECORD)
    assert j.tampering and expect in j.tampering, (j.tampering, j.no_record, j.outcomes)


def test_swapping_test_code_is_tampering(code_project, code_pool, ids):
    j = run(code_project, code_pool, ids, buggy_lru(code_project) + SWAP_TEST_CODE, fools_plain_run=True)
    assert j.tampering and ("__code__" in j.tampering or "replaced after collection" in j.tampering), j.tampering


def test_exit_with_a_forged_report_and_output_leaves_no_record(code_project, code_pool, ids):
    j = run(code_project, code_pool, ids, EXIT_WITH_FORGED_XML + buggy_lru(code_project))
    assert j.no_record and "exit code 0" in j.no_record and not j.outcomes


CONFTEST_FORGER = '''\
import pytest
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    rep = (yield).get_result()
    rep.outcome, rep.longrepr = "passed", None
'''


# Swallows the body's failure inside the call, so no report is ever forged (unittest items keep theirs
# in _excinfo).
CONFTEST_SWALLOWER = '''\
import pytest
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    outcome = yield
    outcome.force_result(None)
    item._excinfo = None
'''


def test_a_report_forged_after_the_body_failed_is_tampering(code_project, code_pool, ids):
    """A conftest counts as the project's own (tests stay pristine in the verifier), so its hook passes
    the origin check; the collector saw the body fail before the report was made."""
    j = run(code_project, code_pool, ids, buggy_lru(code_project), extra={"tests/conftest.py": CONFTEST_FORGER},
            changed=(), fools_plain_run=True)
    assert j.tampering and "reported passing although its body failed" in j.tampering, (j.tampering, j.no_record)


def test_a_forger_the_in_process_checks_cannot_see_is_caught_by_the_poison(code_project, code_pool, ids):
    """Swallowing failures inside the call leaves the report honest and passes every in-process check;
    only the poisoned twins show that outcomes are forged."""
    j = run(code_project, code_pool, ids, buggy_lru(code_project),
            extra={"tests/conftest.py": CONFTEST_SWALLOWER}, changed=(), fools_plain_run=True)
    assert j.tampering and "made fail was reported passing" in j.tampering, (j.tampering, j.no_record)
