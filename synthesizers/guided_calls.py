"""Guided tool calls: a vLLM structured-output constraint (xgrammar structural tag)
built from a task's tool schemas. Shared by every domain with tools.

The model may write free text; the moment it writes ``<tool_call>`` the rest of
the block is forced into the chat template's exact call format
``<tool_call>\\n{"name": "NAME", "arguments": {...}}\\n</tool_call>`` with NAME one
of the task's tools and the arguments valid against that tool's JSON schema.
It makes a small model's calls well-formed; it does not choose the call, nor
its values, nor whether to call at all (unless ``at_least_one``, or
``required_call``: tool_choice "required" done by grammar, one turn at a time).

A constraint that admits one text only (a call whose tool and every argument value
are fixed: a scripted reproduce/check/undo/submit, an answer with one possible
citation) leaves the model nothing to choose: ``resolve_single_choice`` turns such
sampling fields into ``forced_text`` (``SamplingParams.forced_text``), which the
agent loop writes without sampling and token-exact rows count as inserted (source
3, no loss), instead of "guided" tokens the model never chose. ``required_call``
(and the code domain's ``repo_turns.one_of``) do it for every turn they build.
"""

from __future__ import annotations

import json
import re
from typing import Any

try:  # Python 3.11+
    import re._parser as _sre_parse
    from re._constants import IN, LITERAL, MAX_REPEAT, MIN_REPEAT, SUBPATTERN
except ImportError:  # pragma: no cover - older Pythons
    import sre_parse as _sre_parse  # type: ignore[no-redef]
    from sre_constants import IN, LITERAL, MAX_REPEAT, MIN_REPEAT, SUBPATTERN  # type: ignore[no-redef]

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
    return resolve_single_choice(
        {"assistant_prefix": TRIGGER, "structured_outputs": _structural({"type": "or", "elements": _tags(chosen, "")})})


# --- constraints that leave one choice -------------------------------------------------------

_FREE = object()  # "more than one value" (or not known to be one): a value can be None, so not None
# Keywords that say nothing about which values are valid.
_ANNOTATIONS = frozenset({"description", "title", "default", "examples", "$comment", "$schema", "$id",
                          "deprecated", "readOnly", "writeOnly"})
# Keywords whose effect is not modelled here: a schema holding one is never taken as single-choice.
_UNMODELLED = frozenset({"$ref", "allOf", "not", "if", "then", "else", "dependentSchemas", "dependentRequired",
                         "dependencies", "patternProperties", "propertyNames", "unevaluatedProperties",
                         "additionalItems", "unevaluatedItems", "prefixItems", "contains"})
# ``StructuredOutputsParams`` fields that constrain the text (the rest are options).
_CONSTRAINTS = ("json", "regex", "choice", "grammar", "json_object", "structural_tag")


def _only_value(schema: Any) -> Any:
    """The one JSON value ``schema`` admits, or ``_FREE``. As vLLM's xgrammar compiles schemas
    (strict mode): an object with ``properties`` admits no other property unless
    ``additionalProperties`` says so, and writes them in ``properties`` order.
    One value: a ``const``, a one-element ``enum``, ``null``, an ``anyOf``/``oneOf`` of one
    branch, an object whose properties are all required and all single-valued, an array of a
    fixed length whose items are single-valued."""
    if not isinstance(schema, dict) or _UNMODELLED & schema.keys():
        return _FREE
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        enum = schema["enum"]
        return enum[0] if isinstance(enum, list) and len(enum) == 1 else _FREE
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = schema[key]
            alone = not (set(schema) - {key} - _ANNOTATIONS)
            return _only_value(branches[0]) if alone and isinstance(branches, list) and len(branches) == 1 else _FREE
    kind = schema.get("type")
    if kind == "null":
        return None
    if kind == "object":
        return _only_object(schema)
    if kind == "array":
        return _only_array(schema)
    return _FREE


def _only_object(schema: dict[str, Any]) -> Any:
    props = schema.get("properties")
    # xgrammar: ``{"type": "object"}`` admits any object; with ``properties`` (even ``{}``) only those.
    if not isinstance(props, dict) or schema.get("additionalProperties", False) is not False:
        return _FREE
    required = schema.get("required") or []
    if not isinstance(required, list) or set(required) != set(props):
        return _FREE  # an optional property may be left out: two texts
    value = {}
    for name, sub in props.items():
        value[name] = _only_value(sub)
        if value[name] is _FREE:
            return _FREE
    return value


def _only_array(schema: dict[str, Any]) -> Any:
    low, high = schema.get("minItems", 0), schema.get("maxItems")
    if not isinstance(high, int) or low != high:
        return _FREE
    if high == 0:
        return []
    if high > 1 and schema.get("uniqueItems"):
        return _FREE  # n copies of one value are not unique: nothing is valid
    item = _only_value(schema.get("items"))
    return _FREE if item is _FREE else [item] * high


