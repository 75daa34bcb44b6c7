"""Tool-call forcing for small models: the deep-research domain's turn policy.

A 135M model asked a research question answers from memory, in prose, or
copies the worked example's doc ids. With ``forcing`` on, every turn is one
guided call (``guided_calls.required_call``: the chat template's exact format,
arguments valid against the tool's schema) and the choices are narrowed to
what a rollout can sensibly do at that point:

- before any search: only ``search``;
- on the last turn (or when little room is left): only ``answer``, so a
  rollout ends with an answer instead of running out of turns;
- ``open`` and ``answer``'s citations take only doc ids that appeared in this
  rollout's tool results (a made-up id can never be evidence anyway), and the
  answer is short.

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
_DOC_ID = re.compile(r"^\s*\[([^\]\s]{1,40})\]", re.MULTILINE)


def has_searched(messages: list[Message]) -> bool:
    return any(m.role == "assistant" and any(c.function.name == "search" for c in m.tool_calls) for m in messages)


def seen_doc_ids(messages: list[Message]) -> list[str]:
    """Doc ids at the start of a line of a ``search``/``open`` result, first-seen order."""
    found: dict[str, None] = {}
    for message in messages:
        if message.role == "tool" and message.name in ("search", "open"):
            found.update(dict.fromkeys(_DOC_ID.findall(message.content)))
    return list(found)


def _narrowed(schemas: list[dict[str, Any]], doc_ids: list[str]) -> list[dict[str, Any]]:
    """Copies of the tool schemas whose doc-id fields admit only ``doc_ids``; a short answer."""
    out = copy.deepcopy(schemas)
    for schema in out:
        fn = schema.get("function", schema)
        props = (fn.get("parameters") or {}).get("properties", {})
        if fn["name"] == "open" and doc_ids:
            props["doc_id"] = {"type": "string", "enum": doc_ids}
            props.pop("offset", None)  # the summaries fit on one page
        if fn["name"] == "answer":
            props["answer"] = {"type": "string", "minLength": 1, "maxLength": ANSWER_MAX_CHARS}
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
        schemas = _narrowed(self.tool_schemas, doc_ids)
        if not has_searched(messages):
            return required_call(schemas, only=("search",))
        if info.turns_left <= 1 or info.tokens_left < ANSWER_ROOM:
            return required_call(schemas, only=("answer",))
        return required_call(schemas, only=None if doc_ids else ("search", "answer"))
