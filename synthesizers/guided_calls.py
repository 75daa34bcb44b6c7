"""Guided tool calls: a vLLM structured-output constraint (xgrammar structural tag)
built from a task's tool schemas. Shared by every domain with tools.

The model may write free text; the moment it writes ``<tool_call>`` the rest of
the block is forced into the chat template's exact call format
``<tool_call>\\n{"name": "NAME", "arguments": {...}}\\n</tool_call>`` with NAME one
of the task's tools and the arguments valid against that tool's JSON schema.
It makes a small model's calls well-formed; it does not choose the call, nor
its values, nor whether to call at all (unless ``at_least_one``, or
``required_call``: tool_choice "required" done by grammar, one turn at a time).
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


def _triggered(tools: list[dict[str, Any]], at_least_one: bool, stop_after_first: bool,
               excludes: tuple[str, ...] = ()) -> dict[str, Any]:
    fmt = {"type": "triggered_tags", "triggers": [TRIGGER], "tags": _tags(tools, TRIGGER),
           "at_least_one": at_least_one, "stop_after_first": stop_after_first}
    return {**fmt, "excludes": list(excludes)} if excludes else fmt


def _structural(fmt: dict[str, Any]) -> dict[str, Any]:
    return {"structural_tag": json.dumps({"type": "structural_tag", "format": fmt})}


def tool_call_tag(tools: list[dict[str, Any]], *, at_least_one: bool = False, stop_after_first: bool = False,
                  excludes: tuple[str, ...] = ()) -> dict[str, Any]:
    """``SamplingParams.structured_outputs`` for ``tools`` (OpenAI tool schemas);
    ``excludes``: strings the free text may not contain (e.g. a fake ``<tool_response>``)."""
    return _structural(_triggered(tools, at_least_one, stop_after_first, excludes))


# Free text of a guided turn may not hold these: a fake tool result (small models echo the
# template), or a call outside the guided tag (so after the "<tool_call>" prefix only the
# guided call can follow, never unchecked free text).
NO_FAKES = ("<tool_response", "</tool_call>", '{"name"')


def first_call_forced(tools: list[dict[str, Any]], *, stop_after_first: bool = True) -> dict[str, Any]:
    """Sampling overrides that open the *first* turn with a call: its ``assistant_prefix``
    is ``<tool_call>`` and the grammar (which sees only the continuation) completes one
    guided call there; with ``stop_after_first=False`` one more call (and nothing else)
    may follow it (two parallel calls at most: a small model otherwise repeats its call
    until max_tokens). Every later turn starts fresh: free text without
    ``NO_FAKES``, and at most one guided call. The model still picks each tool and
    writes every argument value."""
    first = {"type": "or", "elements": _tags(tools, "")}  # the prefix already wrote "<tool_call>"
    if not stop_after_first:
        more = {"type": "tags_with_separator", "tags": _tags(tools, "\n" + TRIGGER), "separator": "",
                "at_least_one": False, "stop_after_first": True}
        first = {"type": "sequence", "elements": [first, more]}
    later = _triggered(tools, False, True, NO_FAKES)
    return {"assistant_prefix": TRIGGER, "structured_outputs": _structural({"type": "or", "elements": [first, later]})}


def required_call(tools: list[dict[str, Any]], *, only: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Sampling overrides for one turn that is exactly one call and nothing else (OpenAI's
    ``tool_choice: "required"``, which this model cannot follow unguided): the turn opens with
    ``<tool_call>`` and the grammar completes one call to one of ``only`` (default: every tool),
    arguments valid against its schema, then ends at ``</tool_call>``. The model still picks
    the tool among those allowed and writes every value."""
    chosen = [t for t in tools if only is None or t.get("function", t)["name"] in only]
    if only is not None and len(chosen) != len(set(only)):
        known = sorted(t.get("function", t)["name"] for t in tools)
        raise ValueError(f"required_call: unknown tool(s) in {sorted(only)}; known: {known}")
    return {"assistant_prefix": TRIGGER, "structured_outputs": _structural({"type": "or", "elements": _tags(chosen, "")})}
