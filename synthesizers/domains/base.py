"""The domain plug-in shape. Every domain (math, code, tool use, deep research,
Agentic-CoT) is one package exposing a ``Domain`` subclass.

A domain owns: where seed tasks come from, the prompt, the tools, the rule for
its first *critical action* (where the branching stage cuts a failed
trajectory), and which verifier judges it. It knows nothing of Ray or shards.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError

from sandboxes.base import Sandbox
from schemas import Message, Task, Trajectory
from synthesizers.controller import Controller
from synthesizers.rollout_spec import SANDBOX_SCOPES, RolloutSpec, SandboxSpec, UserSimulator, sandbox_for

log = logging.getLogger(__name__)


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

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> "str | ToolOutput":
        """Synchronous; the agent loop runs it in a worker thread. Return the observation (a
        ``ToolOutput`` when the call has facts worth keeping as data: ``Message.result``). Raise
        ToolError for a clear error observation; any other exception is also turned into one."""


class ToolOutput(str):
    """A tool's observation: the text the model reads (it is that string), carrying ``fields``
    (JSON values) for code that reads the rollout's history; the agent loop stores them as
    ``Message.result.fields`` with status "ok"."""

    fields: dict[str, Any]

    def __new__(cls, text: str, fields: dict[str, Any] | None = None) -> "ToolOutput":
        out = super().__new__(cls, text)
        out.fields = dict(fields or {})
        return out


class ToolError(Exception):
    """A tool's own, model-readable complaint about its arguments or state; ``fields`` become the
    error result's fields (e.g. ``reason="ambiguous", occurrences=2``)."""

    def __init__(self, message: str, **fields: Any):
        super().__init__(message)
        self.fields = fields


