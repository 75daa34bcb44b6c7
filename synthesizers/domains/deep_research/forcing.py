"""Tool-call forcing for small models: the deep-research domain's turn policy.

A 135M model asked a research question answers from memory, in prose, or
copies the worked example's doc ids. With ``forcing`` on, every turn is one
guided call (``guided_calls.required_call``: the chat template's exact format,
arguments valid against the tool's schema) and the choices are narrowed to
what a rollout can sensibly do at that point:

- before any search: only ``search``;
- on the last turn (or when little room is left): only ``answer``, so a
  rollout ends with an answer instead of running out of turns;
- no tool twice in a row (the model otherwise repeats one search until its
  turns run out): a search is followed by ``open`` or ``answer``;
- ``open`` and ``answer``'s citations take only doc ids that appeared in this
  rollout's tool results (a made-up id can never be evidence anyway);
- the answer is a span of what the rollout has read (``answer_candidates``:
  names and years in its tool results, none that the question itself names),
  the extractive answer the system prompt asks for; before anything is read,
  a short free string.

The model still chooses the tool, the query, the document, the answer and its
citations. The verifier is the same with forcing on or off.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from schemas import Message
from synthesizers.agent_loop import TurnInfo
from synthesizers.guided_calls import required_call

ANSWER_MAX_CHARS = 60
MAX_CITATIONS = 3
# Room a final answer call needs (tokens): below it, the turn must be the answer.
ANSWER_ROOM = 96
MAX_CANDIDATES = 256
_DOC_ID = re.compile(r"^\s*\[([^\]\s]{1,40})\]", re.MULTILINE)
# A run of capitalised words, joined by the small words of names ("Republic of the Congo").
_NAME = re.compile(r"[A-Z][\w'’-]*(?: +(?:(?:of|the|and|de|del|da|du|la|le|von|van|al|bin) +)*[A-Z][\w'’-]*)*")
_YEAR = re.compile(r"\b(?:1[0-9]{3}|20[0-9]{2})\b")
_NEXT = {"search": ("open", "answer"), "open": ("search", "find", "answer"), "find": ("search", "open", "answer")}


def has_searched(messages: list[Message]) -> bool:
    return any(m.role == "assistant" and any(c.function.name == "search" for c in m.tool_calls) for m in messages)


def seen_doc_ids(messages: list[Message]) -> list[str]:
    """Doc ids at the start of a line of a ``search``/``open`` result, first-seen order."""
    found: dict[str, None] = {}
    for message in messages:
        if message.role == "tool" and message.name in ("search", "open"):
            found.update(dict.fromkeys(_DOC_ID.findall(message.content)))
    return list(found)


def answer_candidates(messages: list[Message]) -> list[str]:
    """Names and years in this rollout's tool results (first-seen order), minus those the
    question (the first user message) contains: a question never asks for what it names."""
    question = next((m.content for m in messages if m.role == "user"), "").lower()
    found: dict[str, None] = {}
    for message in messages:
        if message.role != "tool" or message.name not in ("search", "open", "find"):
            continue
        text = _DOC_ID.sub(" ", message.content)
        for match in _NAME.findall(text) + _YEAR.findall(text):
            for name in {match, *match.split(" and "), match.removeprefix("The ")}:
                name = re.sub(r"['’]s?$", "", name.strip())
                if len(name) > 1 and name.lower() not in question and len(name) <= ANSWER_MAX_CHARS:
                    found[name] = None
    return list(found)[:MAX_CANDIDATES]


def _last_tool(messages: list[Message]) -> str | None:
    for message in reversed(messages):
        if message.role == "assistant" and message.tool_calls:
            return message.tool_calls[-1].function.name
    return None


def _narrowed(schemas: list[dict[str, Any]], doc_ids: list[str], candidates: list[str]) -> list[dict[str, Any]]:
    """Copies of the tool schemas: doc-id fields admit only ``doc_ids``; the answer is a candidate."""
    out = copy.deepcopy(schemas)
    for schema in out:
        fn = schema.get("function", schema)
        props = (fn.get("parameters") or {}).get("properties", {})
        if fn["name"] == "open" and doc_ids:
            props["doc_id"] = {"type": "string", "enum": doc_ids}
            props.pop("offset", None)  # the summaries fit on one page
        if fn["name"] == "answer":
            props["answer"] = ({"type": "string", "enum": candidates} if candidates else
                               {"type": "string", "minLength": 1, "maxLength": ANSWER_MAX_CHARS})
            if doc_ids:
                props["citations"] = {"type": "array", "items": {"type": "string", "enum": doc_ids},
                                      "minItems": 1, "maxItems": MAX_CITATIONS}
    return out


class ForcedCalls:
    """``TurnPolicy`` for one rollout (see the module docstring)."""

    def __init__(self, tool_schemas: list[dict[str, Any]]) -> None:
        self.tool_schemas = tool_schemas

    def __call__(self, messages: list[Message], info: TurnInfo) -> dict[str, Any]:
        doc_ids = seen_doc_ids(messages)
        schemas = _narrowed(self.tool_schemas, doc_ids, answer_candidates(messages))
        if not has_searched(messages):
            return required_call(schemas, only=("search",))
        if info.turns_left <= 1 or info.tokens_left < ANSWER_ROOM:
            return required_call(schemas, only=("answer",))
        allowed = _NEXT.get(_last_tool(messages) or "", ("search", "open", "find", "answer"))
        if not doc_ids:  # nothing found yet: nothing to open or cite
            allowed = ("search", "answer")
        return required_call(schemas, only=tuple(dict.fromkeys(allowed)))
