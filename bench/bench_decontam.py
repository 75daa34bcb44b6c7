"""Decontamination against the shipped benchmarks (``pipelines.benchmarks``): recall on planted
benchmark items at the task level, false hits on clean text, texts per second per core.

Planted: every item of every shipped benchmark becomes a seed task the way a dataset copies it
(verbatim; case, spacing and punctuation changed; LaTeX dollars dropped; wrapped in an
instruction), and its trajectory is the model's own words (the item's words shuffled, so no
13-gram survives): only the task can catch it. Items under 4 words ("Who are you?", "hi", 36
empty BFCL turns) identify nothing and are reported apart. Clean: the 10,033 Wikipedia summaries
of the deep-research corpus as trajectories, plus the seed tasks of math (generated, mixed
difficulty), tool use (files, calls) and 2,000 more generated math tasks, each checked against
*every* shipped benchmark at once (the worst case; a run checks only its field's).
Speed: the in-process check (one core, no Ray) of the clean trajectories.
"""

from __future__ import annotations

import random
import re
import time

PERTURB = ("verbatim", "case+spacing", "no-latex", "wrapped")


def _perturb(text: str, kind: str, rng: random.Random) -> str:
    if kind == "case+spacing":
        return re.sub(r"\s+", lambda _: rng.choice([" ", "  ", "\n"]), text.upper()).replace(",", " ,")
    if kind == "no-latex":
        return text.replace("$", "").replace("\\(", "").replace("\\)", "")
    if kind == "wrapped":
        return f"Solve the following problem.\n\n{text}\n\nGive your final answer at the end."
    return text


def _traj(tid: str, payload: dict, answer: str, domain: str = "bench"):
    from schemas import Message, Task, Trajectory, Verdict

    task = Task(id=f"task-{tid}", domain=domain, source="bench", payload=payload)
    return Trajectory(id=tid, task_id=task.id, domain=domain, task=task, verdict=Verdict(passed=True, score=1.0),
                      messages=[Message(role="user", content="Solve it."), Message(role="assistant", content=answer)])


def _clean_tasks() -> list:
    from pipelines.config import RunConfig
    from pipelines.run import seed_tasks
    from synthesizers.domains.math.generator import generated_tasks

    tasks = list(seed_tasks(RunConfig(domain="math", limit=2000, domain_options={"difficulty": "mixed"})))
    tasks += list(seed_tasks(RunConfig(domain="tool-use", limit=2000, domain_options={"sources": ["files", "calls"]})))
    tasks += [t for t, _ in zip(generated_tasks(99, "hard"), range(2000))]
    return tasks


def run() -> dict:
    from pipelines.benchmarks import BENCHMARKS
    from pipelines.config import DecontamConfig
    from pipelines.decontaminate import MIN_TASK_WORDS, decontaminate, load_index, words
    from synthesizers.domains.deep_research.corpus import load_corpus

    rng = random.Random(20)
    t0 = time.perf_counter()
    index = load_index(DecontamConfig(benchmarks=list(BENCHMARKS)))
    build_s = time.perf_counter() - t0

    planted, kinds, tiny = [], {}, 0
    for name, bench in BENCHMARKS.items():
        for item_id, task_text, _ in bench.items():
            if len(words(task_text)) < MIN_TASK_WORDS:
                tiny += 1
                continue
            kind = rng.choice(PERTURB)
            shuffled = words(task_text)
            rng.shuffle(shuffled)
            tid = f"{name}|{item_id}|{kind}"
            planted.append(_traj(tid, {"question": _perturb(task_text, kind, rng), "answer": "1"}, " ".join(shuffled)))
            kinds[tid] = (name, kind)
    caught = {h["id"] for h in decontaminate(planted, index, use_ray=False).removed}
    per_bench: dict[str, list[int]] = {}
    per_kind: dict[str, list[int]] = {}
    for tid, (name, kind) in kinds.items():
        for table, key in ((per_bench, name), (per_kind, kind)):
            row = table.setdefault(key, [0, 0])
            row[0] += tid in caught
            row[1] += 1
    recall = len(caught) / len(planted)
    missed = sorted(t for t in kinds if t not in caught)[:10]

    docs = load_corpus().docs
    clean = [_traj(f"wiki-{i}", {"question": "Summarise the article."}, d.text) for i, d in enumerate(docs)]
    clean += [_traj(f"task-{t.id}", t.payload, "I will work it out step by step.") for t in _clean_tasks()]
    t0 = time.perf_counter()
    result = decontaminate(clean, index, use_ray=False)
    check_s = time.perf_counter() - t0
    false_rate = len(result.removed) / len(clean)
    chars = sum(len(m.content) for t in clean for m in t.messages) / len(clean)

    return {
        "index": {"benchmarks": index.texts_per_benchmark, "entries": len(index), "build_s": round(build_s, 2)},
        "planted": {"items": len(planted), "under_4_words_not_planted": tiny,
                    "recall_per_benchmark": {k: round(a / b, 4) for k, (a, b) in per_bench.items()},
                    "recall_per_perturbation": {k: round(a / b, 4) for k, (a, b) in per_kind.items()},
                    "missed_examples": missed},
        "clean": {"texts": len(clean), "false_hits": len(result.removed), "mean_chars": round(chars),
                  "false_hit_examples": result.removed[:5]},
        "figures": [
            {"figure": "recall on planted benchmark items, task level (items of >= 4 words)",
             "value": round(recall, 4), "goal": ">= 0.99"},
            {"figure": "recall counting items under 4 words as missed", "value": round(len(caught) / (len(planted) + tiny), 4),
             "goal": "-"},
            {"figure": "false hits on clean text (fraction)", "value": round(false_rate, 5), "goal": "<= 0.001"},
            {"figure": "texts checked per second per core (task + trajectory)", "value": round(len(clean) / check_s),
             "goal": "-"},
            {"figure": "index build seconds (all shipped benchmarks)", "value": round(build_s, 2), "goal": "-"},
        ],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
