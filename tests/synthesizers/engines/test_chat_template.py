"""The tool-aware chat template: the invariants the masking code relies on, and tool rendering.

Rendered with transformers' own Jinja renderer (what vLLM and the masking code use),
from the template file itself and from the converted model folder.
"""

from __future__ import annotations

import json

import pytest
from transformers.utils.chat_template_utils import render_jinja_template

from schemas import Message, ToolCall
from synthesizers.engines.model_store import chat_template
from synthesizers.hermes import parse_tool_calls, render_assistant_text

GEN_PROMPT = "<|im_start|>assistant\n"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "python",
            "description": "Run Python <code> & print output",
            "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
        },
    }
]
CONVERSATION = [
    Message(role="system", content="You solve math."),
    Message(role="user", content="What is 2+3?"),
    Message(role="assistant", content="Let me run it.", tool_calls=[ToolCall.make("call_0_0", "python", {"code": "print(2+3)"})]),
    Message(role="tool", content="5", tool_call_id="call_0_0", name="python"),
    Message(role="assistant", content="", tool_calls=[ToolCall.make("call_1_0", "python", {"code": "x"}), ToolCall.make("call_1_1", "python", {"code": "y"})]),
    Message(role="tool", content="x out", tool_call_id="call_1_0", name="python"),
    Message(role="tool", content="y out", tool_call_id="call_1_1", name="python"),
    Message(role="tool", content="Error: malformed tool call"),  # answers a malformed call: no id
    Message(role="assistant", content="The answer is \\boxed{5}."),
]


def render(messages, tools=None, add_generation_prompt=False, template=None):
    return render_jinja_template(
        conversations=[[m.to_openai() for m in messages]],
        tools=tools,
        chat_template=template or chat_template(),
        add_generation_prompt=add_generation_prompt,
    )[0][0]


@pytest.mark.parametrize("tools", [None, TOOLS])
def test_rendering_is_prefix_stable(tools):
    for k in range(len(CONVERSATION)):
        shorter, longer = render(CONVERSATION[:k], tools), render(CONVERSATION[: k + 1], tools)
        assert longer.startswith(shorter), f"rendering {k} messages is not a prefix of rendering {k + 1}"


@pytest.mark.parametrize("tools", [None, TOOLS])
def test_generation_prompt_is_appended_after_the_conversation(tools):
    for k in range(1, len(CONVERSATION) + 1):
        with_prompt = render(CONVERSATION[:k], tools, add_generation_prompt=True)
        assert with_prompt.endswith(GEN_PROMPT)
        assert with_prompt == render(CONVERSATION[:k], tools) + GEN_PROMPT


def test_tools_are_rendered_in_the_system_turn():
    text = render(CONVERSATION[:2], TOOLS)
    system = text.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\nYou solve math.")
    inside = system.split("<tools>\n")[1].split("\n</tools>")[0]
    assert json.loads(inside) == TOOLS[0]  # valid JSON, not HTML-escaped
    assert "<tool_call>" in system and '"arguments"' in system
    assert "<tools>" not in render(CONVERSATION[:2])  # no tools, no tool block


def test_default_system_turn_carries_tools_when_no_system_message():
    text = render([Message(role="user", content="hi")], TOOLS)
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert "<tools>" in text and text.endswith("<|im_start|>user\nhi<|im_end|>\n")


def test_assistant_turn_body_is_exactly_the_hermes_render():
    for message in (CONVERSATION[2], CONVERSATION[4], CONVERSATION[8]):
        turn = render(CONVERSATION[:1] + [message]).split("<|im_start|>assistant\n")[1]
        assert turn == render_assistant_text(message.content, message.tool_calls) + "<|im_end|>\n"


def test_assistant_turn_round_trips_through_the_parser():
    message = CONVERSATION[4]
    body = render(CONVERSATION[:1] + [message]).split("<|im_start|>assistant\n")[1].removesuffix("<|im_end|>\n")
    content, calls, errors = parse_tool_calls(body, turn=1)
    assert (content, calls, errors) == (message.content, message.tool_calls, [])


def test_each_tool_message_is_its_own_user_turn_with_a_tool_response():
    text = render(CONVERSATION[:8])
    for content in ("5", "x out", "y out", "Error: malformed tool call"):
        assert f"<|im_start|>user\n<tool_response>\n{content}\n</tool_response><|im_end|>\n" in text


def test_arguments_given_as_a_dict_render_like_a_json_string():
    as_string = CONVERSATION[2].to_openai()
    as_dict = json.loads(json.dumps(as_string))
    as_dict["tool_calls"][0]["function"]["arguments"] = {"code": "print(2+3)"}
    template = chat_template()
    one = render_jinja_template(conversations=[[as_string]], chat_template=template)[0][0]
    two = render_jinja_template(conversations=[[as_dict]], chat_template=template)[0][0]
    assert one == two


def test_converted_model_uses_the_template(model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    assert tokenizer.chat_template == chat_template()
    messages = [m.to_openai() for m in CONVERSATION[:4]]
    text = tokenizer.apply_chat_template(messages, tools=TOOLS, add_generation_prompt=True, tokenize=False)
    assert text == render(CONVERSATION[:4], TOOLS, add_generation_prompt=True)
    ids = tokenizer.encode(GEN_PROMPT, add_special_tokens=False)
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")  # a single special token
