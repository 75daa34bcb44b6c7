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
from typing import Any, Iterator

from schemas import Message, Task, Trajectory
from schemas.agentic_cot import first_action_message, parse_text
from synthesizers.domains.agentic_cot import controllers as phased
from synthesizers.domains.agentic_cot.prompts import format_instructions, rewrite_system, rewrite_user
from synthesizers.domains.agentic_cot.seeds import cot_rows, store_rows
from synthesizers.domains.agentic_cot.tools import UnderlyingTool
from synthesizers.domains.base import Tool, first_assistant_step

NAME = "agentic-cot"
OPTION_KEYS = {"sources", "allow_stray", "allow_repeats", "phased", "summary_opener", "phase_stops"}
SOURCE_KEYS = {"mode", "domain", "options", "dataset", "store", "count"}
DEFAULT_SOURCES = [
    {"mode": "direct", "domain": "math", "options": {"sources": ["generator"]}, "count": 8},
    {"mode": "rewrite", "dataset": {}, "count": 8},
]
# Underlying domains whose verifiers run code in a sandbox (task kind "sandboxed").
SANDBOXED_VERIFIERS = {"code"}


def _inner_domain(name: str):
    from synthesizers.domains.registry import get_domain

    if name == NAME:
        raise ValueError("agentic-cot cannot wrap itself")
    return get_domain(name)


def _generation_options(options: dict[str, Any]) -> dict[str, Any]:
    """The phased-generation options, checked (one clear error for a bad value)."""
    opener = options.get("summary_opener") or ""
    if not (isinstance(opener, str) or (isinstance(opener, dict) and all(isinstance(v, str) for v in opener.values()))):
        raise ValueError("agentic-cot summary_opener must be a string or a mapping {domain: string}")
    stops = options.get("phase_stops") or []
    if not isinstance(stops, list) or not all(isinstance(x, str) and x for x in stops):
        raise ValueError("agentic-cot phase_stops must be a list of non-empty strings")
    return {"phased": bool(options.get("phased", True)), "summary_opener": opener, "phase_stops": stops}


def _for_domain(generation: dict[str, Any], domain: str) -> dict[str, Any]:
    """The options as stored on one task: a per-domain opener resolved for its underlying domain."""
    opener = generation["summary_opener"]
    return {**generation, "summary_opener": opener.get(domain, "") if isinstance(opener, dict) else opener}


