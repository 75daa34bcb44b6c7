"""The decontam bench plants what it says: each perturbation changes the task text, the
trajectory keeps no 13-gram of the item, and the planted task is still the item."""

from __future__ import annotations

import random

from bench.bench_decontam import PERTURB, _perturb, _traj
from pipelines.decontaminate import BenchmarkIndex, decontaminate, words

ITEM = "Every morning Aya goes for a $9$-kilometer-long walk and stops at a coffee shop afterwards."
SHORT = "Compute $\\dbinom{16}{5}$ please now."  # 5 words: only the task level can catch it


def test_every_perturbation_is_planted_and_found_by_its_task_only():
    rng = random.Random(0)
    index = BenchmarkIndex.build([("bench", [("a", ITEM, ITEM), ("b", SHORT, SHORT)])])
    for text in (ITEM, SHORT):
        for kind in PERTURB:
            task = _perturb(text, kind, rng)
            assert kind == "verbatim" or task != text
            shuffled = words(text)
            rng.shuffle(shuffled)
            res = decontaminate([_traj("t", {"question": task, "answer": "1"}, " ".join(shuffled))], index, use_ray=False)
            assert [h["where"] for h in res.removed] == ["task"], (kind, task)
            alone = decontaminate([_traj("t", {"question": "unrelated"}, " ".join(shuffled))], index, use_ray=False)
            assert not alone.removed  # the shuffled words alone carry no match
