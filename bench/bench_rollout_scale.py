"""Rollout overhead at cluster-scale concurrency: >= 1,000 concurrent agent loops through the
endpoint pool against two latency-simulating OpenAI-compatible servers (goal: >= 0.9 of the
servers' simulated capacity, i.e. the pipeline is not the bottleneck).

Two ``bench.openai_sim`` servers on 127.0.0.1, each its own process, each ``capacity``
sequences decoding at once at one token per ``delay_s``: together ``2 * capacity / delay_s``
output tokens per second, the ceiling. ``loops`` agent loops run at once in this process, each
the real ``run_agent`` token-in/token-out with the embedded model's tokenizer and chat template
(the template renders each new message, the Hermes parser reads each turn, a ``lookup`` tool
runs in the tool thread pool), through one ``EndpointPool`` (least in flight, health checks);
each rollout is ``turns`` turns of ``tokens_per_turn`` tokens (tool calls, then a final
``\\boxed{}`` answer), and a loop starts its next rollout as soon as one ends (the loops start
spread over one turn's time, not in lockstep). After a warm-up, the output tokens the loops
received that were decoded inside a window (a request straddling an edge counts in part) are
divided by the window and by the ceiling. The
server side's own count (busy slot-seconds over the window) is reported beside it, with the
client's CPU time per turn and the event loop's lag.

Defaults: 1,024 loops over 2 x 480 slots (about 1.07 loops a slot, so a loop may spend only ~7%
of its time outside a server before slots go idle), 50 ms a token (a large model at a large
batch), 512 tokens a turn (an agent turn with its reasoning): 19,200 tok/s simulated, 37.5
turns a second. Knobs (environment): ``BENCH_SCALE_LOOPS`` (1024), ``BENCH_SCALE_CAPACITY`` per
server (480), ``BENCH_SCALE_DELAY_S`` (0.05), ``BENCH_SCALE_TOKENS`` per turn (512),
``BENCH_SCALE_TURNS`` (3), ``BENCH_SCALE_WARMUP_S`` (1.5 turns' time, at least 20),
``BENCH_SCALE_WINDOW_S`` (60). ``python -m bench.run rollout-scale``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOAL = 0.9
ENDPOINTS = 2


def _knob(name: str, default: float) -> float:
    value = os.environ.get(name, str(default))
    try:
        return float(value)
    except ValueError:
        raise SystemExit(f"error: {name}={value!r} is not a number") from None


class Lookup:
    name, needs_sandbox = "lookup", False
    schema = {"type": "function", "function": {
        "name": "lookup", "description": "Look a key up in the table.",
        "parameters": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}}}

    def run(self, arguments: dict[str, Any], ctx: Any) -> str:
        return f"The value of {arguments.get('key')} is 7."


class Counting:
    """The pool as the loops see it, recording when each turn's tokens arrived."""

    def __init__(self, pool: Any):
        self.pool, self.model_id = pool, pool.model_id
        self.tokenizer, self.token_exact = pool.tokenizer, pool.token_exact
        self.arrivals: list[tuple[float, int]] = []
        self.errors = 0

    async def generate(self, prompt_ids: list[int], params: Any) -> Any:
        completion = await self.pool.generate(prompt_ids, params)
        if completion.error is None:
            self.arrivals.append((time.monotonic(), completion.completion_tokens))
        else:
            self.errors += 1
        return completion

    async def chat(self, messages: Any, *, tools: Any = None, params: Any = None) -> Any:
        raise RuntimeError("the bench runs token-in/token-out only")

    async def close(self) -> None:
        await self.pool.close()


def _in_window(arrived: float, n: int, delay_s: float, w0: float, w1: float) -> float:
    """The tokens of a completion of ``n`` that the window holds: a simulated server decodes
    them one per ``delay_s`` right before it answers, so they were made over
    ``[arrived - n * delay_s, arrived]``; a request that straddles an edge counts in part
    (counting whole requests at arrival would credit a window with decoding done before it)."""
    start = arrived - n * delay_s
    overlap = min(arrived, w1) - max(start, w0)
    return 0.0 if overlap <= 0 else n * overlap / (arrived - start) if arrived > start else float(n)


