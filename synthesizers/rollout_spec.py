"""What one rollout of a task needs, as the domain answers it (``Domain.rollout_spec``).

``TaskRunner`` reads nothing else of a domain while it rolls a task out: the messages to start
from, the tools, the sandbox the tools and verification run in, the controller (the domain's
small-model assists, when the run turns them on) and the simulated user.

No ``sampling`` field: no domain sets sampling for a whole rollout. The run config's ``sampling``
section does, and a controller sets fields turn by turn (``synthesizers.controller``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Literal, Protocol, Sequence, runtime_checkable

from schemas import Message, Task
from synthesizers.controller import Controller

if TYPE_CHECKING:
    from synthesizers.domains.base import Domain, Tool

SandboxScope = Literal["rollout", "call"]
SANDBOX_SCOPES: tuple[str, ...] = ("rollout", "call")


@runtime_checkable
class UserSimulator(Protocol):
    """Plays the user (always as the user) when the assistant stops without a tool call or a final
    answer; a reply of None ends the rollout."""

    async def reply(self, messages: list[Message]) -> Message | None: ...


@dataclass(frozen=True)
class SandboxSpec:
    """The sandbox a rollout's tools and its verification run in.

    ``image``: the Docker image (e.g. a code project's, its test deps baked in); None is the base
    image. ``scope``: "rollout" holds one box for the whole rollout (stateful tools), "call"
    borrows one per tool call (stateless tools; many more rollouts than boxes).

    Limits (memory, timeout, pool size) are not the domain's to choose: they come from the run
    config's ``sandbox`` section (``pipelines.sandbox_pool.make_pool``), and ``trajforge verify``
    uses the domain's shipped config (``pipelines.sandbox_pool.domain_sandbox``), so a run and a
    re-verification judge under the same limits.
    """

    image: str | None = None
    scope: SandboxScope = "rollout"

    def __post_init__(self) -> None:
        if self.scope not in SANDBOX_SCOPES:
            raise ValueError(f"sandbox scope must be one of {list(SANDBOX_SCOPES)}, not {self.scope!r}")
        if self.image is not None and (not isinstance(self.image, str) or not self.image):
            raise ValueError(f"sandbox image must be a non-empty image name or None, not {self.image!r}")


@dataclass(frozen=True)
class RolloutSpec:
    """One rollout of one task. The controller and the user may keep count within a rollout, so
    each rollout (the original, each branch, each try again) gets a spec of its own."""

    messages: tuple[Message, ...]
    tools: tuple[Tool, ...]
    is_final: Callable[[Message], bool]  # True when this assistant message ends the rollout
    sandbox: SandboxSpec | None = None  # None: the rollout runs without a sandbox
    controller: Controller | None = None  # None: the model writes every turn itself
    user: UserSimulator | None = None  # None: an assistant stop without a call ends the rollout

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", tuple(self.messages))
        object.__setattr__(self, "tools", tuple(self.tools))
        if not callable(self.is_final):
            raise TypeError("RolloutSpec.is_final must be callable (message -> bool)")
        names = [tool.name for tool in self.tools]
        if len(set(names)) != len(names):
            raise ValueError(f"RolloutSpec tools must have distinct names, got {names}")

    def with_messages(self, messages: Sequence[Message]) -> RolloutSpec:
        """The same rollout started from other messages (a branch: its parent's prefix)."""
        return replace(self, messages=tuple(messages))


def sandbox_for(domain: Domain | None, task: Task) -> SandboxSpec | None:
    """The sandbox a task of ``domain`` runs in: None for a domain that needs none; otherwise the
    domain's ``sandbox_image(task)`` (None: the base image) with its ``sandbox_scope``. The one
    place a task's image is decided, for runs and for ``trajforge verify``; raises if the image
    cannot be had. A ``domain`` of None (a verifier with no synthesizer domain): the base image."""
    if domain is None:
        return SandboxSpec()
    if not domain.needs_sandbox:
        return None
    return SandboxSpec(image=domain.sandbox_image(task), scope=domain.sandbox_scope)


def image_of(sandbox: SandboxSpec | None) -> str | None:
    """The image a verifier's box comes from: the rollout's, else the base image (None)."""
    return sandbox.image if sandbox is not None else None

