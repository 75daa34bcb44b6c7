"""Guided tool calls: a vLLM structured-output constraint (xgrammar structural tag)
built from a task's tool schemas.

The model may write free text; the moment it writes ``<tool_call>`` the rest of
the block is forced into the chat template's exact call format
``<tool_call>\\n{"name": "NAME", "arguments": {...}}\\n</tool_call>`` with NAME one
of the task's tools and the arguments valid against that tool's JSON schema.
It makes a small model's calls well-formed; it does not choose the call, nor
its values, nor whether to call at all (unless ``at_least_one``).
"""

from __future__ import annotations

import json
from typing import Any

TRIGGER = "<tool_call>"


def _tags(tools: list[dict[str, Any]], opener: str) -> list[dict[str, Any]]:
    tags = []
    for tool in tools:
        fn = tool.get("function", tool)
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        tags.append({
            "type": "tag",
            "begin": f'{opener}\n{{"name": {json.dumps(fn["name"])}, "arguments": ',
            "content": {"type": "json_schema", "json_schema": params},
            "end": "}\n</tool_call>",
        })
    if not tags:
        raise ValueError("guided tool calls need at least one tool")
    return tags


def _triggered(tools: list[dict[str, Any]], at_least_one: bool, stop_after_first: bool) -> dict[str, Any]:
    return {"type": "triggered_tags", "triggers": [TRIGGER], "tags": _tags(tools, TRIGGER),
            "at_least_one": at_least_one, "stop_after_first": stop_after_first}


def _structural(fmt: dict[str, Any]) -> dict[str, Any]:
    return {"structural_tag": json.dumps({"type": "structural_tag", "format": fmt})}


def tool_call_tag(tools: list[dict[str, Any]], *, at_least_one: bool = False, stop_after_first: bool = False) -> dict[str, Any]:
    """``SamplingParams.structured_outputs`` for ``tools`` (OpenAI tool schemas)."""
    return _structural(_triggered(tools, at_least_one, stop_after_first))


def first_call_forced(tools: list[dict[str, Any]], *, stop_after_first: bool = True) -> dict[str, Any]:
    """Sampling overrides that open the *first* turn with a call: its ``assistant_prefix``
    is ``<tool_call>`` and the grammar (which sees only the continuation) completes one
    guided call there; every later turn starts fresh and is guided as ``tool_call_tag``.
    The model still picks the tool and writes every argument value."""
    first = {"type": "or", "elements": _tags(tools, "")}  # the prefix already wrote "<tool_call>"
    if not stop_after_first:  # free text and more guided calls may follow (parallel calls)
        first = {"type": "sequence", "elements": [first, _triggered(tools, False, False)]}
    # Free text may not hold '{"name"' outside a guided call: so a first turn that goes on
    # with a call after the prefix can only be the guided one (never unchecked free text).
    later = {**_triggered(tools, False, stop_after_first), "excludes": ['{"name"']}
    return {"assistant_prefix": TRIGGER, "structured_outputs": _structural({"type": "or", "elements": [first, later]})}
