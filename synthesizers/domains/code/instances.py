"""Repo-level task instances: inject bugs, keep those the tests can judge, store them as Parquet.

Per project (one sandbox of its image, one thread): baseline the suite (twice,
flaky tests out), stage the pristine checkout once, then for each candidate
mutation write the mutated file, run the suite, restore the file. A bug is
kept only with >= 1 FAIL_TO_PASS (baseline-passing tests that now fail) and
>= 1 PASS_TO_PASS (baseline-passing tests that still pass); at most one bug
per function, for variety. Every attempt is appended to
``OUT/attempts/<project>.jsonl`` so a re-run resumes where it stopped.

Then problem statements (LLM with ``--llm``, template otherwise) and
``OUT/instances.parquet`` (written atomically) + ``OUT/report.json``. The rows are not yet
checked (``qa_outcome: unchecked``): ``python -m pipelines.env_qa OUT`` then judges each one three
times under exactly the verifier's conditions and keeps the sound ones (``make code-tasks`` runs both).

CLI (``make code-tasks``):
``python -m synthesizers.domains.code.instances --out .cache/code/instances --target 200``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from sandboxes.project import CHECKOUT_DIR, ProjectSpec, pristine_files, stage_deps, stage_files, text_files
from sandboxes.pytest_junit import run_pytest
from sandboxes.tree_diff import file_diff
from schemas import Task
from schemas.atomic import atomic_write
from synthesizers.domains.code.baseline import Baseline, run_baseline
from synthesizers.domains.code.mutate import Mutation, candidate_mutations
from synthesizers.domains.code.statements import llm_statements, template_statement

FIELDS = ("instance_id", "project", "version", "project_spec", "bug_patch", "fix_patch", "FAIL_TO_PASS",
          "PASS_TO_PASS", "problem_statement", "statement_source", "mutation_kind", "file", "line", "function",
          "validate_seconds", "qa_runs", "qa_outcome")
SCHEMA = pa.schema([(f, pa.list_(pa.string()) if f in ("FAIL_TO_PASS", "PASS_TO_PASS") else
                     pa.int64() if f in ("line", "qa_runs") else pa.float64() if f == "validate_seconds" else
                     pa.string()) for f in FIELDS])
# Written here as not yet checked; ``pipelines.env_qa`` judges each instance under the verifier's
# own conditions and keeps only the sound ones (the code domain seeds no unchecked instance).
UNCHECKED = {"qa_runs": 0, "qa_outcome": "unchecked"}
_write_lock = threading.Lock()


def classify(baseline: Baseline, outcomes_passed: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """(FAIL_TO_PASS, PASS_TO_PASS) of a mutant run against the baseline."""
    f2p = [t for t in baseline.passing if not outcomes_passed(t)]
    p2p = [t for t in baseline.passing if outcomes_passed(t)]
    return f2p, p2p


def keep(f2p: list[str], p2p: list[str]) -> bool:
    return bool(f2p) and bool(p2p)


def _baseline(box, spec: ProjectSpec, out: Path) -> Baseline:
    path = out / "baselines" / f"{spec.name}-{spec.version}.json"
    if path.is_file():
        return Baseline(**json.loads(path.read_text()))
    result = run_baseline(box, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(result)))
    return result


def _attempts_path(out: Path, spec: ProjectSpec) -> Path:
    return out / "attempts" / f"{spec.name}-{spec.version}.jsonl"


def load_attempts(path: Path) -> dict[str, dict[str, Any]]:
    """mutation id -> attempt record, from a project's attempts file (absent: none)."""
    done: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                done[rec["mutation_id"]] = rec
            except (json.JSONDecodeError, KeyError):
                continue  # a line cut by a kill: that attempt is simply redone
    return done


def _row(spec: ProjectSpec, m: Mutation, original: str, f2p: list[str], p2p: list[str], seconds: float,
         messages: dict[str, str]) -> dict[str, Any]:
    return {"instance_id": f"{spec.name}-{spec.version}-{m.id}", "project": spec.name, "version": spec.version,
            "project_spec": json.dumps(spec.to_dict()), "bug_patch": file_diff(m.path, original, m.mutated_source),
            "fix_patch": file_diff(m.path, m.mutated_source, original), "FAIL_TO_PASS": f2p, "PASS_TO_PASS": p2p,
            "problem_statement": "", "statement_source": "", "mutation_kind": m.kind, "file": m.path,
            "line": m.line, "function": m.function, "validate_seconds": seconds,
            "_messages": {t: messages.get(t, "") for t in f2p[:3]}, "_before": m.before, "_after": m.after}


