"""N-gram decontamination against held-out benchmark text (a stage for every domain).

A trajectory is contaminated when its task or its conversation shares at least
``min_hits`` word ``ngram``-grams (default 13, the GPT-3 convention) with any
benchmark text. Text is compared as lowercase alphanumeric words, so
punctuation, case and spacing do not hide a copy. Benchmark texts shorter than
``ngram`` words (but at least ``min_words``) count when they occur whole.
System prompts are not checked (shared boilerplate, not data).
The task level: a task field that is a benchmark task (whole, of at least
``MIN_TASK_WORDS`` words, or such a short task inside the field) is a hit, so a
paraphrased trajectory of a benchmark task is caught by its task. Seed tasks are
checked the same way before a run starts (``benchmark_seeds``).

Benchmarks are the shipped ones of the domain's field (``pipelines.benchmarks``,
``DecontamConfig.benchmarks``) plus files (``.txt`` one text a line, ``.jsonl``/``.json``/
``.parquet``/``.csv`` with ``fields``) or ``datasets`` datasets (hub name or a
``save_to_disk`` folder), listed in ``DecontamConfig.sources``. The benchmark
n-grams become one sorted hash array that Ray tasks check chunks of
trajectories against (in process when Ray is not running). Every removal is
listed (trajectory, task, benchmark, where, the matching n-gram) for the report.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from pipelines.config import ConfigError
from schemas import Trajectory

_WORD = re.compile(r"[a-z0-9]+")
_PRIME = np.uint64(0x100000001B3)
# A task field that equals a benchmark task whole is that task, even when short (MMATH has
# 4-word problems); under 4 words a whole match is too generic to mean anything.
MIN_TASK_WORDS = 4


class DecontamError(ConfigError):
    """A benchmark source cannot be read; one line for the user."""


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def gram_hashes(tokens: list[str], n: int) -> np.ndarray:
    """64-bit hashes of every ``n``-gram of ``tokens`` (empty when there are fewer than n)."""
    if len(tokens) < n:
        return np.zeros(0, dtype=np.uint64)
    w = np.array([zlib.crc32(t.encode()) | (len(t) << 32) for t in tokens], dtype=np.uint64)
    h = np.zeros(len(w) - n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * _PRIME + w[k : len(w) - n + 1 + k]
    return h


def _lookup(sorted_hashes: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions in ``hashes`` found in ``sorted_hashes``, their positions there)."""
    if not len(hashes) or not len(sorted_hashes):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    pos = np.searchsorted(sorted_hashes, hashes).clip(max=len(sorted_hashes) - 1)
    found = np.nonzero(sorted_hashes[pos] == hashes)[0]
    return found, pos[found]


