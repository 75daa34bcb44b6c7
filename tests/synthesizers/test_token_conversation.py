"""Token-in/token-out rollouts: the conversation is the engine's own ids, and each token says who chose it."""

from __future__ import annotations

import json

import pytest

from schemas import Message, Task, ToolCall
from schemas.tokens import TokenSource
from synthesizers.agent_loop import Budget, run_agent
from synthesizers.controller import PolicyController
from synthesizers.domains.base import ToolContext
from synthesizers.domains.math.controllers import ANSWER_FORCING, AnswerForcing
from synthesizers.engines.base import SamplingParams, supports_tokens
from synthesizers.guided_calls import first_call_forced
from synthesizers.token_conversation import TemplateNotIncremental, TokenConversation, probe_template
from tests.fakes import FakeEngine, TokenFakeEngine
from tests.synthesizers.test_agent_loop import boxed, echo_tool

CTX = ToolContext(task=Task(id="t1", domain="test"))
START = [Message(role="system", content="sys"), Message(role="user", content="question")]
# The model writes its call its own way (no newlines, extra spaces): exactness keeps it so.
ODD_CALL = '<tool_call>{"name":"echo",  "arguments": {"text": "h\\u00e9"}}</tool_call>'


def turn_tokens(trace, index, *, context=False):
    return [(t, s) for t, s, m in zip(trace.ids, trace.sources, trace.message_index)
            if m == index and (context or s != TokenSource.CONTEXT)]


async def test_every_prompt_is_the_previous_ids_plus_only_new_tokens(embedded_tokenizer):
    engine = TokenFakeEngine(embedded_tokenizer, [f"Let me check. {ODD_CALL}", "So \\boxed{7}."])
    result = await run_agent(engine, START, [echo_tool()], ctx=CTX, params=SamplingParams(seed=1), is_final=boxed)
    assert result.stop_reason == "final_answer"
    trace = result.trace
    first, second = engine.prompts
    # The second prompt starts with the first prompt and the ids sampled for it, untouched.
    sampled = [t for t, s in turn_tokens(trace, 2) if s == TokenSource.SAMPLED]
    assert second[: len(first) + len(sampled)] == first + sampled
    assert trace.ids[: len(second)] == second
    # The model's own spelling of the call survives in the ids (a re-rendering would respace it).
    decoded = embedded_tokenizer.decode(trace.message_tokens(2))
    assert ODD_CALL in decoded
    # Parsed for the loop all the same.
    assert result.messages[2].tool_calls[0].parsed_arguments() == {"text": "hé"}
    assert result.messages[3].content == "echo:hé"


async def test_a_free_turn_is_all_sampled_with_logprobs(embedded_tokenizer):
    engine = TokenFakeEngine(embedded_tokenizer, ["The answer is \\boxed{4}."])
    result = await run_agent(engine, START, [], ctx=CTX, is_final=boxed)
    tokens = turn_tokens(result.trace, 2)
    assert tokens and {s for _, s in tokens} == {TokenSource.SAMPLED}
    lps = [lp for lp, s, m in zip(result.trace.logprobs, result.trace.sources, result.trace.message_index)
           if m == 2 and s == TokenSource.SAMPLED]
    assert lps == [-0.25] * len(tokens)
    # The sampled end token closes the turn: nothing inserted.
    assert result.trace.count(TokenSource.INSERTED) == 0


async def test_a_guided_calls_prefix_is_inserted_and_its_body_guided(embedded_tokenizer):
    engine = TokenFakeEngine(embedded_tokenizer, ['\n{"name": "echo", "arguments": {"text": "x"}}\n</tool_call>', "\\boxed{1}"])
    params = SamplingParams(seed=2, **first_call_forced([echo_tool().schema]))
    result = await run_agent(engine, START, [echo_tool()], ctx=CTX, params=params, is_final=boxed)
    tokens = turn_tokens(result.trace, 2)
    inserted = [t for t, s in tokens if s == TokenSource.INSERTED]
    assert embedded_tokenizer.decode(inserted) == "<tool_call>"
    assert tokens[0][1] == TokenSource.INSERTED  # the prefix comes first
    assert {s for _, s in tokens[len(inserted):]} == {TokenSource.GUIDED}
    assert result.messages[2].tool_calls[0].parsed_arguments() == {"text": "x"}
    # The engine saw the prefix at the end of its prompt; it never samples it.
    assert engine.prompts[0][-len(inserted):] == inserted
    assert engine.params[0].assistant_prefix == ""


