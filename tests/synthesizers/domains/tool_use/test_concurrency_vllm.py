"""The simulated user and the agent run concurrently over the real engine: many
tool-use rollouts in flight on the embedded model through vLLM, each with its
own simulated user on the same engine; a user's request is being generated
while other rollouts' agent requests are (continuous batching, no waiting)."""

from __future__ import annotations

import asyncio
import time

import pytest

from schemas import Message
from synthesizers.agent_loop import STOP_REASONS, Budget, run_agent
from synthesizers.domains.base import ToolContext
from synthesizers.domains.tool_use.domain import ToolUseDomain
from synthesizers.domains.tool_use.user_sim import GUIDELINES
from verifiers.registry import get_verifier

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


class Recording:
    """Passes chats through to the real engine and records who is in flight."""

    def __init__(self, engine):
        self.engine = engine
        self.model_id = engine.model_id
        self.in_flight = {"agent": 0, "user": 0}
        self.requests = {"agent": 0, "user": 0}
        self.overlaps = 0  # requests that started while the other role had one in flight
        self.spans: list[tuple[str, float, float]] = []

    async def chat(self, messages: list[Message], *, tools=None, params=None):
        role = "user" if messages and messages[0].content.startswith(GUIDELINES) else "agent"
        other = "agent" if role == "user" else "user"
        self.requests[role] += 1
        self.overlaps += self.in_flight[other] > 0
        self.in_flight[role] += 1
        start = time.perf_counter()
        try:
            return await self.engine.chat(messages, tools=tools, params=params)
        finally:
            self.in_flight[role] -= 1
            self.spans.append((role, start, time.perf_counter()))

    async def close(self):
        return None


async def test_user_simulator_and_agent_share_the_real_engine_concurrently(vllm_engine):
    from synthesizers.engines.base import SamplingParams

    # Kept small (4 rollouts, short turns, one user reply each): the point is the overlap, not the length.
    options = {"sources": ["files"], "counts": {"files": 4}, "user_sim": {"max_turns": 1, "max_tokens": 24}}
    domain = ToolUseDomain(options)
    tasks = list(domain.seed_tasks(limit=None, seed=3))
    engine = Recording(vllm_engine)

    async def rollout(i, task):
        sim = domain.user_simulator(task, engine)
        return await run_agent(
            engine, domain.initial_messages(task), domain.tools(task), ctx=ToolContext(task=task, state={}),
            # A blank line ends a turn: the small model otherwise rambles to max_tokens, and a
            # cut-off turn ends the rollout before any user turn (the loop's rule).
            params=SamplingParams(temperature=0.8, max_tokens=48, seed=i, stop=("\n\n",)),
            budget=Budget(max_turns=3, max_total_tokens=4096), is_final=domain.is_final, user_turn=sim.reply)

    results = await asyncio.wait_for(asyncio.gather(*(rollout(i, t) for i, t in enumerate(tasks))), timeout=600)
    assert all(r.stop_reason in STOP_REASONS for r in results)
    assert engine.requests["user"] > 0, f"no user turn ran: {[r.stop_reason for r in results]}"
    # every simulated-user request either added a user turn or ended its conversation
    simulated = [m for r in results for m in r.messages[2:] if m.role == "user"]
    assert len(simulated) <= engine.requests["user"] <= len(simulated) + sum(r.stop_reason == "user_ended" for r in results)
    assert engine.overlaps > 0, f"user and agent requests never overlapped: {engine.spans}"
    verifier = get_verifier("tool-use", "stateful")
    for task, r in zip(tasks, results):
        assert verifier.verify(task, r.messages).reason  # a verdict for every rollout, never an exception
