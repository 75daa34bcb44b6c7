"""`trajforge verify` on the DESIGN.md format: good rows, wrong rows, malformed rows."""

from __future__ import annotations

import json

import pytest

from pipelines.verify_cmd import verify_file


def row(rid, answer_text, gold="42", domain="math"):
    return json.dumps({
        "id": rid, "domain": domain, "task": {"question": "What is 17 + 25?", "answer": gold},
        "messages": [{"role": "user", "content": "What is 17 + 25?"},
                     {"role": "assistant", "content": answer_text}],
    })


def test_math_rows_in_order_with_malformed_lines_recorded(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([
        row("good", "17 + 25 = 42, so \\boxed{42}"),
        row("wrong", "\\boxed{41}"),
        "{not json",
        json.dumps({"id": "nofields", "domain": "math"}),
        row("unknown-domain", "\\boxed{42}", domain="chemistry"),
        row("last-box-counts", "first \\boxed{42} then \\boxed{7}"),
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    summary = verify_file(src, out)
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in results] == ["good", "wrong", "line-3", "nofields", "unknown-domain", "last-box-counts"]
    assert [r["passed"] for r in results] == [True, False, False, False, False, False]
    assert set(results[0]) == {"id", "passed", "score", "reason"}
    assert results[0]["score"] == 1.0
    assert "bad input on line 3" in results[2]["reason"]
    assert "missing field" in results[3]["reason"]
    assert "no verifier" in results[4]["reason"]
    assert summary.total == 6 and summary.passed == 1 and summary.bad_rows == 2


def test_a_rows_stop_reason_judges_as_a_run_does(tmp_path):
    def stopped(rid, stop_reason):
        return json.dumps(dict(json.loads(row(rid, "\\boxed{42}")), stop_reason=stop_reason))

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([stopped("cut", "max_tokens"), stopped("answered", "final_answer"),
                              row("unsaid", "\\boxed{42}"), stopped("bad", "ran_out")]) + "\n")
    out = tmp_path / "out.jsonl"
    summary = verify_file(src, out)
    results = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert not results["cut"]["passed"] and results["cut"]["reason"].endswith(
        "but the rollout did not finish (stopped by max_tokens)")
    assert results["answered"]["passed"] and results["unsaid"]["passed"]
    assert not results["bad"]["passed"] and "stop_reason must be one of final_answer" in results["bad"]["reason"]
    assert summary.passed == 2 and summary.bad_rows == 1


@pytest.mark.docker
def test_function_level_code_rows_run_in_the_sandbox(tmp_path, sandbox_pool):
    task = {"prompt": "def add(a, b):\n", "entry_point": "add",
            "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"}

    def code_row(rid, body):
        return json.dumps({"id": rid, "domain": "code", "task": task, "messages": [
            {"role": "user", "content": task["prompt"]},
            {"role": "assistant", "content": f"```python\ndef add(a, b):\n{body}\n```"}]})

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([
        code_row("right", "    return a + b"),
        code_row("wrong", "    return a - b"),
        code_row("spoof", "    import sys; sys.exit(0)"),
    ]))
    out = tmp_path / "out.jsonl"
    verify_file(src, out, sandbox_pool_factory=lambda image: _Borrowed(sandbox_pool))
    results = {r["id"]: r["passed"] for r in map(json.loads, out.read_text().splitlines())}
    assert results == {"right": True, "wrong": False, "spoof": False}


class _Borrowed:
    """The session pool, lent to verify_file without letting it close the pool."""

    def __init__(self, pool):
        self.pool = pool

    def acquire(self):
        return self.pool.acquire()

    def close(self):
        pass


def test_verify_judges_each_domain_under_its_runs_sandbox_limits():
    from pipelines.config import load_config
    from pipelines.sandbox_pool import domain_sandbox

    assert domain_sandbox("code").memory_mb == load_config("configs/code.yaml").sandbox.memory_mb == 768
    assert domain_sandbox("no-such-domain").memory_mb == 512  # the defaults
