"""The real in-process vLLM engine on the embedded model (one engine per session, see tests/conftest.py)."""

from __future__ import annotations

import asyncio
import json

import pytest

from schemas import Message, Task
from synthesizers.agent_loop import STOP_REASONS, Budget, run_agent
from synthesizers.domains.base import ToolContext
from synthesizers.engines.base import SamplingParams
from synthesizers.engines.errors import is_context_overflow

pytestmark = pytest.mark.vllm

QUESTION = [Message(role="user", content="What is 12 + 30? Answer with the number.")]


async def test_generates_text_with_token_counts(vllm_engine):
    completion = await vllm_engine.chat(QUESTION, params=SamplingParams(temperature=0.0, max_tokens=32, seed=0))
    assert completion.error is None, completion.error
    assert completion.text.strip() and completion.finish_reason in ("stop", "length")
    expected_prompt = vllm_engine.tokenizer.apply_chat_template(
        [m.to_openai() for m in QUESTION], add_generation_prompt=True, tokenize=False
    )
    assert completion.prompt_tokens == len(vllm_engine.tokenizer.encode(expected_prompt, add_special_tokens=False))
    assert 0 < completion.completion_tokens <= 32 and completion.latency_s > 0


async def test_max_tokens_cuts_generation(vllm_engine):
    completion = await vllm_engine.chat(QUESTION, params=SamplingParams(max_tokens=3, seed=1, temperature=1.0))
    assert (completion.completion_tokens, completion.finish_reason) == (3, "length")


async def test_assistant_prefix_is_continued_and_returned(vllm_engine):
    prefix = "The answer is $\\boxed{"
    params = SamplingParams(temperature=0.0, max_tokens=8, seed=0, assistant_prefix=prefix)
    completion = await vllm_engine.chat(QUESTION, params=params)
    assert completion.error is None, completion.error
    assert completion.text.startswith(prefix) and len(completion.text) > len(prefix)
    # The model saw the prefix as the start of its own turn (it is part of the prompt).
    rendered = vllm_engine.render(QUESTION) + prefix
    assert completion.prompt_tokens == len(vllm_engine.tokenizer.encode(rendered, add_special_tokens=False))


async def test_structured_outputs_constrain_generation(vllm_engine):
    """vLLM CPU's structured-output backend (xgrammar) really runs here: a regex and a
    tool-call structural tag (synthesizers/guided_calls.py) both hold."""
    from synthesizers.guided_calls import tool_call_tag
    from synthesizers.hermes import parse_tool_calls

    regex = SamplingParams(temperature=1.0, max_tokens=12, seed=3, structured_outputs={"regex": r"(yes|no)-[0-9]{3}"})
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 12}}, "required": ["city"],
        "additionalProperties": False}}}
    call = SamplingParams(temperature=1.0, max_tokens=48, seed=3,
                          structured_outputs=tool_call_tag([tool], at_least_one=True, stop_after_first=True))
    weather = [Message(role="user", content="Weather in Oslo?")]
    a, b = await asyncio.gather(vllm_engine.chat(QUESTION, params=regex), vllm_engine.chat(weather, tools=[tool], params=call))
    assert a.error is None and b.error is None, (a.error, b.error)
    import re

    assert re.fullmatch(r"(yes|no)-[0-9]{3}", a.text), a.text
    content, calls, errors = parse_tool_calls(b.text)
    assert not errors and [c.function.name for c in calls] == ["get_weather"], b.text
    assert set(calls[0].parsed_arguments()) == {"city"}


async def test_required_call_makes_the_turn_one_call(vllm_engine):
    """``guided_calls.required_call``: with the prefix and grammar the real model's whole turn is
    one well-formed call to the allowed tool, even where it would rather chat."""
    from synthesizers.guided_calls import required_call
    from synthesizers.hermes import parse_tool_calls

    tools = [{"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": {"text": {"type": "string", "maxLength": 40}}, "required": ["text"],
        "additionalProperties": False}}} for name in ("note", "answer")]
    params = SamplingParams(temperature=1.0, max_tokens=64, seed=5, **required_call(tools, only=("answer",)))
    completion = await vllm_engine.chat([Message(role="user", content="Tell me a long story about cats.")],
                                        tools=tools, params=params)
    assert completion.error is None, completion.error
    content, calls, errors = parse_tool_calls(completion.text)
    assert not errors and content.strip() == "" and [c.function.name for c in calls] == ["answer"], completion.text
    assert completion.text.rstrip().endswith("</tool_call>")


async def test_seeds_make_sampling_reproducible(vllm_engine):
    params = [SamplingParams(temperature=1.0, max_tokens=24, seed=s) for s in (11, 11, 12, 13, 14)]
    texts = [c.text for c in await asyncio.gather(*[vllm_engine.chat(QUESTION, params=p) for p in params])]
    assert texts[0] == texts[1]  # same seed, same text, even when batched with others
    assert len(set(texts[1:])) > 1  # different seeds actually sample differently


async def test_a_repetition_penalty_reaches_the_sampler(vllm_engine):
    loop = [Message(role="user", content="Say go many times.")]
    start = "go go go go go go go go"  # a started loop that greedy decoding carries on

    def params(**kw):
        return SamplingParams(temperature=0.0, max_tokens=24, assistant_prefix=start, **kw)

    plain, penalised = await asyncio.gather(vllm_engine.chat(loop, params=params()),
                                            vllm_engine.chat(loop, params=params(repetition_penalty=1.8)))
    # Greedy decoding, same prompt: only the penalty can make the two differ.
    assert plain.text.startswith(start) and penalised.text.startswith(start)
    assert plain.text != penalised.text


async def test_prompt_longer_than_the_context_is_a_recorded_failure(vllm_engine):
    huge = [Message(role="user", content="word " * (vllm_engine.max_model_len + 100))]
    completion = await vllm_engine.chat(huge, params=SamplingParams(max_tokens=8))
    assert completion.finish_reason == "error" and is_context_overflow(completion.error)


async def test_usable_from_another_event_loop_in_another_thread(vllm_engine):
    def in_fresh_loop():
        return asyncio.run(vllm_engine.chat(QUESTION, params=SamplingParams(max_tokens=8, seed=3)))

    completion = await asyncio.to_thread(in_fresh_loop)
    assert completion.error is None and completion.completion_tokens > 0


class AddTool:
    name = "add"
    needs_sandbox = False
    schema = {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two integers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        },
    }

    def run(self, arguments, ctx):
        return json.dumps(int(arguments["a"]) + int(arguments["b"]))


async def test_eight_concurrent_agent_loops_finish(vllm_engine):
    system = Message(role="system", content="Use the add tool to add numbers, then state the result.")
    budget = Budget(max_turns=3, max_total_tokens=1536, max_tool_output_chars=500)

    async def one(i: int):
        messages = [system, Message(role="user", content=f"What is {i} + {i * 7}?")]
        ctx = ToolContext(task=Task(id=f"t{i}", domain="test"))
        params = SamplingParams(temperature=0.7, max_tokens=96, seed=i)
        return await run_agent(vllm_engine, messages, [AddTool()], ctx=ctx, params=params, budget=budget)

    results = await asyncio.wait_for(asyncio.gather(*[one(i) for i in range(8)]), timeout=600)
    for result in results:
        assert result.stop_reason in STOP_REASONS and result.stop_reason != "engine_error", result.error
        assert result.messages[2].role == "assistant" and result.tokens.completion > 0
        assert result.turns >= 1
