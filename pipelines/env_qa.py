"""Environment QA of code tasks: each task judged by the verifier exactly as runs judge it, three times.

A task is sound when its gold fix passes and its bug fails. Both are judged through
``pipelines.verify_cmd.verify_file``, the entry point of ``trajforge verify``: the code verifier
behind the repetition gate, the project's image, the pool ``pipelines.sandbox_pool`` makes from
``configs/code.yaml``'s sandbox section (the limits runs use), the verifier's checkout path and
timeouts. Nothing here re-implements a condition, so a task that holds only where it was validated
(a suite that depends on the checkout's path, a test that needs more memory than runs give) fails
here as it would fail every rollout.

Two submissions per task: the gold fix (a ``submit`` of ``fix_patch``; for a function task, the
original function) and no fix (an empty ``submit``; the blanked function). The bug counts as
failing only when *every* FAIL_TO_PASS test fails and every PASS_TO_PASS test passes (its score is
exactly PASS_TO_PASS / all). Each of ``runs`` runs is its own ``verify_file`` call: fresh pools,
fresh boxes. Outcome: ``passed`` (every run right), ``condition_bound`` (the same wrong verdicts in
every run), ``flaky`` (runs disagree). Only ``passed`` tasks stay in the Parquet; every result is
kept in ``qa.jsonl`` beside it (keyed by a digest of what was judged and under which sandbox
settings, so a re-run resumes and a changed task or limit is checked again) and counted in ``qa.json``.

CLI (``make code-tasks`` runs it after building):
``python -m pipelines.env_qa .cache/code/instances [--function-tasks .cache/code/function_tasks-easy]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.atomic import write_json
from pipelines.config import SandboxConfig

RUNS = 3
OUTCOMES = ("passed", "flaky", "condition_bound")
BATCH = 8  # tasks judged together (all runs) before their results are appended: the resume unit
_CALL = "qa-submit"


@dataclass(frozen=True)
class QAItem:
    """One task in ``trajforge verify``'s format with a gold and a no-fix submission (OpenAI messages)."""

    id: str
    task: dict[str, Any]
    gold: list[dict[str, Any]]
    bug: list[dict[str, Any]]

    @property
    def bug_score(self) -> float:
        """The verifier's score when every FAIL_TO_PASS test fails and every PASS_TO_PASS test passes."""
        f2p, p2p = len(self.task["FAIL_TO_PASS"]), len(self.task["PASS_TO_PASS"])
        return p2p / (f2p + p2p)

    def key(self, conditions: str) -> str:
        blob = json.dumps([self.task, self.gold, self.bug, conditions], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class QAResult:
    id: str
    key: str
    outcome: str  # one of OUTCOMES
    runs: int
    gold_passed: list[bool] = field(default_factory=list)  # per run
    bug_failed: list[bool] = field(default_factory=list)  # per run: all F2P failed, all P2P passed
    reasons: list[str] = field(default_factory=list)  # the verifier's reason for each wrong verdict
    seconds: float = 0.0  # this task's share of the batch's wall time


def outcome(gold_passed: list[bool], bug_failed: list[bool]) -> str:
    runs = list(zip(gold_passed, bug_failed))
    if all(g and b for g, b in runs):
        return "passed"
    return "condition_bound" if len(set(runs)) == 1 else "flaky"


def _submit(content: str) -> list[dict[str, Any]]:
    call = {"id": _CALL, "type": "function", "function": {"name": "submit", "arguments": "{}"}}
    return [{"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": _CALL, "name": "submit", "content": content}]


def repo_item(row: dict[str, Any]) -> QAItem:
    """A repo-level instance row (``synthesizers.domains.code.instances``): gold = ``fix_patch`` submitted."""
    from synthesizers.domains.code.instances import instance_to_task
    from synthesizers.domains.code.tools import submission_text

    task = instance_to_task(row)
    return QAItem(row["instance_id"], task.payload, _submit(submission_text(row["fix_patch"])),
                  _submit(submission_text("")))


def function_item(row: dict[str, Any]) -> QAItem:
    """A function-task row (``synthesizers.domains.code.function_tasks``): gold = the original function
    as the answer, bug = the blanked one."""
    import ast

    from sandboxes.project import ProjectSpec, patched_checkout
    from synthesizers.domains.code.function_tasks import function_task_from_row

    task = function_task_from_row(row)
    spec = ProjectSpec.from_dict(task.payload["project"])
    raw, buggy = patched_checkout(spec, row["bug_patch"])

    def answer(source: str) -> list[dict[str, Any]]:
        node = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == row["name"])
        lines = source.splitlines(keepends=True)
        first = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
        return [{"role": "assistant", "content": "```python\n" + "".join(lines[first:node.end_lineno]) + "```"}]

    return QAItem(row["task_id"], task.payload, answer(raw[row["path"]].decode()), answer(buggy[row["path"]]))


def conditions(sandbox: SandboxConfig) -> str:
    """What the verdicts depend on besides the task: the sandbox settings and the checkout path."""
    from sandboxes.project import CHECKOUT_DIR

    return json.dumps({"sandbox": sandbox.model_dump(), "checkout": CHECKOUT_DIR}, sort_keys=True)


