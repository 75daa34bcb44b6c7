"""Material for the rewrite path: plain chain-of-thought rows and stored trajectories.

* ``cot_rows``: a ``datasets`` dataset (hub name or a local JSONL/JSON/Parquet
  file; default the small sample shipped in ``data/``) with question, answer
  and solution columns. Each row becomes an underlying *math* task (so the math
  verifier judges the rewritten answer) plus the text to reorganize.
* ``store_rows``: passed trajectories of another run folder (its
  ``trajectories/unit-*.parquet``); the underlying task is the stored task and
  the text to reorganize is the transcript (assistant turns and tool results).

Both yield ``(inner_task, source_text, source_messages)`` (messages only for stored
trajectories: the verifier judges a rewrite's summary against the original's
evidence, e.g. the documents a deep-research run retrieved); malformed rows are skipped.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

from schemas import Message, Task

SAMPLE = Path(__file__).resolve().parent / "data" / "plain_cot_sample.jsonl"
DATASET_KEYS = {"path", "split", "config", "question_field", "answer_field", "solution_field", "domain"}


def _load(path: str, split: str, config: str | None):
    import datasets

    local = Path(path).expanduser()
    if local.is_file():
        kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(local.suffix)
        if kind is None:
            raise ValueError(f"agentic-cot dataset {path}: unsupported file type {local.suffix!r}")
        return datasets.load_dataset(kind, data_files=str(local), split="train")
    if local.is_dir() and any((local / f).exists() for f in ("dataset_info.json", "dataset_dict.json")):
        loaded = datasets.load_from_disk(str(local))
        return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
    return datasets.load_dataset(path, config, split=split)


def cot_rows(spec: dict[str, Any] | None) -> Iterator[tuple[Task, str, None]]:
    spec = dict(spec or {})
    if unknown := sorted(set(spec) - DATASET_KEYS):
        raise ValueError(f"agentic-cot dataset: unknown keys {unknown}; known: {sorted(DATASET_KEYS)}")
    path = str(spec.get("path") or SAMPLE)
    qf, af, sf = (spec.get(k, d) for k, d in (("question_field", "question"), ("answer_field", "answer"), ("solution_field", "solution")))
    domain = spec.get("domain", "math")
    table = _load(path, spec.get("split", "train"), spec.get("config"))
    missing = [f for f in (qf, af, sf) if f not in table.column_names]
    if missing:
        raise ValueError(f"agentic-cot dataset {path} lacks column(s) {missing} (has {table.column_names})")
    label = Path(path).name
    for index, row in enumerate(table):
        question, answer, solution = row.get(qf), row.get(af), row.get(sf)
        if not (isinstance(question, str) and question.strip() and isinstance(solution, str) and solution.strip()):
            continue
        if answer is None or isinstance(answer, bool) or not str(answer).strip():
            continue
        digest = hashlib.sha256(f"{question}\0{answer}".encode()).hexdigest()[:10]
        inner = Task(
            id=f"{domain}-cot-{index}-{digest}",
            domain=domain,
            source=f"dataset:{label}",
            payload={"question": question.strip(), "answer": str(answer).strip().strip("$").strip()},
        )
        yield inner, solution.strip(), None


def transcript(messages: list[Message]) -> str:
    """The solution side of a stored conversation, as plain text for a rewrite prompt."""
    lines = []
    for m in messages:
        if m.role == "assistant":
            if m.content.strip():
                lines.append(m.content.strip())
            for call in m.tool_calls:
                lines.append(f"[calls {call.function.name} with {call.function.arguments}]")
        elif m.role == "tool":
            lines.append(f"[tool result]\n{m.content.strip()}")
    return "\n".join(lines)


def store_rows(spec: dict[str, Any] | str) -> Iterator[tuple[Task, str, list[dict]]]:
    import pyarrow.parquet as pq

    from schemas import table_to_trajectories

    spec = {"path": spec} if isinstance(spec, str) else dict(spec)
    folder = Path(str(spec.get("path", ""))).expanduser() / "trajectories"
    files = sorted(folder.glob("unit-*.parquet"))
    if not files:
        raise ValueError(f"agentic-cot store {folder} holds no trajectories (run that domain first)")
    include_failed = spec.get("include", "passed") == "all"
    for file in files:
        for traj in table_to_trajectories(pq.read_table(file)):
            if traj.task is None or traj.domain == "agentic-cot":
                continue  # nothing to verify against, or already five-phase
            if not include_failed and not (traj.verdict and traj.verdict.passed):
                continue
            text = transcript(traj.messages)
            if text:
                yield traj.task, text, [m.model_dump() for m in traj.messages]
