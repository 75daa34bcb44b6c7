"""Hermes tool-call parsing: well-formed calls, adversarial model output, and the inverse render."""

from __future__ import annotations

import json

import pytest

from schemas import ToolCall
from synthesizers.hermes import call_id, parse_tool_calls, render_assistant_text


def test_single_call_is_extracted_and_removed_from_content():
    text = 'I will compute it.\n<tool_call>\n{"name": "python", "arguments": {"code": "print(2+3)"}}\n</tool_call>'
    content, calls, errors = parse_tool_calls(text, turn=3)
    assert content == "I will compute it."
    assert errors == []
    assert [c.function.name for c in calls] == ["python"]
    assert calls[0].parsed_arguments() == {"code": "print(2+3)"}
    assert calls[0].id == "call_3_0"


def test_no_call_leaves_text_untouched():
    content, calls, errors = parse_tool_calls("The answer is \\boxed{5}.")
    assert (content, calls, errors) == ("The answer is \\boxed{5}.", [], [])


def test_multiple_calls_get_sequential_deterministic_ids():
    text = (
        '<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call> then '
        '<tool_call>  {"name": "b", "arguments": {}}  </tool_call>'
    )
    content, calls, errors = parse_tool_calls(text, turn=1)
    assert [(c.id, c.function.name) for c in calls] == [("call_1_0", "a"), ("call_1_1", "b")]
    assert content == "then"
    assert errors == []
    assert parse_tool_calls(text, turn=1)[1] == calls  # same input, same ids


def test_two_objects_in_one_block_and_a_json_list_are_both_calls():
    _, calls, errors = parse_tool_calls('<tool_call>{"name": "a", "arguments": {}}\n{"name": "b", "arguments": {}}</tool_call>')
    assert [c.function.name for c in calls] == ["a", "b"] and errors == []
    _, calls, errors = parse_tool_calls('<tool_call>[{"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}]</tool_call>')
    assert [c.function.name for c in calls] == ["a", "b"] and errors == []


def test_code_fences_inside_and_around_blocks_are_tolerated():
    inside = '<tool_call>\n```json\n{"name": "python", "arguments": {"code": "1"}}\n```\n</tool_call>'
    _, calls, errors = parse_tool_calls(inside)
    assert [c.function.name for c in calls] == ["python"] and errors == []
    around = 'Run:\n```xml\n<tool_call>{"name": "python", "arguments": {"code": "1"}}</tool_call>\n```\nDone.'
    content, calls, errors = parse_tool_calls(around)
    assert [c.function.name for c in calls] == ["python"] and errors == []
    assert "```" not in content and content.startswith("Run:") and content.endswith("Done.")


def test_double_encoded_and_missing_arguments_are_accepted():
    _, calls, _ = parse_tool_calls('<tool_call>{"name": "f", "arguments": "{\\"k\\": 2}"}</tool_call>')
    assert calls[0].parsed_arguments() == {"k": 2}
    _, calls, _ = parse_tool_calls('<tool_call>{"name": "f"}</tool_call>')
    assert calls[0].parsed_arguments() == {}


@pytest.mark.parametrize(
    "block, fragment",
    [
        ("<tool_call>{name: python}</tool_call>", "not valid JSON"),
        ('<tool_call>{"arguments": {"code": "1"}}</tool_call>', 'missing "name"'),
        ('<tool_call>{"name": "", "arguments": {}}</tool_call>', 'missing "name"'),
        ('<tool_call>{"name": "f", "arguments": [1, 2]}</tool_call>', "must be a JSON object"),
        ('<tool_call>{"name": "f", "arguments": "not json"}</tool_call>', "not JSON"),
        ('<tool_call>"python"</tool_call>', "must be a JSON object"),
        ("<tool_call>   </tool_call>", "empty"),
        ('<tool_call>{"name": "f", "arguments": {}}', "unclosed"),
        ('<tool_call>{"name": "f", "arguments": {"a": 1}', "unclosed"),
    ],
)
def test_malformed_blocks_become_errors_and_stay_in_content(block, fragment):
    text = f"Trying.\n{block}"
    content, calls, errors = parse_tool_calls(text)
    assert calls == []
    assert len(errors) == 1 and fragment in errors[0]
    assert block.strip() in content  # what the model wrote stays visible before the error observation


def test_good_call_survives_beside_a_malformed_one():
    text = '<tool_call>{bad json}</tool_call>\n<tool_call>{"name": "ok", "arguments": {}}</tool_call>'
    content, calls, errors = parse_tool_calls(text, turn=0)
    assert [c.function.name for c in calls] == ["ok"]
    assert calls[0].id == "call_0_0"  # ids count valid calls only
    assert len(errors) == 1 and "{bad json}" in content


def test_huge_garbage_error_is_clipped():
    _, _, errors = parse_tool_calls("<tool_call>" + "x" * 10_000 + "</tool_call>")
    assert len(errors[0]) < 400


def test_render_then_parse_round_trips():
    calls = [ToolCall.make(call_id(2, 0), "python", {"code": "print('é<>')"}), ToolCall.make(call_id(2, 1), "search", {"q": "a b"})]
    for content in ("Let me check.", ""):
        text = render_assistant_text(content, calls)
        parsed_content, parsed_calls, errors = parse_tool_calls(text, turn=2)
        assert (parsed_content, parsed_calls, errors) == (content, calls, [])


def test_render_format_is_the_hermes_block():
    call = ToolCall.make("call_0_0", "f", {"a": 1})
    assert render_assistant_text("Hi", [call]) == 'Hi\n<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'
    assert json.loads(render_assistant_text("", [call]).split("\n")[1]) == {"name": "f", "arguments": {"a": 1}}
