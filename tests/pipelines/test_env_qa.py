"""Environment QA without Docker: the outcome rule, what is submitted to the verifier, the
rewrite of the task file, resuming, the code domain's refusal of unchecked tasks, and the
starter set's decisions. The same path under real Docker: tests/pipelines/test_env_qa_docker.py."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from pipelines import code_starter
from pipelines.env_qa import check_file, outcome, repo_item
from schemas import messages_from_openai
from synthesizers.domains.code.domain import CodeDomain, CodeDomainError
from synthesizers.domains.code.instances import FIELDS, write_parquet
from verifiers.code_repo import submitted_patch

SPEC = {"name": "cachetools", "version": "5.5.0", "sha256": "0" * 64, "source": ["src/cachetools"]}


def _row(i: int) -> dict:
    return {f: "" for f in FIELDS} | {
        "instance_id": f"cachetools-5.5.0-m{i}", "project": "cachetools", "version": "5.5.0",
        "project_spec": json.dumps(SPEC), "bug_patch": f"--- a/x{i}.py\n+++ b/x{i}.py\n",
        "fix_patch": f"--- a/src/cachetools/f.py\n+++ b/src/cachetools/f.py\n@@ -1 +1 @@\n-a = {i}\n+a = 0\n",
        "FAIL_TO_PASS": [f"tests.t::f{i}"], "PASS_TO_PASS": ["tests.t::p1", "tests.t::p2", "tests.t::p3"],
        "mutation_kind": "compare", "line": 1, "validate_seconds": 1.0}


@pytest.mark.parametrize("gold,bug,want", [
    ([True] * 3, [True] * 3, "passed"),
    ([False] * 3, [True] * 3, "condition_bound"),  # the gold fix rejected every time
    ([True] * 3, [False] * 3, "condition_bound"),  # the bug never fails as validated
    ([True, False, True], [True] * 3, "flaky"),
    ([True] * 3, [True, True, False], "flaky"),
    ([False, True, True], [True, False, True], "flaky"),
])
def test_outcome(gold, bug, want):
    assert outcome(gold, bug) == want


def test_the_submissions_are_what_the_verifier_reads():
    item = repo_item(_row(1))
    assert submitted_patch(messages_from_openai(item.gold)) == _row(1)["fix_patch"]
    assert submitted_patch(messages_from_openai(item.bug)) == ""  # an empty submit: the bug as shipped
    assert item.bug_score == 3 / 4
    assert item.task["FAIL_TO_PASS"] == ["tests.t::f1"] and item.task["bug_patch"] == _row(1)["bug_patch"]


class ScriptedVerify:
    """Stands in for verify_file: per (instance, side) a list of verdicts, one per call."""

    def __init__(self, script: dict[str, list[tuple[bool, float]]]):
        self.script, self.calls, self.rows = script, 0, []

    def __call__(self, src, out, *, workers, sandbox_pool_factory):
        assert sandbox_pool_factory is None  # verify_file's own pools, as `trajforge verify` makes them
        rows = [json.loads(line) for line in src.read_text().splitlines()]
        self.rows.append(rows)
        out.write_text("".join(json.dumps({"id": r["id"], "passed": self.script[r["id"]][self.calls][0],
                                           "score": self.script[r["id"]][self.calls][1], "reason": "scripted"}) + "\n"
                               for r in rows))
        self.calls += 1


def test_check_file_keeps_only_sound_tasks_records_them_and_resumes(tmp_path):
    write_parquet([_row(i) for i in range(4)], tmp_path / "instances.parquet")
    ok, wrong, bug_ok = (True, 1.0), (False, 0.5), (False, 0.75)
    ids = [f"cachetools-5.5.0-m{i}" for i in range(4)]
    script = {f"{ids[0]}::gold": [ok] * 3, f"{ids[0]}::bug": [bug_ok] * 3,
              f"{ids[1]}::gold": [ok, wrong, ok], f"{ids[1]}::bug": [bug_ok] * 3,  # flaky
              f"{ids[2]}::gold": [wrong] * 3, f"{ids[2]}::bug": [bug_ok] * 3,  # condition-bound
              # the bug fails, but a PASS_TO_PASS test fails with it (score 0.5, not 0.75): unsound
              f"{ids[3]}::gold": [ok] * 3, f"{ids[3]}::bug": [wrong] * 3}
    verify = ScriptedVerify(script)
    report = check_file(tmp_path / "instances.parquet", "repo", verify=verify, log=lambda _: None)
    assert verify.calls == 3 and all(len(rows) == 8 for rows in verify.rows)
    assert all(r["domain"] == "code" and r["task"]["FAIL_TO_PASS"] for r in verify.rows[0])
    assert (report["tasks"], report["kept"], report["passed"], report["flaky"], report["condition_bound"]) == \
        (4, 1, 1, 1, 2)
    assert report["dropped_ids"] == {ids[1]: "flaky", ids[2]: "condition_bound", ids[3]: "condition_bound"}
    rows = pq.read_table(tmp_path / "instances.parquet").to_pylist()
    assert [(r["instance_id"], r["qa_runs"], r["qa_outcome"]) for r in rows] == [(ids[0], 3, "passed")]
    logged = [json.loads(line) for line in (tmp_path / "qa.jsonl").read_text().splitlines()]
    assert {r["id"]: r["outcome"] for r in logged}[ids[1]] == "flaky" and len(logged) == 4
    assert json.loads((tmp_path / "qa.json").read_text())["dropped"] == 3
    # The domain seeds the checked task.
    tasks = list(CodeDomain({"instances": str(tmp_path)}).seed_tasks(limit=None, seed=0))
    assert [t.payload["instance_id"] for t in tasks] == [ids[0]]
    # Rebuilt from the attempts (all four back, unchecked): QA resumes from its log, judging nothing again.
    write_parquet([_row(i) for i in range(4)], tmp_path / "instances.parquet")
    again = check_file(tmp_path / "instances.parquet", "repo", verify=verify, log=lambda _: None)
    assert verify.calls == 3 and again["judged_now"] == 0 and again["kept"] == 1


def test_the_domain_refuses_unchecked_tasks_in_one_line(tmp_path):
    write_parquet([_row(0)], tmp_path / "instances.parquet")
    with pytest.raises(CodeDomainError, match=r"1 of 1 tasks .* never checked .*python -m pipelines\.env_qa "):
        list(CodeDomain({"instances": str(tmp_path)}).seed_tasks(limit=None, seed=0))


def test_starter_state_and_folders(tmp_path, monkeypatch):
    path = tmp_path / "inst" / "instances.parquet"
    assert code_starter.state(path) == "missing"
    path.parent.mkdir()
    write_parquet([_row(0)], path)
    assert code_starter.state(path) == "unchecked"
    verify = ScriptedVerify({f"cachetools-5.5.0-m0::{s}": [v] * 3 for s, v in (("gold", (True, 1.0)),
                                                                               ("bug", (False, 0.75)))})
    check_file(path, "repo", verify=verify, log=lambda _: None)
    assert code_starter.state(path) == "checked"
    assert code_starter.folders({"instances": str(path), "kinds": ["repo"]}) == (path.parent, None)
    assert code_starter.folders({"instances": "a", "kinds": ["repo", "function"], "function_tasks": "b/x.parquet"})[1] \
        .name == "b"

    # A checked set in place: nothing is built or judged.
    def boom(*a, **k):
        raise AssertionError("nothing should be built or judged")

    monkeypatch.setattr("synthesizers.domains.code.instances.build", boom)
    monkeypatch.setattr("pipelines.env_qa.check_file", boom)
    assert code_starter.ensure({"instances": str(path.parent), "kinds": ["repo"]}, log=lambda _: None) == {}


def test_starter_builds_only_the_configs_bug_kinds_then_checks(tmp_path, monkeypatch):
    calls = []

    def fake_build(out, target, **kw):
        calls.append(("build", target, kw["projects"], kw["bug_kinds"]))
        write_parquet([_row(0)], out / "instances.parquet")

    def fake_check(path, kind, **kw):
        calls.append(("qa", path.name, kind))
        return {"kept": 1, "tasks": 1}

    monkeypatch.setattr("synthesizers.domains.code.instances.build", fake_build)
    monkeypatch.setattr("pipelines.env_qa.check_file", fake_check)
    done = code_starter.ensure({"instances": str(tmp_path / "i"), "bug_kinds": ["compare", "binop"]}, log=lambda _: None)
    assert calls == [("build", code_starter.REPO_TARGET, list(code_starter.STARTER_PROJECTS), ("compare", "binop")),
                     ("qa", "instances.parquet", "repo")]
    assert done == {"instances": "1 of 1 kept"} and (tmp_path / "i" / code_starter.MARKER).is_file()


def test_a_missing_task_set_names_the_starter_and_the_full_build(tmp_path):
    with pytest.raises(CodeDomainError, match=r"no code instances at .*`make code-starter`.*`make code-tasks`"):
        list(CodeDomain({"instances": str(tmp_path)}).seed_tasks(limit=None, seed=0))