class AgenticCoTDomain:
    name = NAME
    # The worker builds a domain without its options, so these cannot follow the
    # underlying domain: a sandbox pool is always there (math's python tool needs
    # it), and tools borrow a box per call. Stateful sandbox domains are refused
    # in seed_tasks until Domain gets its options at construction.
    needs_sandbox = True
    sandbox_scope = "call"
    # Phased tasks: the framework writes the phase tags (and the summary opener), the model each phase.
    assists = ("phase-tags",)

    def __init__(self) -> None:
        self._domains: dict[str, Any] = {}

    def _domain(self, name: str):
        if name not in self._domains:
            self._domains[name] = _inner_domain(name)
        return self._domains[name]

    # ---- seeds ------------------------------------------------------------

    def seed_tasks(self, options: dict[str, Any], *, limit: int | None, seed: int) -> Iterator[Task]:
        options = dict(options or {})
        if unknown := sorted(set(options) - OPTION_KEYS):
            raise ValueError(f"unknown agentic-cot option(s) {unknown}; known: {sorted(OPTION_KEYS)}")
        specs = options.get("sources") or DEFAULT_SOURCES
        structure = {"allow_stray": bool(options.get("allow_stray", False))}
        if options.get("allow_repeats"):  # only when set: task payloads (and ids) stay as they were
            structure["allow_repeats"] = True
        generation = _generation_options(options)
        streams = [self._stream(dict(spec), seed, structure, generation) for spec in specs]  # validated up front
        seen: set[str] = set()
        tasks = []
        for task in itertools.chain.from_iterable(itertools.zip_longest(*streams)):
            if task is not None and task.id not in seen:
                seen.add(task.id)
                tasks.append(task)
        return iter(tasks[:limit] if limit is not None else tasks)

    def _stream(self, spec: dict[str, Any], seed: int, structure: dict[str, Any], generation: dict[str, Any]) -> list[Task]:
        if unknown := sorted(set(spec) - SOURCE_KEYS):
            raise ValueError(f"agentic-cot source: unknown key(s) {unknown}; known: {sorted(SOURCE_KEYS)}")
        mode, count = spec.get("mode"), spec.get("count")
        if mode == "direct":
            name = spec.get("domain") or "math"
            inner_domain = self._domain(name)
            if inner_domain.needs_sandbox and getattr(inner_domain, "sandbox_scope", "rollout") != "call":
                raise ValueError(f"agentic-cot direct over {name!r} (stateful sandbox tools) is not supported yet")
            inner = inner_domain.seed_tasks(spec.get("options") or {}, limit=count, seed=seed)
            pairs = ((t, "", None) for t in inner)
            label = f"direct:{name}"
        elif mode == "rewrite" and ("dataset" in spec) != ("store" in spec):
            pairs = cot_rows(spec["dataset"]) if "dataset" in spec else store_rows(spec["store"])
            label = "rewrite:dataset" if "dataset" in spec else "rewrite:store"
        else:
            raise ValueError("agentic-cot source needs mode: direct, or mode: rewrite with one of dataset/store")
        return [
            self._wrap(mode, label, inner, text, msgs, structure, _for_domain(generation, inner.domain))
            for inner, text, msgs in itertools.islice(pairs, count)
        ]

    @staticmethod
    def _wrap(
        mode: str, label: str, inner: Task, text: str, source_messages: list | None,
        structure: dict[str, Any], generation: dict[str, Any],
    ) -> Task:
        digest = hashlib.sha256(f"{mode}\0{inner.id}\0{text}".encode()).hexdigest()[:12]
        payload = {
            "mode": mode, "underlying": inner.model_dump(), "source_text": text,
            "structure": structure, "generation": generation,
        }
        if source_messages:
            payload["source_messages"] = source_messages  # the original's evidence, for the verifier
        return Task(
            id=f"acot-{mode}-{digest}",
            domain=NAME,
            kind="sandboxed" if inner.domain in SANDBOXED_VERIFIERS else "default",
            source=f"{label}:{inner.source}",
            payload=payload,
        )

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

    @staticmethod
    def _phased(task: Task) -> bool:
        return bool((task.payload.get("generation") or {}).get("phased"))

    def sampling_overrides(self, task: Task) -> dict[str, Any]:
        """Phased tasks start their turn with ``<analysis>`` and stop at every next tag."""
        if not self._phased(task):
            return {}
        return phased.sampling_overrides(task.payload["generation"].get("phase_stops") or ())

    def user_simulator(self, task: Task, engine: object) -> phased.PhaseStepper | None:
        """Phased tasks: close each phase and open the next (an assistant continuation)."""
        if not self._phased(task):
            return None
        return phased.PhaseStepper(summary_opener=(task.payload.get("generation") or {}).get("summary_opener", ""))

    def is_final(self, message: Message) -> bool:
        """Final once an assistant turn without tool calls has closed a <summary>."""
        if message.role != "assistant" or message.tool_calls:
            return False
        return any(p.name == "summary" for p in parse_text(message.content).phases)

    def first_critical_step(self, messages: list[Message]) -> int | None:
        """The message with the first <action>; without one, the first assistant message."""
        step = first_action_message(messages)
        if step is not None:
            return step
        return first_assistant_step(messages)

    def training_messages(self, trajectory: Trajectory) -> list[Message]:
        """What the shards hold: a rewrite is trained as an answer to the underlying prompt."""
        task = trajectory.task
        if task is None or task.payload.get("mode") != "rewrite":
            return trajectory.messages
        asked = len(self.initial_messages(task))
        return self.direct_messages(self.underlying(task)) + trajectory.messages[asked:]
