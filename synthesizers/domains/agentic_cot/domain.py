"""The Agentic-CoT domain: five-phase trajectories built on the other domains' tasks.

Each seed task wraps an *underlying* task of another domain (``payload.underlying``)
and is built one of two ways (``payload.mode``):

* ``direct``: the underlying domain's prompt plus the five-phase instructions,
  with the underlying domain's tools (they see the underlying task);
* ``rewrite``: an LLM reorganizes existing material — a plain chain-of-thought
  answer from a ``datasets`` dataset, or a passed trajectory from another run's
  store — into the five phases; no tools.

Options (``domain_options``)::

    sources:                      # interleaved round-robin, each capped by ``count``
      - {mode: direct, domain: math, options: {sources: [generator]}, count: 8}
      - {mode: rewrite, dataset: {path: ..., question_field, answer_field, solution_field}, count: 8}
      - {mode: rewrite, store: runs/math, count: 8}
    allow_stray: false            # text outside the tags fails the structure check
    allow_repeats: false          # a phase that restates an earlier one word for word fails it
    phased: true                  # phase-by-phase generation (controllers.py):
                                  # the loop writes the tags, the model each phase's text
    summary_opener: ""            # text the summary starts with when phased (answer forcing); a
                                  # string, or {underlying domain: string}
    phase_stops: []               # extra stop strings that end a phase when phased (e.g. "\n\n")

The verifier (``verifiers.agentic_cot``) passes a trajectory only if the
structure check passes and the underlying domain's verifier passes on the
answer its summary states. Critical action: the first ``<action>`` phase.
``training_messages`` gives what the shards should hold: for a rewrite, the
underlying prompt with the format instructions instead of the rewrite request.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Annotated, Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas import Message, Task, Trajectory
from schemas.agentic_cot import first_action_message, parse_text
from synthesizers.domains.agentic_cot import controllers as phased
from synthesizers.domains.agentic_cot.prompts import format_instructions, rewrite_system, rewrite_user
from synthesizers.domains.agentic_cot.seeds import cot_rows, store_rows
from synthesizers.domains.agentic_cot.tools import UnderlyingTool
from synthesizers.domains.base import Domain, DomainOptions, DomainOptionsError, Tool, first_assistant_step

NAME = "agentic-cot"
DEFAULT_SOURCES = [
    {"mode": "direct", "domain": "math", "options": {"sources": ["generator"]}, "count": 8},
    {"mode": "rewrite", "dataset": {}, "count": 8},
]
# Underlying domains whose verifiers run code in a sandbox (task kind "sandboxed").
SANDBOXED_VERIFIERS = {"code"}


class SourceSpec(BaseModel):
    """One seed source: ``direct`` over another domain's tasks (built with ``options``), or
    ``rewrite`` of a ``dataset``'s plain chain-of-thought rows or a run ``store``'s trajectories."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: Literal["direct", "rewrite"]
    domain: str = "math"
    options: dict[str, Any] = {}
    dataset: dict[str, Any] | None = None
    store: str | None = None
    count: int | None = None

    @model_validator(mode="after")
    def _one_way(self) -> "SourceSpec":
        if self.mode == "rewrite" and (self.dataset is None) == (self.store is None):
            raise ValueError("a rewrite source needs exactly one of dataset or store")
        if self.mode == "direct" and self.domain == NAME:
            raise ValueError("agentic-cot cannot wrap itself")
        return self


class AgenticCoTOptions(DomainOptions):
    sources: list[SourceSpec] = [SourceSpec.model_validate(s) for s in DEFAULT_SOURCES]
    allow_stray: bool = False  # text outside the tags fails the structure check
    allow_repeats: bool = False  # a phase restating an earlier one word for word fails it
    phased: bool = True  # the framework writes the tags, the model each phase (controllers.py)
    summary_opener: str | dict[str, str] = ""  # the summary's first words when phased, per domain or for all
    phase_stops: list[Annotated[str, Field(min_length=1)]] = []  # extra stops that end a phase when phased

    def opener_for(self, domain: str) -> str:
        opener = self.summary_opener
        return opener.get(domain, "") if isinstance(opener, dict) else opener


