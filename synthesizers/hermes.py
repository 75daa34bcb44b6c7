"""Hermes-style tool calls: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` text <-> OpenAI tool calls.

The model writes tool calls as tagged JSON inside its text; trajforge stores
them as OpenAI ``tool_calls``. ``parse_tool_calls`` extracts them and returns
the remaining content, the calls, and one error string per malformed block (so
the agent loop can answer it with an error observation instead of crashing).
``render_assistant_text`` is the inverse and produces exactly what
``synthesizers/chat_template.jinja`` renders for an assistant turn.

Valid blocks are removed from the content (the template renders them back from
``tool_calls``); malformed blocks stay in the content verbatim, so a trajectory
still shows what the model wrote before the error observation that answers it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from schemas import ToolCall

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)
_EMPTY_FENCE = re.compile(r"```[A-Za-z0-9_-]*\s*```")


def call_id(turn: int, index: int) -> str:
    """Deterministic ids: the same trajectory always gets the same ids."""
    return f"call_{turn}_{index}"


def parse_tool_calls(text: str, *, turn: int = 0) -> tuple[str, list[ToolCall], list[str]]:
    """Split assistant text into (content without valid calls, calls, parse errors)."""
    kept: list[str] = []
    calls: list[ToolCall] = []
    errors: list[str] = []
    pos = 0
    for match in _BLOCK.finditer(text):
        before = text[pos : match.start()]
        kept.append(_unclosed_check(before, errors))
        found, problem = _parse_block(match.group(1))
        if problem is None:
            for name, arguments in found:
                calls.append(ToolCall.make(call_id(turn, len(calls)), name, arguments))
        else:
            errors.append(problem)
            kept.append(match.group(0))
        pos = match.end()
    kept.append(_unclosed_check(text[pos:], errors))
    content = _EMPTY_FENCE.sub("", "".join(kept)) if calls else "".join(kept)
    return _tidy(content), calls, errors


def render_assistant_text(content: str, tool_calls: list[ToolCall]) -> str:
    """The assistant turn body exactly as the chat template renders it."""
    out = content
    for call in tool_calls:
        if out:
            out += "\n"
        out += f'{OPEN}\n{{"name": {json.dumps(call.function.name, ensure_ascii=False)}, "arguments": {call.function.arguments}}}\n{CLOSE}'
    return out


def _unclosed_check(segment: str, errors: list[str]) -> str:
    # An opening tag outside any matched block never got its closing tag.
    if OPEN in segment:
        errors.append(f"unclosed {OPEN}: every tool call must end with {CLOSE}")
    return segment


def _parse_block(body: str) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    """One block may hold one call, several JSON objects in a row, or a JSON list of calls."""
    body = body.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if not body:
        return [], f"empty {OPEN} block: expected {{\"name\": ..., \"arguments\": {{...}}}}"
    try:
        values = _decode_all(body)
    except json.JSONDecodeError as exc:
        return [], f"tool call is not valid JSON ({exc.msg} at char {exc.pos}): {_clip(body)}"
    if len(values) == 1 and isinstance(values[0], list):
        values = values[0]
    out = []
    for value in values:
        parsed, problem = _as_call(value)
        if problem:
            return [], problem
        out.append(parsed)
    if not out:
        return [], f"empty tool call list: {_clip(body)}"
    return out, None


def _decode_all(body: str) -> list[Any]:
    decoder = json.JSONDecoder()
    values, pos = [], 0
    while pos < len(body):
        value, end = decoder.raw_decode(body, pos)
        values.append(value)
        pos = end
        while pos < len(body) and body[pos] in " \t\r\n,":
            pos += 1
    return values


def _as_call(value: Any) -> tuple[tuple[str, dict[str, Any]], str | None]:
    if not isinstance(value, dict):
        return ("", {}), f"tool call must be a JSON object, got {type(value).__name__}: {_clip(json.dumps(value))}"
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        return ("", {}), f'tool call is missing "name": {_clip(json.dumps(value))}'
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):  # some models double-encode the arguments
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            return ("", {}), f'"arguments" of {name!r} is a string that is not JSON: {_clip(arguments)}'
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        return ("", {}), f'"arguments" of {name!r} must be a JSON object, got {type(arguments).__name__}'
    return (name.strip(), arguments), None


def _tidy(content: str) -> str:
    # Removing blocks leaves blank runs; keep the model's own inner formatting.
    content = re.sub(r"\n{3,}", "\n\n", content)
    return content.strip()


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
