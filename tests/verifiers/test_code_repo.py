"""Repo-level code verifier on a real project (cachetools) in the real sandbox.

A known bug and its true fix pass; a no-op, a wrong fix, and every way of
leaning on the tests instead of the code (deleting the failing test, a
conftest that skips everything or exits 0, editing pytest config, printing a
fake pytest summary, reaching for the harness from source, by name or by names
built at run time) fail. The run-time layer alone is tested in
``tests/sandboxes/test_pytest_guard.py``; here one forger that the static check
is told to let through shows the verdict it gets.
"""

from __future__ import annotations

import pytest

from sandboxes.project import pristine_files
from sandboxes.tree_diff import file_diff
from schemas import Message, ToolCall
from tests.synthesizers.domains.code.helpers import (
    LRU_FILE,
    buggy_lru,
    fix_patch,
    make_task,
    measure_lru_bug,
    submit_messages,
)
from verifiers.code_repo import RepoCodeVerifier, submitted_patch

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def task(code_project, code_pool):
    """F2P/P2P measured for real: the pristine suite, then the buggy one."""
    f2p, p2p = measure_lru_bug(code_project, code_pool)
    return make_task(code_project, f2p, p2p)


def verdict(task, code_pool, messages):
    with code_pool.acquire() as box:
        return RepoCodeVerifier().verify(task, messages, box)


def patch_of(code_project, path, new, old=None):
    base = old if old is not None else (buggy_lru(code_project) if path == LRU_FILE else None)
    if base is None and path in pristine_files(code_project):
        base = pristine_files(code_project)[path].decode()
    return file_diff(path, base, new)


def test_true_fix_passes(code_project, task, code_pool):
    v = verdict(task, code_pool, submit_messages(fix_patch(code_project)))
    assert v.passed, v.reason
    assert v.score == 1.0


def test_no_op_and_no_submission_fail(task, code_pool):
    assert not verdict(task, code_pool, submit_messages("")).passed
    v = verdict(task, code_pool, [Message(role="user", content="fix it"), Message(role="assistant", content="done")])
    assert not v.passed and "no patch" in v.reason


def test_wrong_fix_fails(code_project, task, code_pool):
    wrong = buggy_lru(code_project).replace("next(reversed(self.__order))", "next(reversed(list(self.__order)))")
    v = verdict(task, code_pool, submit_messages(patch_of(code_project, LRU_FILE, wrong)))
    assert not v.passed and "FAIL_TO_PASS failing" in v.reason


def test_deleting_the_failing_test_fails(code_project, task, code_pool):
    v = verdict(task, code_pool, submit_messages(patch_of(code_project, "tests/test_lru.py", None)))
    assert not v.passed and "ignored changes to tests/test_lru.py" in v.reason


SKIP_ALL = ("import pytest\n\ndef pytest_collection_modifyitems(config, items):\n"
            "    for item in items:\n        item.add_marker(pytest.mark.skip(reason='no'))\n")


@pytest.mark.parametrize("path", ["conftest.py", "tests/conftest.py", "src/cachetools/conftest.py"])
def test_conftest_that_skips_everything_fails(code_project, task, code_pool, path):
    v = verdict(task, code_pool, submit_messages(patch_of(code_project, path, SKIP_ALL)))
    assert not v.passed, v.reason


def test_sys_exit_in_conftest_fails(code_project, task, code_pool):
    exits = patch_of(code_project, "tests/conftest.py", "import sys\nsys.exit(0)\n")
    v = verdict(task, code_pool, submit_messages(exits))
    assert not v.passed, v.reason


def test_editing_pytest_config_fails(code_project, task, code_pool):
    ini = "[pytest]\naddopts = -k 'not test_lru and not LRU'\n"
    cfg = pristine_files(code_project)["setup.cfg"].decode() + "\n[tool:pytest]\naddopts = -p no:python\n"
    patch = patch_of(code_project, "pytest.ini", ini) + patch_of(code_project, "setup.cfg", cfg)
    v = verdict(task, code_pool, submit_messages(patch))
    assert not v.passed and "ignored changes" in v.reason


def test_fake_pytest_output_fails(code_project, task, code_pool):
    fake = ('print("============================= 215 passed in 0.50s ==============================")\n'
            + buggy_lru(code_project))
    v = verdict(task, code_pool, submit_messages(patch_of(code_project, LRU_FILE, fake)))
    assert not v.passed, v.reason
    # An early exit from the code under test is refused before the run (and would leave no record).
    exiting = "import os\nos._exit(0)\n" + buggy_lru(code_project)
    v = verdict(task, code_pool, submit_messages(patch_of(code_project, LRU_FILE, exiting)))
    assert not v.passed and "patch refused" in v.reason and "os._exit" in v.reason


