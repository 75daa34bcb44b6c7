"""Parse five-phase tags out of assistant text.

Tags are exact lowercase ``<name>`` / ``</name>`` for the five phase names.
Text inside markdown code (fenced blocks and inline backticks) is masked
before tags are searched, so a program or a quoted example that mentions
``<action>`` is content, not structure. Phases do not nest: a phase tag opened
inside another phase is an error, as is a stray or mismatched closing tag.
Errors are collected, never raised — the structure check turns them into a
verdict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from synthesizers.agentic_cot.format import PHASES

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
