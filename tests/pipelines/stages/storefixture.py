"""A small store with everything the post-rollout chain must sort out: passed and failed,
infrastructure failures, branches, a benchmark copy, exact and near duplicates across units."""

from __future__ import annotations

import random
from pathlib import Path

from pipelines.config import RunConfig
from pipelines.decontaminate import BenchmarkIndex
from pipelines.store import TrajectoryStore
from schemas import Message, Task, Trajectory, Verdict

BENCH_Q = ("A farmer has seventeen sheep and all but nine run away through a gap in the old stone wall; "
           "how many sheep does the farmer still have left in the field")
WORDS = [f"w{i}" for i in range(400)]


def _traj(tid: str, question: str, answer: str, *, passed: bool = True, infra: bool = False,
          parent: str | None = None) -> Trajectory:
    task = Task(id=f"task-{tid.split('.')[0]}", domain="math", payload={"question": question, "answer": "9"})
    verdict = Verdict(passed=passed, score=float(passed), cause="infrastructure" if infra else "model")
    return Trajectory(id=tid, task_id=task.id, domain="math", task=task, verdict=verdict, parent_id=parent,
                      messages=[Message(role="user", content=question), Message(role="assistant", content=answer)])


def make_store(run_dir: Path, units: int = 7, per_unit: int = 6, seed: int = 3) -> list[Trajectory]:
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(60)) for _ in range(units * per_unit)]
    # Exact copies (case and spacing differ) and near copies (one word changed), in other units.
    texts[per_unit + 1] = "  " + texts[0].upper()
    texts[3 * per_unit + 2] = texts[0]
    near = texts[2].split()
    near[30] = "changed"
    texts[5 * per_unit] = " ".join(near)
    everything: list[Trajectory] = []
    store = TrajectoryStore(run_dir)
    for u in range(units):
        batch = []
        for k in range(per_unit):
            i = u * per_unit + k
            batch.append(_traj(f"t{i:03d}", f"question number {i}", texts[i], passed=(i % 5 != 4), infra=(i % 11 == 10)))
        batch.append(_traj(f"t{u * per_unit + 4:03d}.b1", f"question number {u * per_unit + 4}",
                           texts[u * per_unit + 4] + " then a branch", parent=f"t{u * per_unit + 4:03d}"))
        if u == 2:
            batch.append(_traj("bench-copy", BENCH_Q, "All but nine ran away, so nine are left."))
        store.write_unit(f"u{u:02d}", batch)
        everything.extend(batch)
    return everything


def bench_index() -> BenchmarkIndex:
    return BenchmarkIndex.build([("bench", [BENCH_Q])], n=13, min_words=8)


def chain_config(**shards) -> RunConfig:
    return RunConfig.model_validate({"domain": "math", "dedupe": {"chunk_size": 10, "threshold": 0.8},
                                     "shards": {"rows_per_shard": 4, **shards}})
