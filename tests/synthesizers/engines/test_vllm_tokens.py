"""Token-exact rollouts on the real in-process vLLM engine (the embedded model): the shard row's
ids are, token for token, the ids the engine saw and sampled, turn by turn, and the stored
logprobs are the ones the same model gives when the row is fed back as a prompt."""

from __future__ import annotations

import math
import statistics

import pytest

from pipelines.tokenize import RowOptions, trajectories_to_rows
from schemas import Message, Task, Trajectory, Verdict
from schemas.tokens import TokenSource
from synthesizers.agent_loop import Budget, run_agent
from synthesizers.controller import PolicyController
from synthesizers.domains.base import ToolContext
from synthesizers.engines.base import SamplingParams
from synthesizers.guided_calls import required_call
from tests.synthesizers.test_agent_loop import echo_tool

pytestmark = pytest.mark.vllm

START = [Message(role="system", content="You can call the echo tool."),
         Message(role="user", content="Call echo with the text hello, then say what it returned.")]


class Spy:
    """Delegates to the engine and records each request's prompt ids and sampled ids."""

    def __init__(self, engine):
        self.engine, self.turns = engine, []
        self.model_id, self.tokenizer, self.token_exact = engine.model_id, engine.tokenizer, True

    async def generate(self, prompt_ids, params=SamplingParams()):
        completion = await self.engine.generate(prompt_ids, params)
        self.turns.append((list(prompt_ids), list(completion.output_ids or [])))
        return completion

    async def chat(self, *args, **kwargs):
        raise AssertionError("token mode must not call chat")

    async def close(self):
        return None


# echo's own test schema takes no arguments: a call to it has one possible text, which the loop
# would insert (forced_text) without sampling. Here the model writes the text, so it is guided.
ECHO_WITH_TEXT = {"type": "function", "function": {"name": "echo", "parameters": {
    "type": "object", "properties": {"text": {"type": "string", "maxLength": 24}}, "required": ["text"]}}}


def first_turn_is_a_call(messages, info):
    # The first turn is one guided call (an inserted "<tool_call>" prefix); later turns are free.
    return required_call([ECHO_WITH_TEXT]) if info.turn == 0 else {"structured_outputs": None, "assistant_prefix": ""}


async def test_rollout_ids_are_the_engines_own_and_logprobs_reproduce(model_dir, vllm_engine):
    spy = Spy(vllm_engine)
    result = await run_agent(spy, START, [echo_tool()], ctx=ToolContext(task=Task(id="e", domain="test")),
                             params=SamplingParams(seed=5, max_tokens=48, temperature=0.7),
                             budget=Budget(max_turns=2), controller=PolicyController(first_turn_is_a_call))
    assert result.error is None and len(spy.turns) == 2
    assert [m.role for m in result.messages][:4] == ["system", "user", "assistant", "tool"]
    trace = result.trace
    for prompt, sampled in spy.turns:  # turn by turn: what the engine saw, then what it sampled
        assert trace.ids[: len(prompt)] == prompt
        assert trace.ids[len(prompt): len(prompt) + len(sampled)] == sampled
    # The tool result sits between the turns, as context.
    between = trace.ids[len(spy.turns[0][0]) + len(spy.turns[0][1]): len(spy.turns[1][0])]
    assert "<tool_response>" in vllm_engine.tokenizer.decode(between)
    sources = {m: {s for s, i in zip(trace.sources, trace.message_index) if i == m} for m in (2, 4)}
    assert sources[2] == {TokenSource.CONTEXT, TokenSource.INSERTED, TokenSource.GUIDED}
    assert TokenSource.SAMPLED in sources[4] and TokenSource.GUIDED not in sources[4]

    trajectory = Trajectory(id="t", task_id="e", domain="test", messages=result.messages,
                            tools=[echo_tool().schema], verdict=Verdict(passed=True), token_trace=trace)
    (row,), errors = trajectories_to_rows([trajectory], str(model_dir), RowOptions())
    assert not errors and row.token_exact and not row.text_drift and row.input_ids == trace.ids

    scored = await vllm_engine.score(row.input_ids)
    free = [abs(a - b) for a, b, s in zip(row.logprobs, scored, row.token_source) if s == TokenSource.SAMPLED]
    assert len(free) >= 5
    # Same model, same ids: CPU numerics only (measured median ~0.01, max ~0.2).
    assert statistics.median(free) < 0.05 and max(free) < 0.5
    shuffled = [abs(a - b) for a, b in zip(sorted(x for x, s in zip(row.logprobs, row.token_source) if s == 1),
                                          [x for x, s in zip(scored, row.token_source) if s == 1])]
    assert statistics.median(shuffled) > statistics.median(free)  # the comparison can tell rows apart
    # Under a grammar vLLM gives the logprob after the grammar's mask: never below the raw model's.
    guided = [(a, b) for a, b, s in zip(row.logprobs, scored, row.token_source) if s == TokenSource.GUIDED]
    assert guided and all(a >= b - 0.5 for a, b in guided)
    assert all(math.isnan(x) for x, s in zip(row.logprobs, row.token_source) if s in (0, 3))


async def test_a_stop_string_leaves_ids_and_text_in_agreement(vllm_engine):
    tok = vllm_engine.tokenizer
    prompt = tok.encode(tok.apply_chat_template([{"role": "user", "content": "Count from 1 to 9, separated by commas."}],
                                                add_generation_prompt=True, tokenize=False), add_special_tokens=False)
    free = await vllm_engine.generate(prompt, SamplingParams(temperature=0.0, max_tokens=40))
    assert free.error is None and "4" in free.text
    stop = "4"
    cut = await vllm_engine.generate(prompt, SamplingParams(temperature=0.0, max_tokens=40, stop=(stop,)))
    assert cut.error is None and stop not in cut.text and cut.text
    assert tok.decode(cut.output_ids) == cut.text and len(cut.output_logprobs) == len(cut.output_ids)
    assert free.output_ids[: len(cut.output_ids)] == cut.output_ids  # greedy: the same tokens up to the stop
