"""Tool-call forcing for small models: the deep-research domain's simulated user.

When the assistant stops without a tool call (small models tend to answer a
research question from memory, in prose), its own turn goes on with the start
of the call it should have made: a ``search`` when it has not searched yet,
otherwise an ``answer`` call. The model writes the query or the answer and its
citations itself; only the call's opening is fixed. Each forcing is used at
most once per rollout, so a model that still does not act ends the rollout.

Plugs into the agent loop's simulated-user hook: a reply with role
``assistant`` continues the assistant's last turn (see ``synthesizers.agent_loop``).
``first_turn_overrides`` are the rollout's sampling overrides: the first turn
opens a ``search`` call (the model writes the query), and every call the model
starts is guided into the chat template's exact format with arguments valid
against the tool's schema (xgrammar structural tag; an ``answer`` call always
carries a ``citations`` list).
"""

from __future__ import annotations

from typing import Any

from schemas import Message
from synthesizers.guided_calls import tool_call_tag

SEARCH_OPENING = '<tool_call>\n{"name": "search", "arguments": {"query": "'
ANSWER_OPENING = '<tool_call>\n{"name": "answer", "arguments": {"answer": "'


def has_searched(messages: list[Message]) -> bool:
    return any(m.role == "assistant" and any(c.function.name == "search" for c in m.tool_calls) for m in messages)


def first_turn_overrides(tool_schemas: list[dict[str, Any]]) -> dict[str, Any]:
    """Sampling overrides for every rollout: open the first turn with a search; guide calls."""
    return {"assistant_prefix": SEARCH_OPENING, "structured_outputs": tool_call_tag(tool_schemas, stop_after_first=True)}


class ToolCallForcing:
    """Continue a turn without a tool call with a ``search`` (before any search) or an ``answer`` call."""

    def __init__(self) -> None:
        self.left = {"search": 1, "answer": 1}

    async def reply(self, messages: list[Message]) -> Message | None:
        kind = "answer" if has_searched(messages) else "search"
        if self.left[kind] <= 0:
            return None
        self.left[kind] -= 1
        last = messages[-1].content if messages and messages[-1].role == "assistant" else ""
        gap = "" if not last or last.endswith("\n") else "\n"
        return Message(role="assistant", content=gap + (ANSWER_OPENING if kind == "answer" else SEARCH_OPENING))
