"""The structure check of the five-phase format.

A conversation passes when, over its assistant messages:
  * the tags parse (no nesting, no stray or mismatched closers, all closed);
  * the phases follow ``analysis plan (action+ reflection)+ summary``: each
    phase present, in order, analysis/plan/summary once, every reflection
    right after an action, the summary last and in the last assistant message;
  * every phase has content (an action whose message calls a tool counts: the
    call is its content);
  * a message that calls a tool does so from an action (its last phase);
  * no text outside the tags (unless ``allow_stray``);
  * ``answer_check(summary)`` holds when given (the summary states the answer).
The first failing rule is the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from synthesizers.agentic_cot.parser import Phase, _field, parse_messages

_LETTER = {"analysis": "A", "plan": "P", "action": "X", "reflection": "R", "summary": "S"}
_GRAMMAR = re.compile(r"AP(?:X+R)+S")


@dataclass
class StructureReport:
    ok: bool
    reason: str
    phases: list[Phase] = field(default_factory=list)

    @property
    def sequence(self) -> list[str]:
        return [p.name for p in self.phases]

    @property
    def summary(self) -> str | None:
        return self.phases[-1].content if self.phases and self.phases[-1].name == "summary" else None


def _order_problem(seq: list[str]) -> str:
    """A readable reason for a sequence the grammar rejects."""
    for name in ("analysis", "plan", "action", "reflection", "summary"):
        if name not in seq:
            return f"missing <{name}>"
    for name in ("analysis", "plan", "summary"):
        if seq.count(name) > 1:
            return f"<{name}> appears {seq.count(name)} times (once only)"
    if seq[0] != "analysis":
        return f"starts with <{seq[0]}>, not <analysis>"
    if seq[1] != "plan":
        return f"<{seq[1]}> follows <analysis>, not <plan>"
    if seq[-1] != "summary":
        return f"ends with <{seq[-1]}>, not <summary>"
    for prev, name in zip(seq, seq[1:]):
        if name == "reflection" and prev != "action":
            return f"<reflection> follows <{prev}>, not an <action>"
    if seq[-2] != "reflection":
        return f"<summary> follows <{seq[-2]}>, not a <reflection>"
    return "phases out of order: " + " ".join(seq)


def check_structure(
    messages: Iterable[Any],
    *,
    answer_check: Callable[[str], bool] | None = None,
    allow_stray: bool = False,
) -> StructureReport:
    messages = list(messages)
    parsed = parse_messages(messages)
    phases = parsed.phases
    if parsed.errors:
        return StructureReport(False, parsed.errors[0], phases)
    if not phases:
        return StructureReport(False, "no phase tags", phases)
    seq = [p.name for p in phases]
    if not _GRAMMAR.fullmatch("".join(_LETTER[n] for n in seq)):
        return StructureReport(False, _order_problem(seq), phases)
    calls_in = {i for i, m in enumerate(messages) if _field(m, "role") == "assistant" and _field(m, "tool_calls")}
    for p in phases:
        if not p.content and not (p.name == "action" and p.message_index in calls_in):
            return StructureReport(False, f"<{p.name}> in message {p.message_index} is empty", phases)
    for index in calls_in:
        own = [p for p in phases if p.message_index == index]
        if not own or own[-1].name != "action":
            return StructureReport(False, f"message {index} calls a tool outside an <action>", phases)
    last_assistant = max(i for i, m in enumerate(messages) if _field(m, "role") == "assistant")
    if phases[-1].message_index != last_assistant:
        return StructureReport(False, "<summary> is not in the last assistant message", phases)
    if parsed.stray and not allow_stray:
        index, text = parsed.stray[0]
        return StructureReport(False, f"text outside the phase tags in message {index}: {text[:40]!r}", phases)
    summary = phases[-1].content
    if answer_check is not None and not answer_check(summary):
        return StructureReport(False, "<summary> does not state the final answer", phases)
    return StructureReport(True, "five phases in order", phases)


def first_action_message(messages: Iterable[Any]) -> int | None:
    """Index of the assistant message holding the first <action> (the critical action)."""
    for phase in parse_messages(messages).phases:
        if phase.name == "action":
            return phase.message_index
    return None
