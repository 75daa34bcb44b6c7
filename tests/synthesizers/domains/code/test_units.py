"""Code domain units without Docker: diffs, the patch policy, mutations, splicing, statements,
the critical-action rule and tool arguments."""

from __future__ import annotations

import json

import pytest

from sandboxes.project import ProjectSpec, change_allowed, is_test_path
from sandboxes.tree_diff import PatchError, apply_patch, file_diff, make_diff, parse_diff, split_diff
from schemas import Message, ToolCall
from synthesizers.domains.code.baseline import Baseline
from synthesizers.domains.code.domain import CodeDomain, is_read_only, is_test_run
from synthesizers.domains.code.instances import classify, keep
from synthesizers.domains.code.mutate import file_mutations
from synthesizers.domains.code.statements import acceptable, template_statement
from verifiers.code_repo_function import splice_function

SPEC = ProjectSpec(name="p", version="1", sha256="0" * 64, source=("src/pkg", "mod.py"))


@pytest.mark.parametrize("old,new", [
    ("a\nb\nc\n", "a\nB\nc\n"), ("a\nb", "a\nb\nc"), ("x\n" * 20, "x\n" * 5 + "y\n" + "x\n" * 15),
    ("keep\nno newline", "keep\nchanged, still no newline"), ("", "new file\n"),
])
def test_diff_round_trip(old, new):
    patch = file_diff("f.py", old, new)
    assert apply_patch({"f.py": old}, parse_diff(patch))["f.py"] == new


def test_add_delete_and_strictness():
    diff = make_diff({"a.py": "1\n", "b.py": "2\n"}, {"a.py": "1\n", "c.py": "3\n"})
    changed = apply_patch({"a.py": "1\n", "b.py": "2\n"}, parse_diff(diff))
    assert changed == {"b.py": None, "c.py": "3\n"}
    with pytest.raises(PatchError):
        apply_patch({"f.py": "other\n"}, parse_diff(file_diff("f.py", "a\n", "b\n")))
    assert [p for p, _ in split_diff(diff)] == ["b.py", "c.py"]


@pytest.mark.parametrize("path,ok", [
    ("src/pkg/core.py", True), ("mod.py", True), ("src/pkg/tests/test_core.py", False),
    ("src/pkg/conftest.py", False), ("conftest.py", False), ("tests/test_x.py", False), ("pytest.ini", False),
    ("setup.cfg", False), ("sitecustomize.py", False), ("src/pkg/../../sitecustomize.py", False),
    ("/etc/passwd", False), ("src/pkg/data.json", False), ("src/other.py", False),
])
def test_change_policy(path, ok):
    assert change_allowed(SPEC, path) is ok


def test_test_paths():
    assert is_test_path("toolz/tests/test_x.py") and is_test_path("test_six.py") and not is_test_path("six.py")


SOURCE = '''import os


def f(a, b):
    """Doc."""
    # a comment that must survive
    if a < b and a:
        x = a + 1
        return x
    return b - a
'''


def test_mutations_are_local_and_compile():
    muts = file_mutations("src/pkg/m.py", SOURCE)
    kinds = {m.kind for m in muts}
    assert {"compare", "boolop", "binop", "constant", "negate_if", "drop_statement", "wrong_variable"} <= kinds
    for m in muts:
        compile(m.mutated_source, "m", "exec")
        assert "# a comment that must survive" in m.mutated_source
        assert len(file_diff("m.py", SOURCE, m.mutated_source).splitlines()) < 14
    assert len({m.id for m in muts}) == len(muts)


def test_keep_needs_both_f2p_and_p2p():
    base = Baseline(project="p", passing=["t1", "t2", "t3"])
    assert classify(base, lambda t: t != "t1") == (["t1"], ["t2", "t3"])
    assert keep(["t1"], ["t2"]) and not keep([], ["t1"]) and not keep(["t1", "t2", "t3"], [])


def test_splice_function():
    src = "import math\n\n\ndef g(x):\n    \"\"\"Doc.\"\"\"\n    raise NotImplementedError\n\n\ndef h():\n    return 1\n"
    out = splice_function(src, "g", "import re\n\ndef g(x):\n    return x * 2\n")
    ns: dict = {}
    exec(out, ns)
    assert ns["g"](3) == 6 and ns["h"]() == 1
    with pytest.raises(ValueError):
        splice_function(src, "g", "def other():\n    pass\n")


def test_statements_do_not_leak_the_patch():
    text = template_statement("p", "1", ["tests.test_m::test_a"], {"tests.test_m::test_a": "E   assert 1 == 2"})
    assert "test_a" in text and "assert 1 == 2" in text
    assert not acceptable("The bug is in `x = a - 1`, replace it " * 3, "x = a + 1", "x = a - 1")
    assert acceptable("Calling f(1, 2) returns 3 but the docs promise 2; tests fail.", "x = a + 1", "x = a - 1")