def validate_project(spec: ProjectSpec, quota: int, *, seed: int, out: Path, max_attempts: int,
                     image: str | None = None, log: Callable[[str], None] = print,
                     candidates: list[Mutation] | None = None, bug_kinds: tuple[str, ...] = ()
                     ) -> list[dict[str, Any]]:
    """Kept instances of one project (resuming from its attempts file); ``candidates`` replaces
    the project's own mutation list (tests use it to feed known bugs); ``bug_kinds`` tries only
    mutations of these kinds (a small set made for a config that seeds only some kinds)."""
    from sandboxes.base import SandboxLimits
    from sandboxes.docker_backend import DockerSandboxPool
    from synthesizers.domains.code.images import ensure_project_image

    attempts_path = _attempts_path(out, spec)
    attempts_path.parent.mkdir(parents=True, exist_ok=True)
    done = load_attempts(attempts_path)
    kept = [r["row"] for r in done.values() if r.get("row")]
    used_functions = {(r["file"], r["function"]) for r in kept}
    if len(kept) >= quota or len(done) >= max_attempts:
        return kept[:max(quota, len(kept))]
    files = text_files(pristine_files(spec))
    limits = SandboxLimits(memory_mb=1024, timeout_s=120, output_bytes=256 * 1024, workdir_mb=256)
    with DockerSandboxPool(image or ensure_project_image(spec), size=1, limits=limits) as pool, \
            pool.acquire() as box:
        base = _baseline(box, spec, out)
        if not base.usable:
            log(f"{spec.name}: baseline has too few passing tests; skipped")
            return kept
        repo = stage_files(box, pristine_files(spec), CHECKOUT_DIR)
        deps = stage_deps(box, spec)
        budget_s = max(60.0, 6 * max(base.run_seconds))
        tried = len(done)
        for m in candidates if candidates is not None else candidate_mutations(spec, files, seed):
            if len(kept) >= quota or tried >= max_attempts:
                break
            if m.id in done or (m.path, m.function) in used_functions or (bug_kinds and m.kind not in bug_kinds):
                continue
            tried += 1
            started = time.monotonic()
            box.put_files({f"{repo}/{m.path}": m.mutated_source})
            try:
                run = run_pytest(box, spec, repo, deps, per_test_timeout_s=10.0, total_timeout_s=budget_s)
            finally:
                box.put_files({f"{repo}/{m.path}": files[m.path]})
            seconds = time.monotonic() - started
            f2p, p2p = classify(base, run.passed) if run.report_found else ([], [])
            rec: dict[str, Any] = {"mutation_id": m.id, "kind": m.kind, "f2p": len(f2p), "p2p": len(p2p),
                                   "seconds": round(seconds, 3)}
            if keep(f2p, p2p):
                rec["row"] = _row(spec, m, files[m.path], f2p, p2p, seconds, run.messages)
                kept.append(rec["row"])
                used_functions.add((m.path, m.function))
            with _write_lock, open(attempts_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
        log(f"{spec.name}: kept {len(kept)} of {tried} attempts")
    return kept


def add_statements(rows: list[dict[str, Any]], engine_spec: str | None) -> None:
    texts: list[str | None] = [None] * len(rows)
    if engine_spec:
        from synthesizers.engines.factory import make_engine

        engine = make_engine(engine_spec)
        items = [{"project": r["project"], "version": r["version"], "f2p": r["FAIL_TO_PASS"],
                  "messages": r["_messages"], "before": r["_before"], "after": r["_after"]} for r in rows]

        async def go() -> list[str | None]:
            try:
                return await llm_statements(engine, items)
            finally:
                await engine.close()

        texts = asyncio.run(go())
    for row, text in zip(rows, texts):
        row["problem_statement"] = text or template_statement(row["project"], row["version"], row["FAIL_TO_PASS"],
                                                              row["_messages"])
        row["statement_source"] = "llm" if text else "template"


def write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    table = pa.Table.from_pylist([{f: UNCHECKED[f] if f in UNCHECKED else r[f] for f in FIELDS} for r in rows],
                                 schema=SCHEMA)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def instance_to_task(row: dict[str, Any]) -> Task:
    spec = json.loads(row["project_spec"]) if isinstance(row["project_spec"], str) else row["project_spec"]
    payload = {"project": spec, "bug_patch": row["bug_patch"], "FAIL_TO_PASS": list(row["FAIL_TO_PASS"]),
               "PASS_TO_PASS": list(row["PASS_TO_PASS"]), "problem_statement": row["problem_statement"],
               "instance_id": row["instance_id"]}
    return Task(id=f"code-{row['instance_id']}", domain="code", kind="repo",
                source=f"mutation:{row['mutation_kind']}", payload=payload)


def build(out: Path, target: int, *, projects: list[str] | None = None, seed: int = 0, workers: int = 2,
          llm: str | None = None, max_attempts: int | None = None, config: str | None = None,
          collect_only: bool = False, bug_kinds: tuple[str, ...] = ()) -> dict[str, Any]:
    """Validate until ``target`` instances (or the projects run dry), then write the Parquet;
    ``collect_only`` writes it from the attempts recorded so far and runs nothing new."""
    from synthesizers.domains.code.projects import fetch, load_projects

    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    specs = load_projects(config, projects)
    for spec in specs:
        fetch(spec)
    quota = math.ceil(target / len(specs))
    attempts_cap = max_attempts or quota * 6
    results: dict[str, list[dict[str, Any]]] = {
        s.name: [r["row"] for r in load_attempts(_attempts_path(out, s)).values() if r.get("row")] for s in specs}
    for _round in range(0 if collect_only else 3):  # later rounds raise the quota of projects with bugs left
        with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
            futures = {s.name: ex.submit(validate_project, s, quota, seed=seed, out=out, max_attempts=attempts_cap,
                                         bug_kinds=tuple(bug_kinds)) for s in specs}
            results = {name: f.result() for name, f in futures.items()}
        short = target - sum(len(v) for v in results.values())
        if short <= 0:
            break
        quota += math.ceil(short / len(specs)) + 1
        attempts_cap += quota * 3
    rows = [r for s in specs for r in results[s.name]]
    add_statements(rows, llm)
    write_parquet(rows, out / "instances.parquet")
    took = time.monotonic() - started
    attempts = sum(len(load_attempts(_attempts_path(out, s))) for s in specs)
    report = {"instances": len(rows), "target": target, "attempts": attempts, "seconds": round(took, 1),
              "per_project": {s.name: len(results[s.name]) for s in specs},
              "statements": {k: sum(r["statement_source"] == k for r in rows) for k in ("llm", "template")},
              "path": str(out / "instances.parquet")}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m synthesizers.domains.code.instances", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".cache/code/instances")
    ap.add_argument("--target", type=int, default=200)
    ap.add_argument("--project", action="append", help="only these projects (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="projects validated in parallel (one sandbox each)")
    ap.add_argument("--llm", default=None, help="engine for problem statements (embedded | model dir | URL)")
    ap.add_argument("--max-attempts", type=int, default=None, help="mutants tried per project per round")
    ap.add_argument("--config", default=None, help="project list (default configs/code-projects.yaml)")
    ap.add_argument("--bug-kind", action="append", default=[], help="only mutations of this kind (repeatable)")
    ap.add_argument("--collect", action="store_true",
                    help="only write instances.parquet from the attempts so far (no new validation)")
    args = ap.parse_args(argv)
    try:
        report = build(Path(args.out), args.target, projects=args.project, seed=args.seed, workers=args.workers,
                       llm=args.llm, max_attempts=args.max_attempts, config=args.config,
                       collect_only=args.collect, bug_kinds=tuple(args.bug_kind))
    except Exception as exc:  # noqa: BLE001 - one clear line for the user
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0 if report["instances"] >= args.target else 2


if __name__ == "__main__":
    sys.exit(main())
