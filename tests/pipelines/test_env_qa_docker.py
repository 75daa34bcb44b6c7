"""Environment QA under real Docker, on the case that motivated it: a boltons instance whose
PASS_TO_PASS holds ``test_iter_find_files``, a test that ``lstrip``s the checkout's absolute path.
Judged where the verifier stages its checkout (the path validation used), its gold fix passes and
its bug fails in three separate ``trajforge verify`` runs; with the verifier's checkout moved to
another path (where it used to be: ``verify-<hex>``) the same instance is caught as condition-bound."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from pipelines.env_qa import check_file
from sandboxes.project import pristine_files
from sandboxes.tree_diff import file_diff
from synthesizers.domains.code.instances import write_parquet

pytestmark = pytest.mark.docker

FILE = "boltons/debugutils.py"
GOOD = "        if not callable(attr_val) or attr_name in ('__new__',):\n"
BAD = "        if not callable(attr_val) or attr_name not in ('__new__',):\n"
F2P = [f"tests.test_debugutils_trace::test_trace_{n}" for n in ("bytes", "dict", "exc", "namedtuple", "which")]
P2P = ["tests.test_fileutils::test_iter_find_files", "tests.test_fileutils::test_fileperms",
       "tests.test_strutils::test_asciify"]


@pytest.fixture(scope="module")
def boltons_row():
    from synthesizers.domains.code.images import ensure_project_image
    from synthesizers.domains.code.projects import fetch, load_projects

    spec = load_projects(names=["boltons"])[0]
    fetch(spec)
    ensure_project_image(spec)
    good = pristine_files(spec)[FILE].decode()
    assert good.count(GOOD) == 1
    bad = good.replace(GOOD, BAD)
    return {"instance_id": "boltons-24.1.0-qa", "project": "boltons", "version": "24.1.0",
            "project_spec": json.dumps(spec.to_dict()), "bug_patch": file_diff(FILE, good, bad),
            "fix_patch": file_diff(FILE, bad, good), "FAIL_TO_PASS": F2P, "PASS_TO_PASS": P2P,
            "problem_statement": "wrap_trace wraps the wrong attributes.", "statement_source": "template",
            "mutation_kind": "compare", "file": FILE, "line": 255, "function": "wrap_trace", "validate_seconds": 1.0}


def test_gold_passes_and_bug_fails_three_times_where_the_verifier_runs(boltons_row, tmp_path):
    write_parquet([boltons_row], tmp_path / "instances.parquet")
    report = check_file(tmp_path / "instances.parquet", "repo", log=lambda _: None)
    assert (report["tasks"], report["kept"], report["runs"]) == (1, 1, 3), report
    logged = json.loads((tmp_path / "qa.jsonl").read_text())
    assert logged["gold_passed"] == [True] * 3 and logged["bug_failed"] == [True] * 3, logged
    row = pq.read_table(tmp_path / "instances.parquet").to_pylist()[0]
    assert (row["qa_runs"], row["qa_outcome"]) == (3, "passed")


def test_an_instance_bound_to_its_checkout_path_is_caught(boltons_row, tmp_path, monkeypatch):
    # Where the verifier's guarded run stages its checkout (sandboxes.pytest_guard), moved elsewhere.
    monkeypatch.setattr("sandboxes.pytest_guard.CHECKOUT_DIR", "verify-5f0e9a1c2b3d")
    write_parquet([boltons_row], tmp_path / "instances.parquet")
    report = check_file(tmp_path / "instances.parquet", "repo", runs=2, log=lambda _: None)
    assert (report["kept"], report["condition_bound"]) == (0, 1), report
    logged = json.loads((tmp_path / "qa.jsonl").read_text())
    assert logged["gold_passed"] == [False, False]
    assert "test_iter_find_files" in logged["reasons"][0], logged["reasons"]
    assert pq.read_table(tmp_path / "instances.parquet").num_rows == 0