async def _lag_monitor(stop: asyncio.Event, lags: list[float], period_s: float = 0.1) -> None:
    """How late the event loop wakes a 100 ms sleep: the loops' own overhead shows here first."""
    while not stop.is_set():
        t0 = time.monotonic()
        await asyncio.sleep(period_s)
        lags.append(time.monotonic() - t0 - period_s)


async def _drive(engine: Counting, sims: list, *, loops: int, turns: int, warmup_s: float, window_s: float,
                 delay_s: float, stagger_s: float) -> dict[str, Any]:
    from schemas import Message
    from synthesizers.agent_loop import Budget, run_agent
    from synthesizers.domains.base import ToolContext
    from synthesizers.engines.base import SamplingParams

    tools, budget = [Lookup()], Budget(max_turns=turns + 1, max_total_tokens=16384)
    rollouts = {"done": 0, "final_answer": 0, "turns": 0, "endpoint_retries": 0}

    async def loop(i: int) -> None:
        await asyncio.sleep(stagger_s * i / loops)  # not all in lockstep: a steady stream, as in a long run
        k = 0
        while True:
            messages = [Message(role="user", content=f"Look up the keys and give the answer (rollout {i}.{k}).")]
            result = await run_agent(engine, messages, tools, ctx=ToolContext(task=None),
                                     params=SamplingParams(max_tokens=4096, seed=i * 100003 + k), budget=budget,
                                     is_final=lambda m: "\\boxed" in m.content)
            rollouts["done"] += 1
            rollouts["final_answer"] += result.stop_reason == "final_answer"
            rollouts["turns"] += result.turns
            rollouts["endpoint_retries"] += result.timings.endpoint_retries
            k += 1

    stop, lags = asyncio.Event(), []
    monitor = asyncio.ensure_future(_lag_monitor(stop, lags))
    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(loop(i)) for i in range(loops)]
    await asyncio.sleep(warmup_s)
    w0, cpu0, lag0, turns0 = time.monotonic(), time.process_time(), len(lags), len(engine.arrivals)
    servers0 = [s.stats() for s in sims]
    await asyncio.sleep(window_s)
    w1, cpu1, lag1, turns1 = time.monotonic(), time.process_time(), len(lags), len(engine.arrivals)
    servers1 = [s.stats() for s in sims]
    # The requests decoding at w1 hold tokens of the window: let them arrive before stopping.
    await asyncio.sleep(stagger_s * 1.5 + 2.0)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, monitor, return_exceptions=True)
    window = w1 - w0
    tokens = sum(_in_window(t, n, delay_s, w0, w1) for t, n in engine.arrivals)
    window_lags = sorted(lags[lag0:lag1]) or [0.0]
    return {
        "started_to_window_s": round(w0 - t0, 1), "window_s": round(window, 2), "tokens_in_window": round(tokens),
        "turns_in_window": turns1 - turns0, "achieved_tokens_per_s": tokens / window,
        "client_cpu_s_in_window": round(cpu1 - cpu0, 2),
        "client_cpu_ms_per_turn": round(1000 * (cpu1 - cpu0) / max(1, turns1 - turns0), 3),
        "event_loop_lag_ms": {"p50": round(1000 * statistics.median(window_lags), 1),
                              "p99": round(1000 * window_lags[int(0.99 * (len(window_lags) - 1))], 1),
                              "max": round(1000 * window_lags[-1], 1)},
        "server_busy_slot_s": [round(b["busy_slot_s"] - a["busy_slot_s"], 1) for a, b in zip(servers0, servers1)],
        "server_peak_active": [b["peak_active"] for b in servers1],
        "rollouts": rollouts, "engine_errors": engine.errors,
    }