def judge(items: list[QAItem], *, runs: int = RUNS, workers: int = 2, sandbox: SandboxConfig | None = None,
          verify: Callable[..., Any] | None = None) -> list[QAResult]:
    """Each item's gold and bug through ``verify_file`` in ``runs`` separate calls."""
    from pipelines.sandbox_pool import domain_sandbox, make_pool
    from pipelines.verify_cmd import verify_file

    # No factory by default: verify_file then makes its pools exactly as `trajforge verify` does.
    factory = None if sandbox is None else (lambda image: make_pool(sandbox, image))
    sandbox = sandbox or domain_sandbox("code")
    verify = verify or verify_file
    cond = conditions(sandbox)
    gold: dict[str, list[bool]] = {i.id: [] for i in items}
    bug: dict[str, list[bool]] = {i.id: [] for i in items}
    reasons: dict[str, list[str]] = {i.id: [] for i in items}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tf-env-qa-") as tmp:
        src, out = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        src.write_text("".join(json.dumps({"id": f"{i.id}::{side}", "domain": "code", "task": i.task,
                                           "messages": getattr(i, side)}) + "\n"
                               for i in items for side in ("gold", "bug")))
        for _ in range(runs):
            verify(src, out, workers=workers, sandbox_pool_factory=factory)
            verdicts = {v["id"]: v for v in map(json.loads, out.read_text().splitlines())}
            for i in items:
                g, b = verdicts[f"{i.id}::gold"], verdicts[f"{i.id}::bug"]
                gold[i.id].append(bool(g["passed"]))
                bug[i.id].append(not b["passed"] and abs(float(b["score"]) - i.bug_score) < 1e-9)
                if not gold[i.id][-1]:
                    reasons[i.id].append(f"gold: {g['reason']}")
                if not bug[i.id][-1]:
                    reasons[i.id].append(f"bug: {b['reason']}")
    share = (time.monotonic() - started) / max(1, len(items))
    return [QAResult(i.id, i.key(cond), outcome(gold[i.id], bug[i.id]), runs, gold[i.id], bug[i.id],
                     reasons[i.id][:6], round(share, 2)) for i in items]


def load_results(path: Path) -> dict[str, QAResult]:
    """key -> result, from a ``qa.jsonl`` (absent: none; a line cut by a kill is judged again)."""
    done: dict[str, QAResult] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                res = QAResult(**json.loads(line))
            except (ValueError, TypeError):
                continue
            done[res.key] = res
    return done


def check_file(parquet: Path, kind: str, *, runs: int = RUNS, workers: int = 2,
               sandbox: SandboxConfig | None = None, log: Callable[[str], None] = print,
               verify: Callable[..., Any] | None = None) -> dict[str, Any]:
    """QA every task of ``parquet`` (``kind`` repo | function) not yet judged under these conditions,
    then rewrite it with only the sound ones (``qa_runs``, ``qa_outcome`` set); returns the counts."""
    from pipelines.sandbox_pool import domain_sandbox

    if not parquet.is_file():
        raise FileNotFoundError(f"no task file at {parquet}: build it first (make code-tasks)")
    cond = conditions(sandbox or domain_sandbox("code"))
    table = pq.read_table(parquet)
    rows = table.to_pylist()
    make = repo_item if kind == "repo" else function_item
    items = [make(r) for r in rows]
    log_path = parquet.parent / ("qa.jsonl" if kind == "repo" else "qa-function.jsonl")
    done = load_results(log_path)
    todo = [i for i in items if i.key(cond) not in done or done[i.key(cond)].runs < runs]
    started = time.monotonic()
    for n in range(0, len(todo), BATCH):
        batch = todo[n:n + BATCH]
        for res in judge(batch, runs=runs, workers=workers, sandbox=sandbox, verify=verify):
            done[res.key] = res
            with open(log_path, "a") as f:
                f.write(json.dumps(asdict(res)) + "\n")
        log(f"env QA {parquet.parent.name}: {min(n + BATCH, len(todo))}/{len(todo)} judged {runs}x")
    results = [done[i.key(cond)] for i in items]
    kept = [{**r, "qa_runs": res.runs, "qa_outcome": res.outcome} for r, res in zip(rows, results)
            if res.outcome == "passed"]
    schema = table.schema
    for name, typ in (("qa_runs", pa.int64()), ("qa_outcome", pa.string())):
        if schema.get_field_index(name) < 0:
            schema = schema.append(pa.field(name, typ))
    from schemas.atomic import atomic_write

    atomic_write(parquet, lambda tmp: pq.write_table(pa.Table.from_pylist(kept, schema=schema), tmp))
    counts = {o: sum(r.outcome == o for r in results) for o in OUTCOMES}
    report = {"tasks": len(items), "runs": runs, "kept": counts["passed"], "dropped": len(items) - counts["passed"],
              **counts, "judged_now": len(todo), "seconds_now": round(time.monotonic() - started, 1),
              "conditions": json.loads(cond),
              "dropped_ids": {r.id: r.outcome for r in results if r.outcome != "passed"}}
    write_json(parquet.parent / ("qa.json" if kind == "repo" else "qa-function.json"), report)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.env_qa", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("instances", nargs="?", default=None, help="folder of instances.parquet (repo-level tasks)")
    ap.add_argument("--function-tasks", default=None, help="folder of function_tasks.parquet")
    ap.add_argument("--runs", type=int, default=RUNS)
    ap.add_argument("--workers", type=int, default=2, help="verifications in flight")
    args = ap.parse_args(argv)
    if args.runs < 1 or not (args.instances or args.function_tasks):
        print("error: give an instances folder and/or --function-tasks, and --runs >= 1", file=sys.stderr)
        return 2
    try:
        for folder, kind, name in ((args.instances, "repo", "instances.parquet"),
                                   (args.function_tasks, "function", "function_tasks.parquet")):
            if folder:
                report = check_file(Path(folder) / name, kind, runs=args.runs, workers=args.workers)
                print(json.dumps({k: v for k, v in report.items() if k != "dropped_ids"}))
    except Exception as exc:  # noqa: BLE001 - one clear line for the user
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
