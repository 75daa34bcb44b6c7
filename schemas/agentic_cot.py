"""The Agentic-CoT five-phase format as a contract: tags, parser, structure check.

Assistant text carries five phases as tags, in order — ``<analysis>``,
``<plan>``, ``<action>``, ``<reflection>``, ``<summary>`` — where action may
repeat with tool calls between. The synthesizer (prompts, phase-by-phase
generation) and the verifier both use this module, so it lives with the other
contracts and imports only the standard library.

Parsing: tags are exact lowercase ``<name>`` / ``</name>``. Text inside
markdown code (fenced blocks and inline backticks) is masked before tags are
searched, so a program or a quoted example that mentions ``<action>`` is
content, not structure. Phases do not nest: a phase tag opened inside another
phase is an error, as is a stray or mismatched closing tag. Errors are
collected, never raised.

Structure: a conversation passes when, over its assistant messages:
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

PHASES = ("analysis", "plan", "action", "reflection", "summary")
_TAG = re.compile(r"<(/?)(" + "|".join(PHASES) + r")\s*>")
_FENCE = re.compile(r"```|~~~")
_INLINE = re.compile(r"`[^`\n]+`")


@dataclass(frozen=True)
class Phase:
    name: str
    content: str  # stripped text between the tags (code kept verbatim)
    message_index: int  # index in the conversation (0 for bare text)
    closed: bool = True  # False only for an action left open by a tool call


@dataclass
class ParseResult:
    phases: list[Phase] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stray: list[tuple[int, str]] = field(default_factory=list)  # (message index, text outside tags)

    @property
    def sequence(self) -> list[str]:
        return [p.name for p in self.phases]


def mask_code(text: str) -> str:
    """Same length as ``text``, with every character inside markdown code replaced by a space."""
    chars = list(text)
    pos = 0
    while (opening := _FENCE.search(text, pos)) is not None:
        # Fences pair up wherever they stand (models open them right after a tag).
        closing = text.find(opening.group(0), opening.end())
        end = closing + 3 if closing >= 0 else len(text)  # an unclosed fence runs to the end
        chars[opening.start() : end] = " " * (end - opening.start())
        pos = end
    masked = "".join(chars)
    for match in _INLINE.finditer(masked):
        masked = masked[: match.start()] + " " * len(match.group(0)) + masked[match.end() :]
    return masked


def parse_text(text: str, message_index: int = 0, *, open_action_ok: bool = False) -> ParseResult:
    """Phases of one assistant text. ``open_action_ok``: the message made tool calls, so
    a final ``<action>`` may stay open (the call, removed from the text, closed it)."""
    result = ParseResult()
    masked = mask_code(text)
    current: tuple[str, int] | None = None  # (phase name, content start)
    last_end = 0
    for tag in _TAG.finditer(masked):
        closing, name = tag.group(1) == "/", tag.group(2)
        if not closing:
            if current is not None:
                result.errors.append(f"<{name}> opened inside <{current[0]}> (phases do not nest)")
                return result
            _stray(result, text[last_end : tag.start()], message_index)
            current = (name, tag.end())
            continue
        if current is None:
            result.errors.append(f"</{name}> closes nothing")
            return result
        if current[0] != name:
            result.errors.append(f"</{name}> closes <{current[0]}>")
            return result
        result.phases.append(Phase(name, text[current[1] : tag.start()].strip(), message_index))
        current, last_end = None, tag.end()
    if current is not None:
        if current[0] == "action" and open_action_ok:
            result.phases.append(Phase("action", text[current[1] :].strip(), message_index, closed=False))
        else:
            result.errors.append(f"<{current[0]}> is never closed")
        return result
    _stray(result, text[last_end:], message_index)
    return result


def _stray(result: ParseResult, text: str, message_index: int) -> None:
    if text.strip():
        result.stray.append((message_index, text.strip()))


def _field(message: Any, name: str, default: Any = None) -> Any:
    return message.get(name, default) if isinstance(message, dict) else getattr(message, name, default)


def parse_messages(messages: Iterable[Any]) -> ParseResult:
    """Phases across every assistant message of a conversation (Message objects or OpenAI dicts)."""
    total = ParseResult()
    for index, message in enumerate(messages):
        if _field(message, "role") != "assistant":
            continue
        part = parse_text(
            _field(message, "content") or "", index, open_action_ok=bool(_field(message, "tool_calls"))
        )
        total.phases.extend(part.phases)
        total.stray.extend(part.stray)
        total.errors.extend(f"message {index}: {e}" for e in part.errors)
    return total

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
    allow_repeats: bool = False,
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
    if not allow_repeats and (repeat := _repeated_phase(phases)):
        return StructureReport(False, repeat, phases)
    if parsed.stray and not allow_stray:
        index, text = parsed.stray[0]
        return StructureReport(False, f"text outside the phase tags in message {index}: {text[:40]!r}", phases)
    summary = phases[-1].content
    if answer_check is not None and not answer_check(summary):
        return StructureReport(False, "<summary> does not state the final answer", phases)
    return StructureReport(True, "five phases in order", phases)


def _gist(text: str) -> str:
    # "1. The remainder is 1." and "the remainder is 1" say the same thing.
    return " ".join(re.sub(r"^\s*(?:\d+[.)]|[*-])\s*", "", text).lower().split()).rstrip(".!")


def _repeated_phase(phases: list[Phase]) -> str | None:
    """A phase that says word for word what an earlier phase of another kind said (a plan that
    restates the analysis): the reason, or None. Two actions may share words (a loop's steps)."""
    seen: dict[str, str] = {}
    for p in phases:
        gist = _gist(p.content)
        if not gist:
            continue
        if gist in seen and seen[gist] != p.name:
            return f"<{p.name}> in message {p.message_index} repeats the <{seen[gist]}> word for word"
        seen.setdefault(gist, p.name)
    return None


def first_action_message(messages: Iterable[Any]) -> int | None:
    """Index of the assistant message holding the first <action> (the critical action)."""
    for phase in parse_messages(messages).phases:
        if phase.name == "action":
            return phase.message_index
    return None


def render_phases(phases: list[tuple[str, str]]) -> str:
    """``[(name, text), ...]`` -> tagged text (used by prompts, tests and fixtures)."""
    return "\n".join(f"<{name}>{text}</{name}>" for name, text in phases)
