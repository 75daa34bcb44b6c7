"""The verifier Protocol: a pure function of (task, messages[, sandbox]) -> Verdict.

Verifiers never raise on bad model output: they return ``Verdict(passed=False,
reason=...)``. They never call an LLM unless a judge is configured.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from sandboxes.base import Sandbox
from schemas import Message, Task, Verdict


@runtime_checkable
class Verifier(Protocol):
    domain: str
    needs_sandbox: bool

    def verify(self, task: Task, messages: list[Message], sandbox: Sandbox | None = None) -> Verdict: ...


# Stop reasons of a rollout its budget ended before the agent did (turns, tokens, the context
# window). tau2-bench scores such a run 0 whatever the final state ("terminated prematurely"), and a
# turn cut mid-way is no example to learn from. The agent's own stops (a final answer, the user or
# the controller ending the conversation) are judged as they are.
UNFINISHED_STOPS = frozenset({"max_turns", "max_tokens", "context_overflow"})


def judge_finish(verdict: Verdict, stop_reason: str | None) -> Verdict:
    """``verdict``, turned into a failure when it passed a rollout the budget cut short."""
    if verdict.passed and stop_reason in UNFINISHED_STOPS:
        return Verdict(passed=False, score=0.0,
                       reason=f"{verdict.reason}, but the rollout did not finish (stopped by {stop_reason})")
    return verdict


def last_assistant_text(messages: list[Message]) -> str:
    for m in reversed(messages):
        if m.role == "assistant":
            return m.content
    return ""
