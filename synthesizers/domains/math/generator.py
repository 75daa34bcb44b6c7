"""Seeded generator of exact-answer arithmetic and algebra questions.

Easy enough that a 135M model passes some ("What is 17 + 25?"), with integer
answers only so the verifier's comparison is unambiguous. Task ``i`` for a
given (seed, difficulty) depends only on those and on the questions before it
(repeats are re-drawn), so ids ``math-gen-<difficulty>-<seed>-<i>`` are stable
whatever the limit.
"""

from __future__ import annotations

import math
import random
from typing import Callable, Iterator

from schemas import Task

DIFFICULTIES = ("easy", "medium", "hard", "mixed")
_LEVEL = {"easy": 0, "medium": 1, "hard": 2}


def _add(rng: random.Random, level: int) -> tuple[str, int]:
    hi = (50, 500, 9999)[level]
    a, b = rng.randint(1, hi), rng.randint(1, hi)
    return f"What is {a} + {b}?", a + b


def _subtract(rng: random.Random, level: int) -> tuple[str, int]:
    hi = (50, 500, 9999)[level]
    a, b = rng.randint(1, hi), rng.randint(1, hi)
    if level < 2:
        a, b = max(a, b), min(a, b)  # no negative results below "hard"
    return f"What is {a} - {b}?", a - b


def _multiply(rng: random.Random, level: int) -> tuple[str, int]:
    a = rng.randint(2, (12, 99, 999)[level])
    b = rng.randint(2, (12, 20, 99)[level])
    return f"What is {a} * {b}?", a * b


def _divide(rng: random.Random, level: int) -> tuple[str, int]:
    divisor = rng.randint(2, (10, 25, 99)[level])
    quotient = rng.randint(2, (12, 50, 500)[level])
    return f"What is {divisor * quotient} divided by {divisor}?", quotient


def _linear(rng: random.Random, level: int) -> tuple[str, int]:
    a = rng.randint(2, (9, 15, 40)[level])
    x = rng.randint(1 if level == 0 else -20, (10, 20, 50)[level])
    b = rng.randint(1 if level == 0 else -30, (20, 50, 200)[level])
    c = a * x + b
    left = f"{a}x + {b}" if b > 0 else f"{a}x - {-b}" if b < 0 else f"{a}x"
    return f"Solve for x: {left} = {c}. What is x?", x


def _remainder(rng: random.Random, level: int) -> tuple[str, int]:
    divisor = rng.randint(2, (9, 30, 97)[level])
    n = rng.randint(divisor + 1, (100, 1000, 100000)[level])
    return f"What is the remainder when {n} is divided by {divisor}?", n % divisor


def _percent(rng: random.Random, level: int) -> tuple[str, int]:
    percent = rng.choice(((10, 20, 25, 50), (5, 10, 15, 20, 25, 30, 40, 50, 75), tuple(range(1, 100)))[level])
    # the smallest whole for which percent% of it is an integer; easy keeps round hundreds
    step = 100 if level == 0 else 100 // math.gcd(percent, 100)
    whole = step * rng.randint(1, (5, 20, 50)[level])
    return f"What is {percent}% of {whole}?", percent * whole // 100


def _two_step(rng: random.Random, level: int) -> tuple[str, int]:
    a, b, c = (rng.randint(2, (9, 20, 99)[level]) for _ in range(3))
    return f"What is {a} * {b} + {c}?", a * b + c


FAMILIES: dict[str, Callable[[random.Random, int], tuple[str, int]]] = {
    "add": _add,
    "subtract": _subtract,
    "multiply": _multiply,
    "divide": _divide,
    "linear": _linear,
    "remainder": _remainder,
    "percent": _percent,
    "two_step": _two_step,
}


def generated_tasks(seed: int, difficulty: str = "easy") -> Iterator[Task]:
    """An endless, deterministic stream of generated tasks for (seed, difficulty)."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"math difficulty must be one of {', '.join(DIFFICULTIES)}, not {difficulty!r}")
    seen: set[str] = set()
    index = 0
    while True:
        for attempt in range(100):  # re-draw repeats; small ranges do collide
            rng = random.Random(f"math-gen:{seed}:{difficulty}:{index}:{attempt}")
            level_name = rng.choice(("easy", "medium", "hard")) if difficulty == "mixed" else difficulty
            family = rng.choice(sorted(FAMILIES))
            question, answer = FAMILIES[family](rng, _LEVEL[level_name])
            if question not in seen:
                break
        seen.add(question)
        yield Task(
            id=f"math-gen-{difficulty}-{seed}-{index}",
            domain="math",
            source=f"generator:{family}:{level_name}",
            payload={"question": question, "answer": str(answer)},
        )
        index += 1
