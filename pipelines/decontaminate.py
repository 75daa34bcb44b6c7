"""N-gram decontamination against held-out benchmark text (a stage for every domain).

A trajectory is contaminated when its task or its conversation shares at least
``min_hits`` word ``ngram``-grams (default 13, the GPT-3 convention) with any
benchmark text. Text is compared as lowercase alphanumeric words, so
punctuation, case and spacing do not hide a copy. Benchmark texts shorter than
``ngram`` words (but at least ``min_words``) count when they occur whole.
System prompts are not checked (shared boilerplate, not data).

Benchmarks come from files (``.txt`` one text a line, ``.jsonl``/``.json``/
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


@dataclass
class BenchmarkIndex:
    n: int
    grams: np.ndarray  # sorted unique uint64
    owners: np.ndarray  # benchmark index of each gram (first seen)
    short: dict[str, int]  # whole short texts (" w1 w2 ... ") -> benchmark index
    names: list[str]
    texts_per_benchmark: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, sources: list[tuple[str, Iterable[str]]], n: int = 13, min_words: int = 8) -> "BenchmarkIndex":
        parts, owners, short, counts = [], [], {}, {}
        for index, (name, texts) in enumerate(sources):
            count = 0
            for text in texts:
                tokens = words(text)
                count += 1
                if len(tokens) >= n:
                    hashes = gram_hashes(tokens, n)
                    parts.append(hashes)
                    owners.append(np.full(len(hashes), index, dtype=np.int32))
                elif len(tokens) >= min_words:
                    short.setdefault(" " + " ".join(tokens) + " ", index)
            counts[name] = count
        grams = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
        own = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int32)
        grams, first = np.unique(grams, return_index=True)
        return cls(n, grams, own[first], short, [name for name, _ in sources], counts)

    def __len__(self) -> int:
        return len(self.grams) + len(self.short)

    def hit(self, text: str, min_hits: int = 1) -> tuple[str, str] | None:
        """(benchmark name, matching text) of the first hit in ``text``, or None."""
        tokens = words(text)
        hashes = gram_hashes(tokens, self.n)
        if len(hashes) and len(self.grams):
            pos = np.searchsorted(self.grams, hashes).clip(max=len(self.grams) - 1)
            found = np.nonzero(self.grams[pos] == hashes)[0]
            if len(found) >= min_hits:
                first = int(found[0])
                return self.names[int(self.owners[pos[first]])], " ".join(tokens[first : first + self.n])
        if self.short:
            joined = " " + " ".join(tokens) + " "
            for phrase, owner in self.short.items():
                if phrase in joined:
                    return self.names[owner], phrase.strip()
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


def check(trajectory: Trajectory, index: BenchmarkIndex, where: list[str], min_hits: int) -> dict | None:
    """A removal record when ``trajectory`` is contaminated, else None."""
    views = []
    if "task" in where and trajectory.task is not None:
        views.append(("task", "\n".join(_strings(trajectory.task.payload))))
    if "trajectory" in where:
        views.append(("trajectory", "\n".join(m.content for m in trajectory.messages if m.role != "system")))
    for place, text in views:
        found = index.hit(text, min_hits)
        if found:
            return {"id": trajectory.id, "task_id": trajectory.task_id, "benchmark": found[0], "where": place, "match": found[1][:200]}
    return None


def _check_chunk(trajectories: list[Trajectory], index: BenchmarkIndex, where: list[str], min_hits: int) -> list[dict]:
    return [hit for t in trajectories if (hit := check(t, index, where, min_hits)) is not None]


@dataclass
class DecontamResult:
    kept: list[Trajectory]
    removed: list[dict] = field(default_factory=list)
    benchmarks: dict[str, int] = field(default_factory=dict)

    def report(self, n: int) -> dict:
        return {"ngram": n, "benchmarks": self.benchmarks, "removed": len(self.removed), "hits": self.removed}


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


def load_index(config: Any) -> BenchmarkIndex:
    """The benchmark index of a ``DecontamConfig`` (empty when disabled or without sources)."""
    sources = []
    for i, source in enumerate(config.sources if config.enabled else []):
        name = source.name or Path(str(source.path or source.dataset)).stem or f"benchmark-{i}"
        try:
            rows = _rows(source)
            fields = ["text"] if source.path and str(source.path).endswith(".txt") else source.fields
            if missing := [f for f in fields if f not in getattr(rows, "column_names", fields)]:
                raise DecontamError(f"decontamination benchmark {name} has no field(s) {missing} (fix decontam.sources[].fields)")
            texts = ["\n".join(str(row[f]) for f in fields if row.get(f) is not None) for row in rows]
        except DecontamError:
            raise
        except KeyError as exc:
            raise DecontamError(f"decontamination benchmark {name}: no field {exc} (fix decontam.sources[].fields)") from None
        except Exception as exc:
            raise DecontamError(f"decontamination benchmark {name} could not be read: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}") from None
        sources.append((name, texts))
    return BenchmarkIndex.build(sources, n=config.ngram, min_words=config.min_words)
