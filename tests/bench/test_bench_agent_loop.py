"""The agent side of bench_agent_loop without vLLM: every prompt runs concurrently through
the real ``run_agent``, tokens and stop reasons are counted from the results, the
multi-turn side has the simulated user reply between turns, and a failed rollout fails
the benchmark instead of skewing it."""

from __future__ import annotations

import asyncio

import pytest

from bench import bench_agent_loop as bal
from schemas import Message
from synthesizers.engines.base import Completion, SamplingParams


class CountingEngine:
    """Replies with a fixed sentence after a short sleep; records what it was asked and the
    most requests it held at once."""

    model_id = "counting"

    def __init__(self, error: str | None = None):
        self.error = error
        self.seen: list[tuple[list[Message], SamplingParams]] = []
        self.in_flight = self.peak = 0

    async def chat(self, messages, *, tools=None, params: SamplingParams = SamplingParams()) -> Completion:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0.05)
        self.in_flight -= 1
        self.seen.append((list(messages), params))
        if self.error:
            return Completion(finish_reason="error", error=self.error)
        return Completion(text="Bees dance.", finish_reason="stop", prompt_tokens=7, completion_tokens=3)


def test_single_turn_side_runs_every_prompt_at_once():
    engine = CountingEngine()
    tokens, reasons, wall = asyncio.run(bal._agent(engine, bal._prompts(5), 32))
    assert tokens == 5 * 3 and reasons == ["final_answer"] * 5
    assert engine.peak == 5  # concurrent, not one after another
    assert wall >= 0.05
    assert sorted(p.max_tokens for _, p in engine.seen) == [32] * 5
    assert {m[0].content for m, _ in engine.seen} == set(bal._prompts(5))


def test_multi_turn_side_has_the_user_reply_between_turns():
    engine = CountingEngine()
    tokens, reasons, _ = asyncio.run(bal._agent_multi(engine, bal._fact_prompts(3), 16, turns=3))
    assert tokens == 3 * 3 * 3 and reasons == ["max_turns"] * 3
    last_turns = [m for m, _ in engine.seen if len(m) == 5]  # prompt, answer, reply, answer, reply
    assert len(last_turns) == 3
    for convo in last_turns:
        assert [m.role for m in convo] == ["user", "assistant", "user", "assistant", "user"]
        assert convo[2].content == convo[4].content == bal.CONTINUE
    assert all(p.stop == bal.STOP for _, p in engine.seen)
    assert len(bal._LAST["multi"]) == 3  # kept for the loop's own CPU cost


def test_a_failed_rollout_fails_the_benchmark():
    with pytest.raises(RuntimeError, match="agent loop: 2 rollouts failed, first: boom"):
        asyncio.run(bal._agent(CountingEngine(error="boom"), bal._prompts(2), 8))


def test_loop_cpu_replays_the_token_bookkeeping_of_each_turn(embedded_tokenizer):
    from tests.fakes import TokenFakeEngine

    class Engine(TokenFakeEngine):
        def render(self, messages):
            return self.tokenizer.apply_chat_template([m.to_openai() for m in messages], add_generation_prompt=True,
                                                      tokenize=False)

    engine = Engine(embedded_tokenizer, ["Bees dance."])
    asyncio.run(bal._agent_multi(engine, bal._fact_prompts(2), 16, turns=3))
    cost = bal._loop_cpu_per_turn(engine, bal._LAST["multi"])
    assert cost["turns"] == 2 * 3
    assert cost["mean_ms"] > 0 and cost["text_mode_mean_ms"] > 0
