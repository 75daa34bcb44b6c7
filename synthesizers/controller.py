"""The one way to steer a rollout: a ``Controller``, asked by the agent loop between turns.

Before each assistant turn ``next_turn`` may set that turn's sampling (``SamplingParams`` fields:
``assistant_prefix``, ``stop``, ``structured_outputs``, ``forced_text``, ``temperature``...). When
a turn ends without a tool call or a final answer, ``after_turn`` may go on with the model's own
turn from a text (``Continue``), end the rollout (``End``), or leave it to the simulated user
(None). Whatever a controller makes the framework write inside an assistant turn (a prefix, a
continuation, a forced text) is recorded as inserted tokens (``TokenSource.INSERTED``); what a
grammar narrows, as guided. The simulated user (``Domain.user_simulator``) is only ever a user.

A domain's controllers are its small-model assists (``Domain.assists``): a run without assists
gets none, and the model writes every turn itself. One controller per rollout (they may count).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class TurnInfo:
    """Where a rollout stands when its next assistant turn is about to be sampled."""

    turn: int  # assistant turns taken so far in this call of run_agent
    turns_left: int  # including the one about to be sampled
    tokens_left: int  # room in max_total_tokens for this turn's output
    continuing: bool = False  # the turn goes on with the model's previous one (after ``Continue``)


@dataclass(frozen=True)
class Continue:
    """Go on with the model's own turn from ``text`` (inserted), e.g. "The final answer is $\\boxed{"."""

    text: str


@dataclass(frozen=True)
class End:
    """End the rollout here (stop reason ``controller_ended``)."""


# SamplingParams fields for one turn from the conversation so far (e.g. ``guided_calls.required_call``:
# the turn must be one call; on the last turn, only the answer tool).
TurnPolicy = Callable[[list[Any], TurnInfo], dict[str, Any]]


class Controller:
    """Steers nothing by default; subclasses override either method."""

    def next_turn(self, messages: list[Any], info: TurnInfo) -> dict[str, Any]:
        """SamplingParams fields for the next assistant turn. On a continuing turn a prefix is ignored
        (the turn already goes on from the continuation)."""
        return {}

    def after_turn(self, messages: list[Any]) -> Continue | End | None:
        """The assistant stopped without a tool call or a final answer: go on, end, or (None) let
        the user speak."""
        return None


@dataclass
class PolicyController(Controller):
    """A turn policy as a controller: its fields on every new turn (not on continuations)."""

    policy: TurnPolicy

    def next_turn(self, messages: list[Any], info: TurnInfo) -> dict[str, Any]:
        return {} if info.continuing else dict(self.policy(messages, info))

    def __call__(self, messages: list[Any], info: TurnInfo) -> dict[str, Any]:
        return self.next_turn(messages, info)


@dataclass
class FirstTurnController(Controller):
    """The same fields on every turn, but the prefix only on the rollout's first (e.g. a call's
    format guided throughout, the first turn opened with a call)."""

    fields: dict[str, Any] = field(default_factory=dict)

    def next_turn(self, messages: list[Any], info: TurnInfo) -> dict[str, Any]:
        if info.turn == 0 and not info.continuing:
            return dict(self.fields)
        return {k: v for k, v in self.fields.items() if k != "assistant_prefix"}
