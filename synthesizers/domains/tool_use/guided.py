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


def tool_call_tag(tools: list[dict[str, Any]], *, at_least_one: bool = False, stop_after_first: bool = False) -> dict[str, Any]:
    """``SamplingParams.structured_outputs`` for ``tools`` (OpenAI tool schemas)."""
    tags = []
    for tool in tools:
        fn = tool.get("function", tool)
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        tags.append({
            "type": "tag",
            "begin": f'{TRIGGER}\n{{"name": {json.dumps(fn["name"])}, "arguments": ',
            "content": {"type": "json_schema", "json_schema": params},
            "end": "}\n</tool_call>",
        })
    if not tags:
        raise ValueError("guided tool calls need at least one tool")
    fmt = {"type": "triggered_tags", "triggers": [TRIGGER], "tags": tags,
           "at_least_one": at_least_one, "stop_after_first": stop_after_first}
    return {"structural_tag": json.dumps({"type": "structural_tag", "format": fmt})}
