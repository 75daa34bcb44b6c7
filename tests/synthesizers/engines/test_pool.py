"""``EndpointPool`` against real local servers (``bench.openai_sim`` processes on 127.0.0.1, each
one an endpoint that the tests kill, freeze and restart): requests go to the endpoint with the
fewest in flight; a killed or hung endpoint's in-flight requests finish on the other one and are
counted as endpoint retries (a rollout through it ends as the healthy run would); the endpoint is
taken out, probed, and put back once it answers again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest

from bench.openai_sim import SimProcess, agent_script
from synthesizers.agent_loop import Budget, run_agent
from synthesizers.domains.base import ToolContext
from synthesizers.engines.base import SamplingParams
from synthesizers.engines.errors import is_endpoint_unavailable
from synthesizers.engines.factory import make_engine
from synthesizers.engines.openai_http import OpenAIHTTPEngine
from synthesizers.engines.pool import EndpointPool
from pipelines.rollout import INFRASTRUCTURE_STOPS
from schemas import Message


@pytest.fixture
def sims():
    started: list[SimProcess] = []

    def start(**options) -> SimProcess:
        sim = SimProcess(**options).start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        if sim.proc is not None:
            os.kill(sim.proc.pid, signal.SIGCONT)  # a frozen one must be able to die
        sim.kill()


def pool_of(*sims, **options) -> EndpointPool:
    options.setdefault("probe_interval_s", 0.2)
    pool = make_engine(",".join(s.url for s in sims), **options)
    assert isinstance(pool, EndpointPool)
    return pool


def served(pool: EndpointPool) -> list[int]:
    return [e["served"] for e in pool.stats()]


async def wait_for(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


PARAMS = SamplingParams(max_tokens=64, seed=5)


async def test_concurrent_requests_split_evenly_by_in_flight_count(sims):
    a, b = sims(capacity=64, delay_s=0.02, reply_tokens=20), sims(capacity=64, delay_s=0.02, reply_tokens=20)
    pool = pool_of(a, b)
    try:
        done = await asyncio.gather(*[pool.generate([1, 2, 3], PARAMS) for _ in range(10)])
        assert all(c.error is None and len(c.output_ids) == 20 for c in done)
        assert served(pool) == [5, 5]
        assert a.stats()["peak_active"] == 5 and b.stats()["peak_active"] == 5  # in flight at once on each
    finally:
        await pool.close()


async def test_a_slow_endpoint_gets_fewer_requests_than_round_robin_would_give(sims):
    slow = sims(capacity=64, delay_s=1.0, reply_tokens=60)  # a minute a request: in flight all test long
    fast = sims(capacity=64, delay_s=0.001, reply_tokens=2)
    pool = pool_of(slow, fast)
    try:
        first = [asyncio.ensure_future(pool.generate([1, 2, 3], PARAMS)) for _ in range(2)]  # a tie: one each
        await wait_for(lambda: [e["in_flight"] for e in pool.stats()] == [1, 0])  # fast's is back, slow's is not
        for _ in range(20):  # one at a time: every request sees the slow endpoint busier
            assert (await pool.generate([1, 2, 3], PARAMS)).error is None
        assert (slow.stats()["requests"], fast.stats()["requests"]) == (1, 21)  # round robin: 11 / 11
    finally:
        for f in first:
            f.cancel()
        await pool.close()


async def test_a_killed_endpoint_fails_over_is_counted_taken_out_and_readmitted(sims):
    a, b = sims(capacity=64, delay_s=0.05, reply_tokens=20), sims(capacity=64, delay_s=0.05, reply_tokens=20)
    pool = pool_of(a, b)
    try:
        batch = [asyncio.ensure_future(pool.generate([1, 2, 3], PARAMS)) for _ in range(12)]
        await wait_for(lambda: [e["in_flight"] for e in pool.stats()] == [6, 6])
        await wait_for(lambda: a.stats()["active"] == 6)  # the requests are on the server, decoding
        a.kill()
        done = await asyncio.gather(*batch)
        assert all(c.error is None and len(c.output_ids) == 20 for c in done)  # every one finished
        assert sorted(c.endpoint_retries for c in done) == [0] * 6 + [1] * 6  # a's six, retried once each
        out, ok = pool.stats()
        assert (out["healthy"], out["failed"], out["taken_out"], out["served"]) == (False, 6, 1, 0)
        assert ok["healthy"] and ok["served"] == 12 and b.stats()["completed"] == 12

        # While it is out, nothing is sent to it.
        await asyncio.gather(*[pool.generate([1, 2, 3], PARAMS) for _ in range(4)])
        assert served(pool) == [0, 16] and pool.stats()[0]["failed"] == 6

        # It comes back on the same port: the probe puts it back, and it gets requests again.
        sims(port=a.port, capacity=64, delay_s=0.05, reply_tokens=20)
        await wait_for(lambda: pool.stats()[0]["healthy"])
        assert pool.stats()[0]["readmitted"] == 1 and [e.kind for e in pool.events] == ["out", "in"]
        again = await asyncio.gather(*[pool.generate([1, 2, 3], PARAMS) for _ in range(8)])
        assert all(c.error is None and c.endpoint_retries == 0 for c in again)
        assert served(pool) == [4, 20]
    finally:
        await pool.close()


async def test_a_hung_endpoint_times_out_and_is_taken_out_until_it_answers(sims):
    a, b = sims(capacity=64, delay_s=0.01, reply_tokens=10), sims(capacity=64, delay_s=0.01, reply_tokens=10)
    pool = pool_of(a, b, timeout_s=1.5)
    try:
        assert (await pool.generate([1, 2, 3], PARAMS)).error is None  # the model id is known
        os.kill(a.proc.pid, signal.SIGSTOP)  # accepts connections (the kernel does), answers nothing
        t0 = time.monotonic()
        done = await asyncio.gather(*[pool.generate([1, 2, 3], PARAMS) for _ in range(4)])
        assert all(c.error is None for c in done) and sum(c.endpoint_retries for c in done) == 2
        assert time.monotonic() - t0 >= 1.4  # the two sent to the hung one waited out the timeout
        assert not pool.stats()[0]["healthy"] and "Timeout" in pool.stats()[0]["last_error"]
        os.kill(a.proc.pid, signal.SIGCONT)
        await wait_for(lambda: pool.stats()[0]["healthy"])
        assert pool.stats()[0]["readmitted"] == 1
    finally:
        await pool.close()


async def test_with_every_endpoint_down_the_request_fails_as_the_infrastructures(sims):
    a, b = sims(reply_tokens=4), sims(reply_tokens=4)
    pool = pool_of(a, b, wait_healthy_s=0.5)
    try:
        assert (await pool.generate([1, 2, 3], PARAMS)).error is None
        a.kill()
        b.kill()
        failed = await pool.generate([1, 2, 3], PARAMS)
        assert is_endpoint_unavailable(failed.error) and "no healthy endpoint" in failed.error
        assert failed.endpoint_retries == 2 and failed.output_ids is None
        result = await run_agent(pool, [Message(role="user", content="hi")], [], ctx=ToolContext(task=None),
                                 params=PARAMS, token_mode=False)
        assert result.stop_reason == "engine_error" and result.stop_reason in INFRASTRUCTURE_STOPS
    finally:
        await pool.close()


class Lookup:
    name, needs_sandbox = "lookup", False
    schema = {"type": "function", "function": {
        "name": "lookup", "description": "Look a key up.",
        "parameters": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}}}

    def run(self, arguments, ctx):
        return f"value of {arguments['key']}: 7"


async def test_a_rollout_whose_endpoint_dies_ends_as_the_healthy_run(sims, embedded_tokenizer, tmp_path):
    """Token-in/token-out through the pool: the endpoint serving the rollout's first turn dies
    mid-request; the turn is sent to the other endpoint and the rollout goes on to the same
    messages and token ids as a rollout on a healthy server, one endpoint retry counted."""
    from synthesizers.token_conversation import TokenConversation

    messages = [Message(role="user", content="Find the answer.")]
    first = TokenConversation(embedded_tokenizer, messages, [Lookup.schema])
    first.open_turn()
    script = tmp_path / "script.json"
    script.write_text(json.dumps(agent_script(embedded_tokenizer, first.ids, tokens_per_turn=30, turns=3)))
    a, b = (sims(capacity=8, delay_s=0.02, script=str(script)) for _ in range(2))

    async def rollout(engine):
        return await run_agent(engine, messages, [Lookup()], ctx=ToolContext(task=None), params=PARAMS,
                               budget=Budget(max_turns=5, max_total_tokens=4096),
                               is_final=lambda m: "\\boxed" in m.content)

    healthy = OpenAIHTTPEngine(b.url, tokenizer=embedded_tokenizer)
    pool = pool_of(a, b, tokenizer=embedded_tokenizer)
    try:
        reference = await rollout(healthy)
        assert pool.token_exact and reference.stop_reason == "final_answer" and reference.turns == 3
        running = asyncio.ensure_future(rollout(pool))
        await wait_for(lambda: pool.stats()[0]["in_flight"] == 1 and a.stats()["active"] == 1)
        a.kill()
        result = await running
        assert (result.stop_reason, result.turns, result.error) == ("final_answer", 3, None)
        assert result.timings.endpoint_retries == 1 and result.timings.attempts == 1
        assert [m.model_dump() for m in result.messages] == [m.model_dump() for m in reference.messages]
        assert result.trace.ids == reference.trace.ids and result.trace.sources == reference.trace.sources
    finally:
        await healthy.close()
        await pool.close()
