"""The loss mask comes from the real chat-template rendering: decode every loss
span and find exactly the assistant contents (with their tool calls), never
system, user or tool text."""

import json

import pytest

from pipelines.masking import ChatMasker
from schemas import Message, ToolCall

SYSTEM = "SYSTEM-TEXT you are a careful solver"
USER = "USER-TEXT what is 17 + 25?"
TOOL_OUT = "TOOL-TEXT 42"
THINK = "ASSISTANT-ONE let me compute it."
FINAL = "ASSISTANT-TWO so the answer is \\boxed{42}."
TOOLS = [{"type": "function", "function": {"name": "python", "description": "run code",
          "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}}}]


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def conversation():
    return [
        Message(role="system", content=SYSTEM),
        Message(role="user", content=USER),
        Message(role="assistant", content=THINK, tool_calls=[ToolCall.make("c1", "python", {"code": "print(17+25)"})]),
        Message(role="tool", content=TOOL_OUT, tool_call_id="c1", name="python"),
        Message(role="assistant", content=FINAL),
    ]


def loss_spans(ids, mask):
    spans, cur = [], []
    for tok, m in zip(ids, mask):
        if m:
            cur.append(tok)
        elif cur:
            spans.append(cur)
            cur = []
    if cur:
        spans.append(cur)
    return spans


def test_assistant_policy_trains_on_exactly_the_assistant_turns(tokenizer):
    r = ChatMasker(tokenizer, "assistant").render(conversation(), TOOLS)
    assert len(r.input_ids) == len(r.loss_mask)
    assert r.input_ids == tokenizer(r.text, add_special_tokens=False)["input_ids"]
    spans = [tokenizer.decode(s) for s in loss_spans(r.input_ids, r.loss_mask)]
    assert len(spans) == 2
    assert spans[0].startswith(THINK)
    assert "<tool_call>" in spans[0] and '"python"' in spans[0] and "print(17+25)" in spans[0]
    assert spans[1].startswith(FINAL)
    end = tokenizer.eos_token or "<|im_end|>"
    assert all(s.rstrip().endswith(end) for s in spans), spans
    everything = "".join(spans)
    for forbidden in ("SYSTEM-TEXT", "USER-TEXT", "TOOL-TEXT", "<|im_start|>", "python\", \"description"):
        assert forbidden not in everything
    # the tool call in the loss span is valid JSON the agent loop can parse back
    body = spans[0].split("<tool_call>")[1].split("</tool_call>")[0]
    assert json.loads(body)["arguments"] == {"code": "print(17+25)"}


def test_policies_widen_the_mask_as_documented(tokenizer):
    conv = conversation()
    counts = {p: sum(ChatMasker(tokenizer, p).render(conv, TOOLS).loss_mask)
              for p in ("assistant", "assistant+user", "all-but-tool", "none")}
    assert counts["assistant"] < counts["assistant+user"] < counts["all-but-tool"] < counts["none"]
    r = ChatMasker(tokenizer, "all-but-tool").render(conv, TOOLS)
    text = "".join(tokenizer.decode(s) for s in loss_spans(r.input_ids, r.loss_mask))
    assert "USER-TEXT" in text and "SYSTEM-TEXT" in text and "TOOL-TEXT" not in text
    r = ChatMasker(tokenizer, "none").render(conv, TOOLS)
    assert all(r.loss_mask)


def test_unknown_policy_is_refused(tokenizer):
    with pytest.raises(ValueError, match="unknown masking policy"):
        ChatMasker(tokenizer, "tool-only")
