"""`trajforge verify`: re-verify any dataset in DESIGN.md's verify format.

Input, one JSON object a line: ``{"id", "domain", "task": {...}, "messages": [...]}``, optionally
``"stop_reason"`` (what ended the rollout: a pass the budget cut short fails, as in a run;
``verifiers.base.judge_finish``).
Output, one line each: ``{"id", "passed", "score", "reason"}`` in input order.
A malformed line gets ``passed: false`` with the reason and the run goes on;
the output file appears only when complete (atomic write).

Sandboxed rows run in the image a run gives the task
(``synthesizers.rollout_spec.sandbox_for``: a repo-level code task runs in its
project's image, test deps baked in), one pool per image, made on first use;
other rows in the base image. A task whose image cannot be made fails with
the reason; the other rows go on. Verdicts are the pipeline's: the same
verifiers behind the same repetition gate (``pipelines.worker.make_verifier``),
with default domain options, or with ``config`` (a run or mixture config) the
options, verifier settings and sandbox limits a run of it judges with
(``pipelines.verify_judging``).
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pipelines.atomic import write_text
from pipelines.config import SandboxConfig
from pipelines.verify_judging import Judging, default_judging, judging_from_config
from pipelines.worker import ImagePools, make_verifier
from sandboxes.image import ensure_image
from schemas import Message, Task, Verdict, messages_from_openai
from synthesizers.agent_loop import STOP_REASONS
from synthesizers.rollout_spec import image_of, sandbox_for
from verifiers.base import judge_finish
from verifiers.registry import infer_kind


@dataclass
class VerifySummary:
    total: int = 0
    passed: int = 0
    failed: int = 0
    bad_rows: int = 0


@dataclass(frozen=True)
class Row:
    id: str
    task: Task
    messages: list[Message]
    stop_reason: str | None = None


@dataclass(frozen=True)
class BadRow:
    id: str
    error: str


def _parse(line: str, lineno: int) -> Row:
    row = json.loads(line)
    if not isinstance(row, dict):
        raise ValueError("line is not a JSON object")
    for key in ("domain", "task", "messages"):
        if key not in row:
            raise ValueError(f"missing field {key!r}")
    if not isinstance(row["task"], dict):
        raise ValueError("task must be an object")
    stop_reason = row.get("stop_reason")
    if stop_reason is not None and stop_reason not in STOP_REASONS:
        raise ValueError(f"stop_reason must be one of {', '.join(STOP_REASONS)}, not {stop_reason!r}")
    row_id = str(row.get("id", f"line-{lineno}"))
    domain = row["domain"]
    task = Task(id=row_id, domain=domain, kind=infer_kind(domain, row["task"]), payload=row["task"])
    return Row(row_id, task, messages_from_openai(row["messages"]), stop_reason)


def verify_file(
    input_path: Path,
    output_path: Path,
    *,
    workers: int = 4,
    sandbox_pool_factory: Callable[[str], Any] | None = None,
    on_row: Callable[[], None] = lambda: None,
    config: Path | None = None,
) -> VerifySummary:
    input_path = Path(input_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"input file not found: {input_path} (pass a JSONL file with --input)")
    configured = judging_from_config(config) if config is not None else {}

    def judging(domain: str) -> Judging:
        return configured.get(domain) or default_judging(domain)

    lines = [line for line in input_path.read_text().splitlines() if line.strip()]
    parsed: list[Row | BadRow] = []
    for n, line in enumerate(lines, 1):
        try:
            parsed.append(_parse(line, n))
        except Exception as exc:
            parsed.append(BadRow(_loose_id(line, n), f"bad input on line {n}: {type(exc).__name__}: {exc}"))
    pools_by_domain: dict[str, ImagePools] = {}
    pools_lock = threading.Lock()

    def pools_for(domain: str) -> ImagePools:
        """Per domain, so each judges under the limits of its own runs (``pipelines.sandbox_pool``)."""
        with pools_lock:
            if domain not in pools_by_domain:
                factory = sandbox_pool_factory or _pool_factory(judging(domain).sandbox)
                pools_by_domain[domain] = ImagePools(ensure_image, factory)
            return pools_by_domain[domain]

    def judge(row: Row | BadRow) -> Verdict:
        try:
            if isinstance(row, BadRow):
                return Verdict(passed=False, reason=row.error)
            task, how = row.task, judging(row.task.domain)
            verifier = make_verifier(task.domain, task.kind, domain=how.domain, judge=judges.get(task.domain),
                                     options=how.options, repetition=how.repetition)
            if verifier.needs_sandbox:
                with pools_for(task.domain).pool_for(image_of(sandbox_for(how.domain, task))).acquire() as box:
                    verdict = verifier.verify(task, row.messages, box)
            else:
                verdict = verifier.verify(task, row.messages, None)
            return judge_finish(verdict, row.stop_reason)
        except Exception as exc:
            return Verdict(passed=False, reason=f"{type(exc).__name__}: {exc}")
        finally:
            on_row()

    judges: dict[str, Any] = {}  # the LLM judges a config asks for (pipelines.judge; never the default)
    try:
        for name, how in configured.items():
            if how.judge:
                from pipelines.judge import judge_from_config  # an engine client: only when asked

                judges[name] = judge_from_config(how.judge)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
            verdicts = list(ex.map(judge, parsed))
    finally:
        for pools in pools_by_domain.values():
            pools.close()
        for llm_judge in judges.values():
            llm_judge.close()
    summary = VerifySummary(total=len(parsed))
    out_lines = []
    for row, verdict in zip(parsed, verdicts):
        summary.passed += verdict.passed
        summary.bad_rows += isinstance(row, BadRow)
        out_lines.append(json.dumps({"id": row.id, "passed": verdict.passed, "score": verdict.score, "reason": verdict.reason}))
    summary.failed = summary.total - summary.passed
    write_text(Path(output_path), "\n".join(out_lines) + ("\n" if out_lines else ""))
    return summary


def _loose_id(line: str, n: int) -> str:
    try:
        return str(json.loads(line).get("id", f"line-{n}"))
    except Exception:
        return f"line-{n}"


def _pool_factory(sandbox: SandboxConfig) -> Callable[[str], Any]:
    from pipelines.sandbox_pool import make_pool

    return lambda image: make_pool(sandbox, image)