# What SmolLM2-135M wrote as bug reports (2026-11-23), each one accepted by the old length-and-leak rule.
SMALL_MODEL_STATEMENTS = [
    "The bug report is:\n\n```\nFailing tests and errors:\n\ntests.test_cache.CacheTest::test_getsizeof_param\n"
    "AssertionError: 1 != 2\n```\n\nThe bug report is:\n\n```\nFailing tests and errors:\n```",
    "```python\n# pylint: disable=too-many-defs\ndef test_addlist():\n    with pytest.raises(AssertionError):\n"
    "        addlist(1)\n```\n\nThis function is a simple example of a pytest test in boltons.",
    "\n".join(f"{i}. The user of the library did not provide any code to test the socketutils library." for i in range(1, 6)),
]


def test_llm_statements_must_be_grounded_reports_not_echoes_code_or_loops():
    names = ("cachetools", "test_getsizeof_param")
    # Each names its project or test, so each is refused for what it is: an echo, code, a loop.
    for text, grounded in zip(SMALL_MODEL_STATEMENTS, (names, ("boltons",), ("socketutils",))):
        assert any(n in text for n in grounded)
        assert not acceptable(text, "x = a + 1", "x = a - 1", grounded), text[:60]
    good = ("With cachetools 5.5.0, a Cache created with a getsizeof function reports the wrong size: "
            "test_getsizeof_param expects currsize 2 after inserting two items but gets 1.")
    assert acceptable(good, "x = a + 1", "x = a - 1", names)
    assert not acceptable(good.replace("cachetools", "the library").replace("test_getsizeof_param", "a test"),
                          "x = a + 1", "x = a - 1", names)  # names neither the project nor a failing test


def _call(name, **args):
    return ToolCall.make(f"c-{name}", name, args)


def test_critical_step_is_first_edit_or_test_run():
    d = CodeDomain()
    msgs = [Message(role="system"), Message(role="user", content="bug"),
            Message(role="assistant", tool_calls=[_call("bash", command="ls -la && grep -n foo src/*.py | head")]),
            Message(role="tool", content="..."),
            Message(role="assistant", tool_calls=[_call("view", path="src/pkg/core.py")]),
            Message(role="tool", content="..."),
            Message(role="assistant", tool_calls=[_call("bash", command="python3 -m pytest tests -q")]),
            Message(role="tool", content="..."),
            Message(role="assistant", tool_calls=[_call("edit", path="a", old_str="x", new_str="y")])]
    assert d.first_critical_step(msgs) == 6
    assert d.first_critical_step(msgs[:6] + msgs[8:]) == 6  # the edit, now at index 6
    assert d.first_critical_step(msgs[:6]) == 2  # nothing critical: the first assistant turn
    assert is_test_run("cd tests && python3 -m pytest") and not is_test_run("ls tests")
    for cmd in ("sed -i 's/a/b/' f.py", "echo x > f.py", "python3 -c 'open(\"f\",\"w\")'", "rm f.py", "cat $(x)"):
        assert not is_read_only(cmd), cmd
    assert is_read_only("cat -n src/pkg/core.py | sed -n 1,20p") is False  # sed is not on the list
    assert is_read_only("grep -rn 'def f' src 2>/dev/null | head -20")


def test_is_final_and_tools():
    d = CodeDomain()
    assert d.is_final(Message(role="assistant", content="done"))
    assert not d.is_final(Message(role="assistant", tool_calls=[_call("submit")]))
    assert [t.name for t in d.tools(_task())] == ["bash", "view", "edit", "submit"]
    for tool in d.tools(_task()):
        json.dumps(tool.schema)


def _task():
    from schemas import Task

    return Task(id="t", domain="code", kind="repo", payload={"project": SPEC.to_dict(), "bug_patch": ""})


def test_room_rules_synthesizers_and_the_sandbox_helpers_import_only_what_they_may():
    """synthesizers/domains/code may use schemas and sandboxes (not verifiers or pipelines); the
    generic project/pytest/diff helpers in sandboxes know no domain and no verifier."""
    from tests.imports import ROOT, imported_tops

    code_files = sorted((ROOT / "synthesizers/domains/code").glob("*.py"))
    assert len(code_files) >= 8
    for path in code_files:
        assert not imported_tops(path) & {"verifiers", "pipelines", "trainer"}, path
    for name in ("project", "pytest_junit", "tree_diff"):
        assert not imported_tops(ROOT / "sandboxes" / f"{name}.py") & {"verifiers", "synthesizers", "pipelines"}, name