def run(loops: int | None = None, window_s: float | None = None) -> dict:
    from bench.openai_sim import SimProcess, agent_script
    from synthesizers.engines.model_store import ensure_embedded_model
    from synthesizers.engines.openai_http import load_tokenizer
    from synthesizers.engines.pool import EndpointPool
    from synthesizers.token_conversation import TokenConversation
    from schemas import Message

    loops = int(loops or _knob("BENCH_SCALE_LOOPS", 1024))
    capacity = int(_knob("BENCH_SCALE_CAPACITY", 480))
    delay_s = _knob("BENCH_SCALE_DELAY_S", 0.05)
    tokens_per_turn = int(_knob("BENCH_SCALE_TOKENS", 512))
    turns = int(_knob("BENCH_SCALE_TURNS", 3))
    warmup_s = _knob("BENCH_SCALE_WARMUP_S", max(20.0, 1.5 * tokens_per_turn * delay_s))  # past the staggered start
    window_s = float(window_s or _knob("BENCH_SCALE_WINDOW_S", 60))

    tokenizer = load_tokenizer(str(ensure_embedded_model()))
    first = TokenConversation(tokenizer, [Message(role="user", content="Look up the keys and give the answer.")],
                              [Lookup.schema])
    first.open_turn()
    script = agent_script(tokenizer, first.ids, tokens_per_turn=tokens_per_turn, turns=turns)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "script.json"
        path.write_text(json.dumps(script))
        sims = [SimProcess(capacity=capacity, delay_s=delay_s, script=str(path)).start() for _ in range(ENDPOINTS)]
        try:
            pool = EndpointPool([s.url for s in sims], tokenizer=tokenizer, max_connections=2 * loops, timeout_s=600)
            engine = Counting(pool)

            async def main() -> dict[str, Any]:
                await pool.resolve_model()
                engine.model_id = pool.model_id
                try:
                    return await _drive(engine, sims, loops=loops, turns=turns, warmup_s=warmup_s, window_s=window_s,
                                        delay_s=delay_s, stagger_s=tokens_per_turn * delay_s)
                finally:
                    await engine.close()

            measured = asyncio.run(main())
            spread = pool.stats()
        finally:
            for sim in sims:
                sim.kill()

    ceiling = ENDPOINTS * capacity / delay_s
    ratio = measured["achieved_tokens_per_s"] / ceiling
    server_ratio = sum(measured["server_busy_slot_s"]) / (ENDPOINTS * capacity * measured["window_s"])
    print(f"rollout_scale: {loops} loops, {measured['achieved_tokens_per_s']:.0f} tok/s of {ceiling:.0f} simulated "
          f"= {ratio:.3f} (servers busy {server_ratio:.3f}); client {measured['client_cpu_ms_per_turn']} ms CPU "
          f"per turn; loop lag p99 {measured['event_loop_lag_ms']['p99']} ms", file=sys.stderr, flush=True)
    measured["achieved_tokens_per_s"] = round(measured["achieved_tokens_per_s"], 1)
    return {
        "name": "rollout_scale",
        "setup": {"loops": loops, "endpoints": ENDPOINTS, "capacity_per_endpoint": capacity, "delay_s": delay_s,
                  "tokens_per_turn": tokens_per_turn, "turns": turns, "warmup_s": warmup_s,
                  "loops_per_slot": round(loops / (ENDPOINTS * capacity), 3),
                  "tokenizer": "embedded (SmolLM2, trajforge chat template)", "engine": "EndpointPool, token mode"},
        "simulated_capacity_tokens_per_s": ceiling,
        "ratio": round(ratio, 3),
        "server_busy_ratio": round(server_ratio, 3),
        "measured": measured,
        "endpoints": [{k: e[k] for k in ("served", "failed", "taken_out")} for e in spread],
        "figures": [
            {"figure": "rollout-scale tok/s / simulated capacity", "value": round(ratio, 3), "goal": f">= {GOAL}"},
            {"figure": "rollout-scale concurrent agent loops", "value": loops, "goal": ">= 1000"},
            {"figure": "rollout-scale achieved tok/s", "value": measured["achieved_tokens_per_s"], "goal": "-"},
            {"figure": "rollout-scale client CPU ms per turn", "value": measured["client_cpu_ms_per_turn"],
             "goal": "-"},
        ],
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