def _regex_literal(pattern: Any) -> str | None:
    """The one string a regex matches, when it is a literal (escapes, plain groups, exact
    repeats ``{n}``, a one-character class); None for any class, alternation or quantifier."""
    if not isinstance(pattern, str):
        return None
    try:
        parsed = _sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return None
    if parsed.state.flags & ~re.UNICODE:  # inline flags, e.g. (?i): more than one text
        return None
    return _literal_items(list(parsed))


def _literal_items(items: list[tuple[Any, Any]]) -> str | None:
    out = []
    for op, arg in items:
        if op is LITERAL:
            out.append(chr(arg))
        elif op is SUBPATTERN:
            _, add_flags, del_flags, sub = arg
            text = None if add_flags or del_flags else _literal_items(list(sub))
            if text is None:
                return None
            out.append(text)
        elif op in (MAX_REPEAT, MIN_REPEAT):
            low, high, sub = arg
            text = _literal_items(list(sub)) if low == high else None
            if text is None:
                return None
            out.append(text * low)
        elif op is IN and len(arg) == 1 and arg[0][0] is LITERAL:
            out.append(chr(arg[0][1]))
        else:
            return None
    return "".join(out)


def _format_text(fmt: Any) -> str | None:
    """The one text an xgrammar structural-tag format admits, or None."""
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "const_string":
        return fmt.get("value") if isinstance(fmt.get("value"), str) else None
    if kind == "json_schema":
        value = _only_value(fmt.get("json_schema"))
        return None if value is _FREE else json.dumps(value, ensure_ascii=False)
    if kind == "regex":
        return _regex_literal(fmt.get("pattern"))
    if kind == "or":
        elements = fmt.get("elements")
        return _format_text(elements[0]) if isinstance(elements, list) and len(elements) == 1 else None
    if kind == "sequence":
        parts = [_format_text(e) for e in fmt.get("elements") or [None]]
        return None if any(p is None for p in parts) else "".join(parts)
    if kind == "tag":
        begin, end = fmt.get("begin"), fmt.get("end")
        if isinstance(end, list):
            end = end[0] if len(end) == 1 else None
        content = _format_text(fmt.get("content"))
        if not isinstance(begin, str) or not isinstance(end, str) or content is None:
            return None
        return begin + content + end
    return None  # free text (any_text, triggered_tags, ...), a grammar, or a kind not known here


def _loads(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def single_choice_text(structured_outputs: dict[str, Any] | None) -> str | None:
    """The one text ``structured_outputs`` (``SamplingParams.structured_outputs``) admits, or
    None when it leaves any choice (or is not understood here). Recognised: a structural tag
    whose format is one tag (or a sequence of them) with a fully determined JSON schema
    (``_only_value``), a constant string or a literal regex; a JSON schema with one value; a
    literal regex; a ``choice`` of one. JSON is written as ``json.dumps`` does (its default
    separators, non-ASCII kept): the grammar allows any whitespace between tokens and the
    text it forces parses to the same value. For guided calls that is the chat template's
    call format exactly (``_tags``: ``\n{"name": NAME, "arguments": ARGS}\n</tool_call>``
    after the ``<tool_call>`` prefix)."""
    if not isinstance(structured_outputs, dict):
        return None
    given = [(k, v) for k, v in structured_outputs.items() if k in _CONSTRAINTS and v not in (None, False)]
    if len(given) != 1:
        return None
    key, value = given[0]
    if key == "structural_tag":
        tag = _loads(value)
        if not isinstance(tag, dict) or tag.get("type") != "structural_tag":
            return None  # the legacy form (structures + triggers) allows free text
        return _format_text(tag.get("format"))
    if key == "regex":
        return _regex_literal(value)
    if key == "json":
        only = _only_value(_loads(value))
        return None if only is _FREE else json.dumps(only, ensure_ascii=False)
    if key == "choice":
        return value[0] if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str) else None
    return None


def resolve_single_choice(fields: dict[str, Any]) -> dict[str, Any]:
    """Sampling fields (a turn policy's, ``SamplingParams`` field names) with a single-choice
    constraint turned into ``forced_text`` (the text the grammar would have forced, written
    after ``assistant_prefix``, which is kept) and no ``structured_outputs``; other fields
    are returned as they are."""
    if fields.get("forced_text") is not None:
        return fields
    text = single_choice_text(fields.get("structured_outputs"))
    if text is None:
        return fields
    return {**fields, "forced_text": text, "structured_outputs": None}