def _table(parts: list[np.ndarray], owners: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique hashes and the benchmark of each (the first that had it)."""
    if not parts:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int32)
    grams, first = np.unique(np.concatenate(parts), return_index=True)
    return grams, np.concatenate(owners)[first]


@dataclass
class BenchmarkIndex:
    """Three tables, all of 64-bit word-sequence hashes:
    ``grams``: every ``n``-gram of every benchmark text (tasks and solutions);
    ``short``: whole benchmark texts of ``min_words`` to ``n - 1`` words, found anywhere in a text;
    ``tasks``: whole benchmark task texts of at least ``MIN_TASK_WORDS`` words, matched against
    a whole task field (the task level: a seed that *is* a benchmark item, however short)."""

    n: int
    grams: np.ndarray  # sorted unique uint64
    owners: np.ndarray  # benchmark index of each gram (first seen)
    short: dict[int, tuple[np.ndarray, np.ndarray]]  # length -> (sorted hashes, owners)
    tasks: tuple[np.ndarray, np.ndarray]  # (sorted whole-task hashes, owners)
    names: list[str]
    texts_per_benchmark: dict[str, int] = field(default_factory=dict)
    min_words: int = 8

    @classmethod
    def build(cls, sources: list[tuple[str, Iterable[str | tuple[str, str, str]]]], n: int = 13,
              min_words: int = 8) -> "BenchmarkIndex":
        """``sources``: (name, texts) where a text is a string or an item (id, task text, full text)."""
        grams, gram_owners, tasks, task_owners, counts = [], [], [], [], {}
        short: dict[int, tuple[list, list]] = {}
        for index, (name, texts) in enumerate(sources):
            count = 0
            for text in texts:
                task_text, full = (text, text) if isinstance(text, str) else (text[1], text[2])
                count += 1
                task_tokens = words(task_text)
                if len(task_tokens) >= MIN_TASK_WORDS:
                    tasks.append(gram_hashes(task_tokens, len(task_tokens)))
                    task_owners.append(np.full(1, index, dtype=np.int32))
                for tokens in ([task_tokens, words(full)] if full != task_text else [task_tokens]):
                    if len(tokens) >= n:
                        hashes = gram_hashes(tokens, n)
                        grams.append(hashes)
                        gram_owners.append(np.full(len(hashes), index, dtype=np.int32))
                    elif len(tokens) >= min_words:
                        hashes_owners = short.setdefault(len(tokens), ([], []))
                        hashes_owners[0].append(gram_hashes(tokens, len(tokens)))
                        hashes_owners[1].append(np.full(1, index, dtype=np.int32))
            counts[name] = count
        grams_sorted, owners = _table(grams, gram_owners)
        return cls(n, grams_sorted, owners, {length: _table(*parts) for length, parts in sorted(short.items())},
                   _table(tasks, task_owners), [name for name, _ in sources], counts, min_words)

    def __len__(self) -> int:
        return len(self.grams) + sum(len(h) for h, _ in self.short.values()) + len(self.tasks[0])

    def without(self, drop: set[str]) -> "BenchmarkIndex":
        """The index less the named benchmarks (seed sources a run was allowed to train on)."""
        keep = np.array([name not in drop for name in self.names] or [True])

        def sub(table: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            mask = keep[table[1]] if len(table[1]) else np.zeros(0, dtype=bool)
            return table[0][mask], table[1][mask]

        grams, owners = sub((self.grams, self.owners))
        counts = {k: v for k, v in self.texts_per_benchmark.items() if k not in drop}
        return BenchmarkIndex(self.n, grams, owners, {k: sub(v) for k, v in self.short.items()}, sub(self.tasks),
                              self.names, counts, self.min_words)

    def task_item(self, text: str) -> tuple[str, str] | None:
        """(benchmark, item text) when the task field ``text`` is a benchmark task: whole, or a
        short one (under ``min_words``) inside it, as an item wrapped in an instruction."""
        tokens = words(text)
        if len(tokens) < MIN_TASK_WORDS:
            return None
        for length in [len(tokens), *range(MIN_TASK_WORDS, min(self.min_words, len(tokens)))]:
            found, pos = _lookup(self.tasks[0], gram_hashes(tokens, length))
            if len(found):
                first = int(found[0])
                return self.names[int(self.tasks[1][pos[0]])], " ".join(tokens[first : first + length])
        return None

    def hit(self, text: str, min_hits: int = 1) -> tuple[str, str] | None:
        """(benchmark name, matching text) of the first n-gram or short-text hit in ``text``, or None."""
        tokens = words(text)
        found, pos = _lookup(self.grams, gram_hashes(tokens, self.n))
        if len(found) and len(found) >= min_hits:
            first = int(found[0])
            return self.names[int(self.owners[pos[0]])], " ".join(tokens[first : first + self.n])
        for length, (hashes, owners) in self.short.items():
            found, pos = _lookup(hashes, gram_hashes(tokens, length))
            if len(found):
                first = int(found[0])
                return self.names[int(owners[pos[0]])], " ".join(tokens[first : first + length])
        return None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def task_hit(payload: dict, index: BenchmarkIndex, min_hits: int = 1) -> tuple[str, str] | None:
    """The task level: a field that is a benchmark task whole, or n-gram overlap of the task's text."""
    texts = list(_strings(payload))
    for text in texts:
        if found := index.task_item(text):
            return found
    return index.hit("\n".join(texts), min_hits)


def check(trajectory: Trajectory, index: BenchmarkIndex, where: list[str], min_hits: int) -> dict | None:
    """A removal record when ``trajectory`` is contaminated, else None. The task is checked first:
    a paraphrased trajectory of a benchmark task is still caught by its task."""
    for place in ("task", "trajectory"):
        if place not in where:
            continue
        if place == "task":
            if trajectory.task is None:
                continue
            found = task_hit(trajectory.task.payload, index, min_hits)
        else:
            found = index.hit("\n".join(m.content for m in trajectory.messages if m.role != "system"), min_hits)
        if found:
            return {"id": trajectory.id, "task_id": trajectory.task_id, "benchmark": found[0], "where": place,
                    "match": found[1][:200]}
    return None


def _check_chunk(trajectories: list[Trajectory], index: BenchmarkIndex, where: list[str], min_hits: int) -> list[dict]:
    return [hit for t in trajectories if (hit := check(t, index, where, min_hits)) is not None]


@dataclass
class DecontamResult:
    kept: list[Trajectory]
    removed: list[dict] = field(default_factory=list)
    benchmarks: dict[str, int] = field(default_factory=dict)

    def summary(self, benchmark_seeds: dict | None = None) -> dict:
        """What the manifest records: benchmarks checked (texts each), removals per benchmark, and
        the benchmarks the run was allowed to seed from (not checked: trained on by choice)."""
        report = self.report(0)
        return {"checked": report["benchmarks"], "hits": report["hits_per_benchmark"],
                "benchmark_seeds": dict(benchmark_seeds or {})}

    def report(self, n: int, **extra) -> dict:
        """``benchmarks``: texts indexed per benchmark checked; ``hits_per_benchmark``: removals."""
        per = {name: 0 for name in self.benchmarks}
        for hit in self.removed:
            per[hit["benchmark"]] = per.get(hit["benchmark"], 0) + 1
        return {"ngram": n, "benchmarks": self.benchmarks, "hits_per_benchmark": per,
                "removed": len(self.removed), "hits": self.removed, **extra}


def decontaminate(
    trajectories: list[Trajectory], index: BenchmarkIndex, *, where: list[str] = ("task", "trajectory"),
    min_hits: int = 1, chunk_size: int = 256, use_ray: bool | None = None,
) -> DecontamResult:
    chunks = [trajectories[i : i + chunk_size] for i in range(0, len(trajectories), chunk_size)]
    if not len(index) or not trajectories:
        return DecontamResult(kept=list(trajectories), benchmarks=index.texts_per_benchmark)
    if use_ray is None:
        import ray

        use_ray = ray.is_initialized() and len(chunks) > 1
    if use_ray:
        import ray

        ref = ray.put(index)  # one copy in the object store, shared by every task
        remote = ray.remote(_check_chunk)
        hits = [h for part in ray.get([remote.remote(c, ref, list(where), min_hits) for c in chunks]) for h in part]
    else:
        hits = [h for c in chunks for h in _check_chunk(c, index, list(where), min_hits)]
    gone = {h["id"] for h in hits}
    return DecontamResult(
        kept=[t for t in trajectories if t.id not in gone],
        removed=sorted(hits, key=lambda h: h["id"]),
        benchmarks=index.texts_per_benchmark,
    )


# ---- benchmark sources -----------------------------------------------------


def _rows(source: Any) -> Iterable[dict]:
    import datasets

    if source.path:
        path = Path(source.path).expanduser()
        if not path.is_file():
            raise DecontamError(f"decontamination benchmark file not found: {path} (fix decontam.sources[].path)")
        if path.suffix == ".txt":
            return ({"text": line} for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
        kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(path.suffix)
        if kind is None:
            raise DecontamError(f"decontamination benchmark {path}: use .txt, .jsonl, .json, .parquet or .csv")
        return datasets.load_dataset(kind, data_files=str(path), split="train")
    local = Path(str(source.dataset)).expanduser()
    if local.is_dir():
        loaded = datasets.load_from_disk(str(local))
        return loaded[source.split] if isinstance(loaded, datasets.DatasetDict) else loaded
    return datasets.load_dataset(source.dataset, source.config, split=source.split)


def shipped_sources(config: Any, domain: str | None) -> list[str]:
    """The shipped benchmarks a run checks: ``decontam.benchmarks``, or its domain's field."""
    from pipelines.benchmarks import field_benchmarks

    if not config.enabled:
        return []
    return list(config.benchmarks) if config.benchmarks is not None else list(field_benchmarks(domain or ""))


def _shipped_items(name: str) -> list:
    from pipelines.benchmarks import BenchmarkMissing, get_benchmark

    try:
        return get_benchmark(name).items()
    except KeyError as exc:
        raise DecontamError(f"{exc.args[0]} (fix decontam.benchmarks)") from None
    except BenchmarkMissing as exc:
        raise DecontamError(str(exc)) from None
    except Exception as exc:  # a package whose files changed shape
        raise DecontamError(f"benchmark {name} could not be read: {type(exc).__name__}: {str(exc)[:160]}") from None


def load_index(config: Any, domain: str | None = None) -> BenchmarkIndex:
    """The benchmark index of a ``DecontamConfig``: the shipped benchmarks of ``domain``'s field
    (or ``config.benchmarks``) plus ``config.sources`` (empty when disabled)."""
    sources: list[tuple[str, list]] = [(name, _shipped_items(name)) for name in shipped_sources(config, domain)]
    for i, source in enumerate(config.sources if config.enabled else []):
        name = source.name or Path(str(source.path or source.dataset)).stem or f"benchmark-{i}"
        try:
            rows = _rows(source)
            fields = ["text"] if source.path and str(source.path).endswith(".txt") else source.fields
            if missing := [f for f in fields if f not in getattr(rows, "column_names", fields)]:
                raise DecontamError(f"decontamination benchmark {name} has no field(s) {missing} (fix decontam.sources[].fields)")
            # The first field is the task (question, prompt); the others are checked as text.
            texts = [(f"{name}-{k}", str(row.get(fields[0]) or ""),
                      "\n".join(str(row[f]) for f in fields if row.get(f) is not None)) for k, row in enumerate(rows)]
        except DecontamError:
            raise
        except KeyError as exc:
            raise DecontamError(f"decontamination benchmark {name}: no field {exc} (fix decontam.sources[].fields)") from None
        except Exception as exc:
            raise DecontamError(f"decontamination benchmark {name} could not be read: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}") from None
        sources.append((name, texts))
    return BenchmarkIndex.build(sources, n=config.ngram, min_words=config.min_words)


def benchmark_seeds(tasks: list, index: BenchmarkIndex, *, allow: bool, min_hits: int = 1,
                    where: Iterable[str] = ("task", "trajectory")) -> tuple[BenchmarkIndex, dict]:
    """Seed tasks that are benchmark items. Refused in one line unless ``allow``; allowed, those
    benchmarks leave the index (the run trains on them by choice) and the counts go to the manifest.
    A run that does not check tasks (``decontam.check: [trajectory]``) is not refused: its
    trajectories, which hold the task's text in the user turn, are removed instead."""
    found: dict[str, dict] = {}
    for task in (tasks if "task" in where else []):
        if hit := task_hit(task.payload, index, min_hits):
            entry = found.setdefault(hit[0], {"tasks": 0, "sources": set()})
            entry["tasks"] += 1
            entry["sources"].add(str(task.source or "?"))
    seeds = {name: {"tasks": e["tasks"], "sources": sorted(e["sources"])} for name, e in sorted(found.items())}
    if seeds and not allow:
        def named(sources: list[str]) -> str:  # a long list would not read as one line
            return ", ".join(sources[:3]) + (f" and {len(sources) - 3} more" if len(sources) > 3 else "")

        what = "; ".join(f"{e['tasks']} of {len(tasks)} from {named(e['sources'])} are {name} items"
                         for name, e in seeds.items())
        raise DecontamError(f"seed tasks are benchmark items ({what}): drop that seed source, or set "
                            "allow_benchmark_seeds: true to train on the benchmark (the manifest records it)")
    return (index.without(set(seeds)) if seeds else index), seeds