def test_instances_parquet_is_a_dataset_that_datasets_reads(tmp_path):
    """What `make code-tasks` writes loads with `datasets.load_dataset("parquet", ...)` as it is,
    and --collect rebuilds it from the attempts log alone (a killed run still yields its instances)."""
    import datasets

    from synthesizers.domains.code.instances import FIELDS, build

    spec = {"name": "cachetools", "version": "5.5.0"}
    out = tmp_path / "inst"
    (out / "attempts").mkdir(parents=True)
    rows = []
    for i in range(3):
        row = {f: "" for f in FIELDS} | {
            "instance_id": f"cachetools-5.5.0-m{i}", "project": "cachetools", "version": "5.5.0",
            "project_spec": json.dumps(spec), "FAIL_TO_PASS": [f"tests.t::f{i}"], "PASS_TO_PASS": ["tests.t::p"],
            "mutation_kind": "compare", "line": 3 + i, "validate_seconds": 1.5,
            "_messages": {f"tests.t::f{i}": "E   assert 1 == 2"}, "_before": "a < b", "_after": "a <= b"}
        rows.append(json.dumps({"mutation_id": f"m{i}", "row": row}))
    rows.append(json.dumps({"mutation_id": "m9", "f2p": 0, "p2p": 5}) + "\n{\"mutation_id\": \"cut")  # killed
    (out / "attempts" / "cachetools-5.5.0.jsonl").write_text("\n".join(rows))
    report = build(out, 3, projects=["cachetools"], collect_only=True)
    assert report["instances"] == 3 and report["attempts"] == 4
    ds = datasets.load_dataset("parquet", data_files=str(out / "instances.parquet"), split="train")
    assert ds.num_rows == 3 and set(FIELDS) <= set(ds.column_names)
    assert ds[1]["FAIL_TO_PASS"] == ["tests.t::f1"] and ds[1]["line"] == 4
    assert "t::f0" in ds[0]["problem_statement"] and ds[0]["statement_source"] == "template"


def test_reproduce_command():
    from schemas import Task
    from synthesizers.domains.code.domain import reproduce_command

    project = {"name": "p", "pytest_args": ["-o", "addopts="], "test_paths": ["tests"]}
    cmd = reproduce_command(project, ["tests.test_m.C::test_a[1-2]", "tests.test_m.C::test_a[3-4]", "tests.t::test_b"])
    assert cmd == "python3 -m pytest -q -x --tb=short -o addopts= tests -k 'test_a or test_b'"
    payload = {"project": project | {"version": "1"}, "FAIL_TO_PASS": ["tests.t::test_b"], "problem_statement": "x"}
    plain = Task(id="t", domain="code", kind="repo", payload=payload)
    assert cmd.split(" -k ")[0] in CodeDomain().initial_messages(plain)[1].content


def test_documented_functions_by_body_size():
    """The default keeps bodies of two or more statements; (1, 1) picks the one-statement ones."""
    from synthesizers.domains.code.function_tasks import documented_functions

    source = ('def one(w):\n    """Doc."""\n    return w\n\n\n'
              'def two(w):\n    """Doc."""\n    w += 1\n    return w\n\n\n'
              'def _private(w):\n    """Doc."""\n    return w\n\n\n'
              'def bare(w):\n    return w\n')
    files = {"mod.py": source}
    assert [n.name for _, n in documented_functions(SPEC, files)] == ["two"]
    assert [n.name for _, n in documented_functions(SPEC, files, (1, 1))] == ["one"]
    assert [n.name for _, n in documented_functions(SPEC, files, (1, 5))] == ["one", "two"]


def test_pytest_wall_times_leave_test_output_and_nothing_else_does(tmp_path):
    import re
    import subprocess
    import sys

    from synthesizers.domains.code.tools import without_run_times

    (tmp_path / "test_m.py").write_text("import time\ndef test_a():\n    time.sleep(0.01)\n"
                                        "def test_b():\n    assert 'took 0.5s' == 'in 0.5s'\n")
    runs = [subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", flag, "test_m.py"],
                           cwd=tmp_path, capture_output=True, text=True).stdout for flag in ("-q", "-v")]
    for output in runs:  # real pytest output, quiet and verbose
        tally = [line for line in output.splitlines() if "1 failed, 1 passed" in line]
        assert len(tally) == 1 and re.search(r" in \d+\.\d+s", tally[0])
        kept = without_run_times(output)
        assert not re.search(r"passed in \d", kept) and "1 failed, 1 passed" in kept
        assert kept.count("in 0.5s") == output.count("in 0.5s") > 0  # the test's own text stays
    assert without_run_times("===== no tests ran in 0.01s =====") == "===== no tests ran ====="
    assert without_run_times("2 passed, 1 warning in 61.20s (0:01:01)") == "2 passed, 1 warning"
    assert without_run_times("print: done in 0.5s\n3 runs in 2s") == "print: done in 0.5s\n3 runs in 2s"