class DomainOptions(BaseModel):
    """A domain's options (a run config's ``domain_options``): each domain subclasses this with its
    fields; a key no field names is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DomainOptionsError(ValueError):
    """Bad ``domain_options``: one line per bad key, naming it and what it takes."""


class Domain(ABC):
    """A domain plug-in, constructed with its validated options (``get_domain(name, options)``).

    What is fixed about a domain is declared on its class and checked when the class is defined:

    - ``name``: the domain's name (run configs, tasks, shards);
    - ``Options``: its options model (a ``DomainOptions``);
    - ``needs_sandbox``: whether its tools or verifiers run in a sandbox;
    - ``sandbox_scope``: "rollout" (one box held for the whole rollout, for stateful tools) or
      "call" (a box borrowed per tool call: stateless tools, many more rollouts than boxes);
    - ``repetition_check``: whether a passing trajectory whose assistant turn loops fails
      (``verifiers.repetition``; code says False, source code repeats lines legitimately);
    - ``assists``: the names of its small-model assists, on only when the run says so
      (``agent.assist``; ``pipelines.config.assists_on``); what each does and why:
      docs/small-model-assists.md;
    - ``verifier_kinds``: the task kinds its tasks carry (``Task.kind``), each judged by
      ``verifiers.registry``'s verifier of (name, kind).

    A rollout asks the domain once, for its ``rollout_spec`` (``synthesizers.rollout_spec``): the
    messages, tools, sandbox, controller and user of that rollout, built here from the hooks below.

    Required: ``seed_tasks``, ``initial_messages``, ``tools``, ``is_final``. Hooks with defaults:
    ``first_critical_step`` (the first assistant message), ``sandbox_image`` (the base image),
    ``training_messages`` (the rollout's messages), ``controller`` and ``user_simulator`` (none),
    ``verifier_options`` (none: how its options say its tasks are judged).
    """

    name: ClassVar[str]
    Options: ClassVar[type[DomainOptions]] = DomainOptions
    needs_sandbox: ClassVar[bool]
    sandbox_scope: ClassVar[str] = "rollout"
    repetition_check: ClassVar[bool] = True
    assists: ClassVar[tuple[str, ...]] = ()
    verifier_kinds: ClassVar[tuple[str, ...]] = ("default",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        problems = []
        if not isinstance(getattr(cls, "name", None), str) or not cls.name:
            problems.append("name must be a non-empty string")
        if not isinstance(getattr(cls, "needs_sandbox", None), bool):
            problems.append("needs_sandbox must be declared True or False")
        if cls.sandbox_scope not in SANDBOX_SCOPES:
            problems.append(f"sandbox_scope must be one of {list(SANDBOX_SCOPES)}, not {cls.sandbox_scope!r}")
        if not isinstance(cls.repetition_check, bool):
            problems.append("repetition_check must be True or False")
        for field in ("assists", "verifier_kinds"):
            value = getattr(cls, field)
            if not isinstance(value, tuple) or not all(isinstance(x, str) and x for x in value):
                problems.append(f"{field} must be a tuple of names")
        if not cls.verifier_kinds:
            problems.append("verifier_kinds must name at least one task kind")
        if not (isinstance(cls.Options, type) and issubclass(cls.Options, DomainOptions)):
            problems.append("Options must be a DomainOptions subclass")
        if problems:
            raise TypeError(f"domain class {cls.__qualname__}: " + "; ".join(problems))

    def __init__(self, options: DomainOptions | dict[str, Any] | None = None):
        self.options = self.parse_options(options)

    @classmethod
    def parse_options(cls, options: DomainOptions | dict[str, Any] | None) -> DomainOptions:
        """The validated options; ``DomainOptionsError`` (one line per bad key) otherwise."""
        if isinstance(options, cls.Options):
            return options
        if options is not None and not isinstance(options, dict):
            raise DomainOptionsError(f"{cls.name} options must be a mapping, not {type(options).__name__}")
        try:
            return cls.Options.model_validate(dict(options or {}))
        except ValidationError as exc:
            raise DomainOptionsError(_error_lines(cls, exc.errors())) from None

    # ---- required ------------------------------------------------------------

    @abstractmethod
    def seed_tasks(self, *, limit: int | None, seed: int) -> Iterator[Task]:
        """Deterministic for (options, limit, seed): same inputs, same tasks, same ids."""

    @abstractmethod
    def initial_messages(self, task: Task) -> list[Message]:
        """System + user messages that start a rollout."""

    @abstractmethod
    def tools(self, task: Task) -> list[Tool]: ...

    @abstractmethod
    def is_final(self, message: Message) -> bool:
        """True when this assistant message ends the rollout (a final answer)."""

    # ---- what a rollout needs -----------------------------------------------

    def rollout_spec(self, task: Task, *, assists: bool, engine: Any) -> RolloutSpec:
        """Everything one rollout of ``task`` needs, from the hooks; the controller only when the run
        turns assists on. Blocking (a code task's image may be built): the runner calls it on a
        worker thread. An image that cannot be had leaves the task in the base image, as a warning."""
        try:
            sandbox = sandbox_for(self, task)
        except Exception as exc:  # noqa: BLE001 - the base image still runs the task
            log.warning("task %s: no sandbox image (%s: %s); using the base image", task.id,
                        type(exc).__name__, exc)
            sandbox = SandboxSpec(image=None, scope=self.sandbox_scope)
        return RolloutSpec(
            messages=tuple(self.initial_messages(task)),
            tools=tuple(self.tools(task)),
            is_final=self.is_final,
            sandbox=sandbox,
            controller=self.controller(task) if assists else None,
            user=self.user_simulator(task, engine),
        )

    # ---- hooks with defaults -------------------------------------------------

    def first_critical_step(self, messages: list[Message]) -> int | None:
        """Index of the assistant message that takes the first critical action (where branching
        cuts a failed trajectory); by default the first assistant message."""
        return first_assistant_step(messages)

    def sandbox_image(self, task: Task) -> str | None:
        """The Docker image this task's sandboxes run (e.g. a project image with its test deps);
        None: the base image."""
        return None

    def training_messages(self, trajectory: Trajectory) -> list[Message]:
        """The messages to train on, when they differ from the rollout's (e.g. a rewrite)."""
        return trajectory.messages

    def controller(self, task: Task) -> Controller | None:
        """The one way this domain steers a rollout of ``task`` (``synthesizers.controller``): its
        small-model assists, used only when the run turns them on; None: the model writes alone."""
        return None

    def verifier_options(self) -> dict[str, Any]:
        """The constructor keywords its options imply for its verifiers (how its tasks are judged,
        e.g. a pass mark): run settings, so they reach the verifier here, never through task
        payloads. ``pipelines.worker.make_verifier`` passes them, a run config's
        ``verifier.options`` overriding them key by key; a keyword a verifier kind does not take
        is not passed to it."""
        return {}

    def user_simulator(self, task: Task, engine: Any) -> UserSimulator | None:
        """A ``UserSimulator`` (``async reply(messages) -> Message | None``) that plays the user
        (always as the user) when the assistant stops without a tool call or final answer (None
        ends the rollout); None: no user."""
        return None


def _error_lines(cls: type[Domain], errors: list[dict[str, Any]]) -> str:
    """One line per bad key; a key whose value fits none of a union's members gets one line too."""
    by_key: dict[tuple, list[str]] = {}
    for error in errors:
        # pydantic names a union's members in the location (``writer.literal['template']``): not a key
        key = tuple(x for x in error["loc"] if not (isinstance(x, str) and "[" in x))
        if error["type"] == "extra_forbidden" and len(key) == 1:
            message = f"is unknown (known: {', '.join(cls.Options.model_fields)})"
        else:
            message = error["msg"].removeprefix("Value error, ")
        if message not in by_key.setdefault(key, []):
            by_key[key].append(message)
    lines = []
    for key, messages in by_key.items():
        where = ".".join(str(x) for x in key)
        joined = "; or ".join(messages)
        if not where:  # a rule over several keys: its message names them
            lines.append(f"{cls.name} options: {joined}")
        elif joined.startswith("is unknown"):
            lines.append(f"{cls.name} option {where!r} {joined}")
        else:
            lines.append(f"{cls.name} option {where!r}: {joined}")
    return "\n".join(lines)


def first_assistant_step(messages: list[Message]) -> int | None:
    """The shared fallback of ``first_critical_step``: the first assistant message. A failure
    without a critical action is best re-rolled from the start of the answer (the prompt stays)."""
    return next((i for i, m in enumerate(messages) if m.role == "assistant"), None)
