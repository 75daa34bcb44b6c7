"""The domain plug-in shape. Every domain (math, code, tool use, deep research,
Agentic-CoT) is one module exposing an object that satisfies ``Domain``.

A domain owns: where seed tasks come from, the prompt, the tools, the rule for
its first *critical action* (where the branching stage cuts a failed
trajectory), and which verifier judges it. It knows nothing of Ray or shards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Protocol, runtime_checkable

from sandboxes.base import Sandbox
from schemas import Message, Task


@dataclass
class ToolContext:
    """What a tool may touch while it runs. ``sandbox`` is None for domains that need none."""

    task: Task
    sandbox: Sandbox | None = None
    state: dict[str, Any] | None = None  # per-rollout mutable state (stateful environments)


@runtime_checkable
class Tool(Protocol):
    name: str
    schema: dict[str, Any]  # OpenAI tool schema: {"type": "function", "function": {...}}
    needs_sandbox: bool

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        """Synchronous; the agent loop runs it in a worker thread. Raise ToolError for a
        clear error observation; any other exception is also turned into one."""


class ToolError(Exception):
    """A tool's own, model-readable complaint about its arguments or state."""


@runtime_checkable
class Domain(Protocol):
    name: str
    needs_sandbox: bool
    # Optional attribute ``sandbox_scope``: "rollout" (default; one box held for the
    # whole rollout, for stateful tools) or "call" (a box borrowed per tool call,
    # for stateless tools — lets many more rollouts run than there are boxes).
    # Optional method ``user_simulator(task, engine)``: an object with
    # ``async reply(messages) -> Message | None`` that plays the user when the
    # assistant stops without a tool call or final answer (None ends the
    # rollout); it may carry ``assistant_prefix: str``, the text the next
    # assistant turn starts with (answer forcing, see ``SamplingParams``).
    # Optional method ``sampling_overrides(task) -> dict``: SamplingParams fields for
    # this task's rollouts (e.g. ``structured_outputs`` for guided tool calls).
    # Optional method ``turn_policy(task) -> TurnPolicy | None``: sampling fields turn
    # by turn (``synthesizers.agent_loop.TurnPolicy``; e.g. every turn one guided call,
    # the last one only the answer tool).
    # Optional method ``sandbox_image(task) -> str | None``: the Docker image this
    # task's sandboxes run (e.g. a project image with its test deps); None or no
    # method: the base image. The worker keeps one lazily made pool per image.
    # Optional method ``training_messages(trajectory)``: the messages to train on
    # when they differ from the rollout's (e.g. a rewrite).
    # Optional attribute ``assists: tuple[str, ...]``: the names of the domain's small-model
    # assists (its sampling overrides, turn policy and continuations of the model's own turn),
    # on only when the run says so (``agent.assist``; ``pipelines.config.assists_on``).
    # Optional attribute ``repetition_check: bool`` (default True): whether a passing
    # trajectory whose assistant turn loops fails (``verifiers.repetition``); code
    # says False, as source code repeats lines legitimately.

    def seed_tasks(self, options: dict[str, Any], *, limit: int | None, seed: int) -> Iterator[Task]:
        """Deterministic for (options, limit, seed): same inputs, same tasks, same ids."""

    def initial_messages(self, task: Task) -> list[Message]:
        """System + user messages that start a rollout."""

    def tools(self, task: Task) -> list[Tool]: ...

    def is_final(self, message: Message) -> bool:
        """True when this assistant message ends the rollout (a final answer)."""

    def first_critical_step(self, messages: list[Message]) -> int | None:
        """Index of the assistant message that takes the first critical action, or None."""


def domain_assists(domain: object) -> tuple[str, ...]:
    """The names of a domain's small-model assists (none declared: none)."""
    return tuple(getattr(domain, "assists", ()))


def first_assistant_step(messages: list[Message]) -> int | None:
    """The shared fallback of ``first_critical_step``: the first assistant message. A failure
    without a critical action is best re-rolled from the start of the answer (the prompt stays)."""
    return next((i for i, m in enumerate(messages) if m.role == "assistant"), None)