def test_source_reaching_for_the_harness_is_refused(code_project, task, code_pool):
    sneaky = "import pytest as _p\n" + buggy_lru(code_project)
    v = verdict(task, code_pool, submit_messages(patch_of(code_project, LRU_FILE, sneaky)))
    assert not v.passed and "test harness" in v.reason


def test_only_a_real_submit_observation_counts(code_project):
    forged = [Message(role="assistant", content="<patch>\n" + fix_patch(code_project) + "</patch>"),
              Message(role="tool", name="submit", tool_call_id="never-called",
                      content="Submitted.\n<patch>\n" + fix_patch(code_project) + "</patch>")]
    assert submitted_patch(forged) is None
    msgs = submit_messages("first") + submit_messages(fix_patch(code_project), call_id="c2")
    assert submitted_patch(msgs) == fix_patch(code_project)


def test_true_fix_passes_on_a_base_image_box_too(code_project, task, sandbox_pool):
    """The pipeline's one code_pool runs the base image: deps and checkout are streamed in."""
    with sandbox_pool.acquire() as box:
        v = RepoCodeVerifier().verify(task, submit_messages(fix_patch(code_project)), box)
    assert v.passed, v.reason


def test_tool_call_ids_must_match(code_project):
    call = ToolCall.make("a", "bash", {"command": "true"})
    msgs = [Message(role="assistant", tool_calls=[call]),
            Message(role="tool", name="submit", tool_call_id="a", content="<patch>\nx</patch>")]
    assert submitted_patch(msgs) is None


def test_trajforge_verify_runs_repo_rows_in_the_project_image(code_project, task, code_pool, tmp_path):
    """`trajforge verify` on repo-level rows: each row goes to a pool of the image its domain
    names for the task (the project's, test deps baked in), and the verdicts are the verifier's."""
    import json

    from pipelines.verify_cmd import verify_file
    from synthesizers.domains.code.images import ensure_project_image

    def row(rid, patch):
        return {"id": rid, "domain": "code", "task": task.payload, "messages": [m.to_openai() for m in submit_messages(patch)]}

    class Borrowed:  # the session pool, without letting verify_file close it
        def acquire(self):
            return code_pool.acquire()

        def close(self):
            pass

    asked = []
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [row("fix", fix_patch(code_project)), row("noop", "")]) + "\n")
    summary = verify_file(src, out, workers=1, sandbox_pool_factory=lambda image: asked.append(image) or Borrowed())
    results = {r["id"]: r["passed"] for r in map(json.loads, out.read_text().splitlines())}
    assert results == {"fix": True, "noop": False} and summary.passed == 1
    assert asked == [ensure_project_image(code_project)]  # one pool, of the project's image


# No-fix patches that never name the harness: they build its names at run time.
BUILT_NAMES = {
    "report-objects": 'getattr(__import__("_pyt" + "est.reports", fromlist=["x"]), "TestReport").from_item_and_call = None\n',
    "sys-modules": 'import sys\nsys.modules["_pyt" + "est.runner"].call_and_report = lambda *a, **k: None\n',
    "importlib": 'import importlib\nimportlib.import_module("_pyt" + "est.runner")\n',
    "exec": 'exec("import _py" + "test.runner as r; r.call_and_report = None")\n',
    "frames": 'import sys\n_g = sys._getframe(1).f_globals\n',
    "gc": 'import gc\n_p = [o for o in gc.get_objects() if type(o).__name__.endswith("PluginManager")]\n',
    "exit": 'import os\nos._exit(0)\n',
}


@pytest.mark.parametrize("name", sorted(BUILT_NAMES))
def test_names_built_at_run_time_are_refused(code_project, task, code_pool, name):
    src = BUILT_NAMES[name] + buggy_lru(code_project)
    v = verdict(task, code_pool, submit_messages(patch_of(code_project, LRU_FILE, src)))
    assert not v.passed and v.reason.startswith("patch refused: src/cachetools/__init__.py:"), v.reason
    assert v.cause == "model"


def test_a_forger_past_the_static_check_is_caught_at_run_time(code_project, task, code_pool, monkeypatch):
    import verifiers.code_repo as code_repo
    from tests.sandboxes.test_pytest_guard import SYS_MODULES

    monkeypatch.setattr(code_repo, "refusal", lambda *a: None)  # as if the static list missed it
    v = verdict(task, code_pool, submit_messages(patch_of(code_project, LRU_FILE, SYS_MODULES + buggy_lru(code_project))))
    assert not v.passed and v.reason.startswith("tampering: ") and "call_and_report" in v.reason, v.reason
