"""Agent-loop efficiency: output tokens/s of concurrent agent loops divided by raw
vLLM generate tokens/s on the same prompts, in one process on one engine (goal >= 0.9).

One ``VLLMEngine`` serves both sides, so model, dtype, KV cache and scheduler
are identical. Per repetition (the order alternates, so drift on a shared
machine hits both sides alike):

- raw: the prompts are rendered and tokenized *before* the clock starts, and
  all requests go straight to vLLM's ``AsyncLLM.generate`` on the engine's own
  event loop (no thread hop, no template, no parsing): the ceiling;
- agent: ``run_agent`` for every prompt at once from the caller's event loop,
  exactly as a pipeline unit calls it (render + tokenize per turn, thread hop
  to the engine loop, Hermes parsing, token accounting), one turn, no tools.

Same prompts, same sampling and per-request seeds (the agent's turn-0 seed),
same ``max_tokens``, same concurrency. Prompts ask for long answers so nearly
every request runs to ``max_tokens``; both sides count the tokens actually
generated, and the result records the counts and the finish reasons.

Knobs (environment): ``BENCH_AGENT_PROMPTS`` (24), ``BENCH_AGENT_MAX_TOKENS``
(64), ``BENCH_AGENT_REPS`` (3). ``python -m bench.bench_agent_loop``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time

GOAL = 0.9
TOPICS = ("rivers", "bridges", "bees", "volcanoes", "libraries", "trains", "glaciers", "markets", "forests",
          "lighthouses", "deserts", "harbours", "comets", "gardens", "mountains", "bakeries")


def _prompts(n: int) -> list[str]:
    return [f"Write a long, detailed essay of at least 500 words about {TOPICS[i % len(TOPICS)]} "
            f"(essay number {i}). Do not stop early." for i in range(n)]


def _knob(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return max(1, int(value))
    except ValueError:
        raise SystemExit(f"error: {name}={value!r} is not an integer") from None


async def _raw(engine, prompt_ids: list[list[int]], params: list) -> tuple[int, list[str], float]:
    """On the engine loop: every request straight into AsyncLLM.generate, concurrently."""
    from vllm.sampling_params import RequestOutputKind

    llm = await engine._ensure_llm()

    async def one(i: int):
        final = None
        async for out in llm.generate({"prompt_token_ids": prompt_ids[i]}, params[i], f"bench-raw-{i}-{time.monotonic_ns()}"):
            final = out
        return final.outputs[0]

    assert all(p.output_kind == RequestOutputKind.FINAL_ONLY for p in params)
    t0 = time.perf_counter()
    outs = await asyncio.gather(*(one(i) for i in range(len(prompt_ids))))
    wall = time.perf_counter() - t0
    return sum(len(o.token_ids) for o in outs), [o.finish_reason or "?" for o in outs], wall


async def _agent(engine, prompts: list[str], max_tokens: int) -> tuple[int, list[str], float]:
    from schemas import Message, Task
    from synthesizers.agent_loop import Budget, run_agent
    from synthesizers.domains.base import ToolContext
    from synthesizers.engines.base import SamplingParams

    ctx = ToolContext(task=Task(id="bench", domain="bench"))
    budget = Budget(max_turns=1, max_total_tokens=4096)

    def one(i: int, prompt: str):
        return run_agent(engine, [Message(role="user", content=prompt)], [], ctx=ctx,
                         params=SamplingParams(temperature=0.7, top_p=0.95, max_tokens=max_tokens, seed=i),
                         budget=budget, is_final=lambda m: True)

    t0 = time.perf_counter()
    results = await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
    wall = time.perf_counter() - t0
    errors = [r.error for r in results if r.error]
    if errors:
        raise RuntimeError(f"agent loop: {len(errors)} rollouts failed, first: {errors[0]}")
    return sum(r.tokens.completion for r in results), [r.stop_reason for r in results], wall


def _side(tokens: int, reasons: list[str], wall: float) -> dict:
    return {"tokens": tokens, "wall_s": round(wall, 2), "tokens_per_s": round(tokens / wall, 1),
            "finish": {r: reasons.count(r) for r in sorted(set(reasons))}}


def run(n_prompts: int | None = None, max_tokens: int | None = None, reps: int | None = None) -> dict:
    from vllm import SamplingParams as VSamplingParams
    from vllm.sampling_params import RequestOutputKind

    from schemas import Message
    from synthesizers.agent_loop import turn_seed
    from synthesizers.engines.model_store import ensure_embedded_model
    from synthesizers.engines.vllm_local import VLLMEngine

    n_prompts = n_prompts or _knob("BENCH_AGENT_PROMPTS", 24)
    max_tokens = max_tokens or _knob("BENCH_AGENT_MAX_TOKENS", 64)
    reps = reps or _knob("BENCH_AGENT_REPS", 3)
    prompts = _prompts(n_prompts)

    engine = VLLMEngine(str(ensure_embedded_model()), max_model_len=2048, max_concurrency=max(n_prompts, 8))
    try:
        start_s = engine.start()
        prompt_ids = [engine.tokenizer.encode(engine.render([Message(role="user", content=p)]), add_special_tokens=False)
                      for p in prompts]
        # The agent's turn 0 uses turn_seed(seed, 0): the raw side samples with the very same seeds.
        params = [VSamplingParams(temperature=0.7, top_p=0.95, max_tokens=max_tokens, seed=turn_seed(i, 0),
                                  output_kind=RequestOutputKind.FINAL_ONLY) for i in range(n_prompts)]
        raw = lambda: engine._submit(_raw(engine, prompt_ids, params)).result()  # noqa: E731
        agent = lambda: asyncio.run(_agent(engine, prompts, max_tokens))  # noqa: E731

        # Warm-up on both paths (first-batch allocations, template compilation).
        engine._submit(_raw(engine, prompt_ids[:2], params[:2])).result()
        asyncio.run(_agent(engine, prompts[:2], max_tokens))

        rounds = []
        for rep in range(reps):
            order = ("raw", "agent") if rep % 2 == 0 else ("agent", "raw")
            got = {name: _side(*(raw() if name == "raw" else agent())) for name in order}
            got["ratio"] = round(got["agent"]["tokens_per_s"] / got["raw"]["tokens_per_s"], 3)
            rounds.append(got)
            print(f"agent_loop rep {rep}: raw {got['raw']['tokens_per_s']} tok/s, "
                  f"agent {got['agent']['tokens_per_s']} tok/s, ratio {got['ratio']}", flush=True)
    finally:
        engine.shutdown()

    ratios = [r["ratio"] for r in rounds]
    ratio = statistics.median(ratios)
    raw_tps = statistics.median(r["raw"]["tokens_per_s"] for r in rounds)
    agent_tps = statistics.median(r["agent"]["tokens_per_s"] for r in rounds)
    return {
        "name": "agent_loop_vs_raw_vllm",
        "model": engine.model_id,
        "engine_start_s": round(start_s, 1),
        "prompts": n_prompts,
        "concurrency": n_prompts,
        "max_tokens": max_tokens,
        "repetitions": reps,
        "rounds": rounds,
        "ratio_median": ratio,
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "figures": [
            {"figure": "agent-loop tok/s / raw vLLM tok/s (median of reps)", "value": ratio, "goal": f">= {GOAL}",
             "met": ratio >= GOAL},
            {"figure": "  spread of that ratio over reps (min..max)", "value": f"{min(ratios)}..{max(ratios)}",
             "goal": "-"},
            {"figure": f"raw vLLM tok/s ({n_prompts} concurrent, {max_tokens} tokens)", "value": raw_tps, "goal": "-"},
            {"figure": "agent-loop tok/s (same prompts)", "value": agent_tps, "goal": "-"},
        ],
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
