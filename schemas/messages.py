"""Chat messages in the OpenAI format (the lingua franca of vLLM, TRL, axolotl).

``ToolCall.function.arguments`` is a JSON *string*, exactly as OpenAI sends it;
use ``ToolCall.parsed_arguments()`` to read it.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: str = "{}"  # JSON text, as in the OpenAI API


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; raises ValueError if they are not a JSON object."""
        value = json.loads(self.function.arguments or "{}")
        if not isinstance(value, dict):
            raise ValueError(f"tool call {self.function.name!r}: arguments are not a JSON object")
        return value

    @classmethod
    def make(cls, call_id: str, name: str, arguments: dict[str, Any]) -> "ToolCall":
        return cls(id=call_id, function=FunctionCall(name=name, arguments=json.dumps(arguments)))


ToolStatus = Literal["ok", "error", "timeout"]


class ToolResult(BaseModel):
    """What a tool call came to, as data: code that steers a rollout or reads its history uses this,
    never the wording of the observation (which is for the model and may change).

    ``status``: "ok" (the tool ran and did its job), "error" (it refused the call or failed: the
    observation says why), "timeout". ``fields``: the tool's own facts, JSON values only (e.g. code's
    ``bash``: ``exit_code``; ``edit``: ``path``, ``line``; an error's ``reason``). Each tool documents
    its fields where it sets them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: ToolStatus = "ok"
    fields: dict[str, Any] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None  # tool name on role=tool messages
    # On role=tool messages the agent loop wrote: the call's outcome as data. Stored with the
    # trajectory (a branch's controller reads its prefix's results), never shown to the model.
    result: ToolResult | None = None

    def to_openai(self) -> dict[str, Any]:
        """The plain dict a chat template or an OpenAI-compatible server expects (no ``result``)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [tc.model_dump() for tc in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        return out


def messages_from_openai(raw: list[dict[str, Any]]) -> list[Message]:
    """Validate OpenAI chat dicts (content may be None; arguments may be a dict)."""
    out = []
    for item in raw:
        item = dict(item)
        if item.get("content") is None:
            item["content"] = ""
        calls = []
        for call in item.get("tool_calls") or []:
            call = dict(call)
            fn = dict(call.get("function", {}))
            if not isinstance(fn.get("arguments", "{}"), str):
                fn["arguments"] = json.dumps(fn["arguments"])
            call["function"] = fn
            call.setdefault("id", f"call_{len(calls)}")
            calls.append(call)
        item["tool_calls"] = calls
        out.append(Message.model_validate(item))
    return out