class AgenticCoTDomain(Domain):
    name = NAME
    Options = AgenticCoTOptions
    # Fixed whatever the underlying domain: a sandbox pool is always there (math's python tool
    # needs it), and tools borrow a box per call; stateful sandbox domains are refused.
    needs_sandbox = True
    sandbox_scope = "call"
    # Phased tasks: the framework writes the phase tags (and the summary opener), the model each phase.
    assists = ("phase-tags",)
    verifier_kinds = ("default", "sandboxed")

    def __init__(self, options: AgenticCoTOptions | dict[str, Any] | None = None):
        from synthesizers.domains.registry import get_domain

        super().__init__(options)
        # The underlying domains, each built once with the options of its first direct source
        # (validated here, before any task is made); rewrites use a domain's defaults.
        self._domains: dict[str, Domain] = {}
        for spec in self.options.sources:
            if spec.mode == "direct" and spec.domain not in self._domains:
                inner = get_domain(spec.domain, spec.options)
                if inner.needs_sandbox and inner.sandbox_scope != "call":
                    raise DomainOptionsError(f"agentic-cot direct over {spec.domain!r} (stateful sandbox tools) "
                                             "is not supported yet")
                self._domains[spec.domain] = inner
        self._direct = dict(self._domains)  # what verifier_options reads: rewrites add defaults later

    def _domain(self, name: str) -> Domain:
        from synthesizers.domains.registry import get_domain

        if name == NAME:
            raise ValueError("agentic-cot cannot wrap itself")
        if name not in self._domains:
            self._domains[name] = get_domain(name)
        return self._domains[name]

    # ---- seeds ------------------------------------------------------------

    def seed_tasks(self, *, limit: int | None, seed: int) -> Iterator[Task]:
        streams = [self._stream(spec, seed) for spec in self.options.sources]  # all read up front
        seen: set[str] = set()
        tasks = []
        for task in itertools.chain.from_iterable(itertools.zip_longest(*streams)):
            if task is not None and task.id not in seen:
                seen.add(task.id)
                tasks.append(task)
        return iter(tasks[:limit] if limit is not None else tasks)

    def _stream(self, spec: SourceSpec, seed: int) -> list[Task]:
        if spec.mode == "direct":
            inner = self._domain(spec.domain).seed_tasks(limit=spec.count, seed=seed)
            pairs = ((t, "", None) for t in inner)
            label = f"direct:{spec.domain}"
        else:
            pairs = cot_rows(spec.dataset) if spec.dataset is not None else store_rows(spec.store)
            label = "rewrite:dataset" if spec.dataset is not None else "rewrite:store"
        return [self._wrap(spec.mode, label, inner, text, msgs)
                for inner, text, msgs in itertools.islice(pairs, spec.count)]

    @staticmethod
    def _wrap(mode: str, label: str, inner: Task, text: str, source_messages: list | None) -> Task:
        digest = hashlib.sha256(f"{mode}\0{inner.id}\0{text}".encode()).hexdigest()[:12]
        payload = {"mode": mode, "underlying": inner.model_dump(), "source_text": text}
        if source_messages:
            payload["source_messages"] = source_messages  # the original's evidence, for the verifier
        return Task(
            id=f"acot-{mode}-{digest}",
            domain=NAME,
            kind="sandboxed" if inner.domain in SANDBOXED_VERIFIERS else "default",
            source=f"{label}:{inner.source}",
            payload=payload,
        )

    def verifier_options(self) -> dict[str, Any]:
        """The structure rules, and for each underlying domain of a direct source the keywords its
        options imply for its own verifier (the inner task is judged as that domain's run would)."""
        underlying = {name: opts for name, d in self._direct.items() if (opts := d.verifier_options())}
        return {"allow_stray": self.options.allow_stray, "allow_repeats": self.options.allow_repeats,
                "underlying_options": underlying}

    # ---- rollout ----------------------------------------------------------

    @staticmethod
    def underlying(task: Task) -> Task:
        return Task.model_validate(task.payload["underlying"])

    def direct_messages(self, inner: Task) -> list[Message]:
        """The underlying prompt with the five-phase instructions added to its system message."""
        messages = [m.model_copy(deep=True) for m in self._domain(inner.domain).initial_messages(inner)]
        extra = format_instructions(inner.domain)
        if messages and messages[0].role == "system":
            messages[0].content = messages[0].content.rstrip() + "\n\n" + extra
        else:
            messages.insert(0, Message(role="system", content=extra))
        return messages

    def initial_messages(self, task: Task) -> list[Message]:
        inner = self.underlying(task)
        if task.payload.get("mode") == "direct":
            return self.direct_messages(inner)
        problem = next(m.content for m in self._domain(inner.domain).initial_messages(inner) if m.role == "user")
        return [
            Message(role="system", content=rewrite_system(inner.domain)),
            Message(role="user", content=rewrite_user(problem, task.payload["source_text"])),
        ]

    def tools(self, task: Task) -> list[Tool]:
        if task.payload.get("mode") != "direct":
            return []
        inner = self.underlying(task)
        return [UnderlyingTool(t, inner) for t in self._domain(inner.domain).tools(inner)]

    def controller(self, task: Task) -> phased.PhaseStepper | None:
        """Phased generation: the turn starts with ``<analysis>``, stops at every next tag, and the
        stepper closes each phase and opens the next (a continuation of the model's turn)."""
        if not self.options.phased:
            return None
        return phased.PhaseStepper(summary_opener=self.options.opener_for(self.underlying(task).domain),
                                   extra_stops=tuple(self.options.phase_stops))

    def is_final(self, message: Message) -> bool:
        """Final once an assistant turn without tool calls has closed a <summary>."""
        if message.role != "assistant" or message.tool_calls:
            return False
        return any(p.name == "summary" for p in parse_text(message.content).phases)

    def first_critical_step(self, messages: list[Message]) -> int | None:
        """The message with the first <action>; without one, the first assistant message."""
        step = first_action_message(messages)
        return step if step is not None else first_assistant_step(messages)

    def training_messages(self, trajectory: Trajectory) -> list[Message]:
        """What the shards hold: a rewrite is trained as an answer to the underlying prompt."""
        task = trajectory.task
        if task is None or task.payload.get("mode") != "rewrite":
            return trajectory.messages
        asked = len(self.initial_messages(task))
        return self.direct_messages(self.underlying(task)) + trajectory.messages[asked:]