async def test_answer_forcing_is_inserted_between_the_models_words(embedded_tokenizer):
    engine = TokenFakeEngine(embedded_tokenizer, ["Two and two make four.", "4}$."])
    result = await run_agent(engine, START, [], ctx=CTX, is_final=boxed, controller=AnswerForcing())
    assert result.stop_reason == "final_answer"
    assert [m.role for m in result.messages] == ["system", "user", "assistant"]
    assert result.messages[2].content == "Two and two make four." + ANSWER_FORCING + "4}$."
    tokens = turn_tokens(result.trace, 2)
    runs = []
    for t, s in tokens:
        if runs and runs[-1][0] == s:
            runs[-1][1].append(t)
        else:
            runs.append((s, [t]))
    assert [s for s, _ in runs] == [TokenSource.SAMPLED, TokenSource.INSERTED, TokenSource.SAMPLED]
    assert embedded_tokenizer.decode(runs[1][1]) == ANSWER_FORCING
    # The model's first end token was taken back: the turn went on after the forcing text.
    assert embedded_tokenizer.eos_token_id not in runs[0][1]
    assert runs[2][1][-1] == embedded_tokenizer.eos_token_id


async def test_an_end_token_the_model_did_not_sample_is_inserted(embedded_tokenizer):
    engine = TokenFakeEngine(embedded_tokenizer, ["cut off mid"], end=False, finish_reason="length")
    result = await run_agent(engine, START, [], ctx=CTX, is_final=boxed)
    assert result.stop_reason == "max_tokens"
    tokens = turn_tokens(result.trace, 2)
    assert tokens[-1] == (embedded_tokenizer.eos_token_id, TokenSource.INSERTED)
    assert {s for _, s in tokens[:-1]} == {TokenSource.SAMPLED}


async def test_a_forced_turn_is_written_not_sampled(embedded_tokenizer):
    engine = TokenFakeEngine(embedded_tokenizer, ["\\boxed{2}"])
    forced = '<tool_call>\n{"name": "echo", "arguments": {"text": "a"}}\n</tool_call>'
    policy = lambda messages, info: {"forced_text": forced} if info.turn == 0 else {}
    result = await run_agent(engine, START, [echo_tool()], ctx=CTX, is_final=boxed, controller=PolicyController(policy))
    assert len(engine.prompts) == 1  # only the second turn reached the engine
    assert {s for _, s in turn_tokens(result.trace, 2)} == {TokenSource.INSERTED}
    assert result.messages[3].content == "echo:a"


async def test_a_branch_goes_on_from_its_parents_own_tokens(embedded_tokenizer):
    parent = await run_agent(TokenFakeEngine(embedded_tokenizer, [f"Check. {ODD_CALL}", "wrong \\boxed{1}"]),
                             START, [echo_tool()], ctx=CTX, is_final=boxed)
    cut = 4  # keep system, user, the call and its result; re-roll the answer
    engine = TokenFakeEngine(embedded_tokenizer, ["right \\boxed{2}"])
    branch = await run_agent(engine, parent.messages[:cut], [echo_tool()], ctx=CTX, is_final=boxed,
                             trace=parent.trace.before_message(cut))
    shared = parent.trace.before_message(cut).ids
    assert engine.prompts[0][: len(shared)] == shared
    assert branch.trace.ids[: len(shared)] == shared
    assert ODD_CALL in embedded_tokenizer.decode(branch.trace.message_tokens(2))


async def test_text_mode_engines_keep_working_without_a_trace():
    engine = FakeEngine(["\\boxed{3}"])
    assert not supports_tokens(engine)
    result = await run_agent(engine, START, [], ctx=CTX, is_final=boxed)
    assert result.trace is None and result.messages[-1].content == "\\boxed{3}"


def test_the_shipped_template_is_incremental(embedded_tokenizer):
    assert probe_template(embedded_tokenizer) is None
    assert probe_template(embedded_tokenizer, [echo_tool().schema]) is None


def test_a_template_that_is_not_prefix_stable_is_named(embedded_tokenizer):
    tok = embedded_tokenizer.__class__.from_pretrained(embedded_tokenizer.name_or_path)
    # Renders only the last two messages: appending a message rewrites what came before.
    tok.chat_template = ("{%- for m in messages[-2:] -%}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                         "{%- endfor -%}{%- if add_generation_prompt -%}<|im_start|>assistant\n{%- endif -%}")
    problem = probe_template(tok)
    assert problem is not None and "prefix-stable" in problem and "\n" not in problem
    with pytest.raises(TemplateNotIncremental):
        conv = TokenConversation(tok, START)
        conv.add_messages([Message(role="user", content="more")])
