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


def last_assistant_text(messages: list[Message]) -> str:
    for m in reversed(messages):
        if m.role == "assistant":
            return m.content
    return ""
