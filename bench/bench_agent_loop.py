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

A second, harsher pair measures the per-turn cost: ``turns`` short turns (each
stops at its first sentence) with a simulated user's reply between them. The
raw side chains each conversation at the token level on the engine loop
(prompt + generated ids + the template's fixed reply markup); the agent side
re-renders and re-tokenizes the whole conversation every turn, as it does in
the pipelines. Same seeds per turn; tokens counted on both sides.

Knobs (environment): ``BENCH_AGENT_PROMPTS`` (24), ``BENCH_AGENT_MAX_TOKENS``
(64; multi-turn turns get half), ``BENCH_AGENT_TURNS`` (3), ``BENCH_AGENT_REPS``
(3). ``python -m bench.bench_agent_loop``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time

GOAL = 0.9
STOP = (".",)  # multi-turn: each turn ends at its first sentence
CONTINUE = "Continue."
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


async def _raw_chain(engine, prompt_ids: list[list[int]], params: list[list], suffix_ids: list[int]):
    """On the engine loop: each conversation chains its turns at the token level (previous prompt +
    generated ids + the fixed user-reply markup), no template, no detokenize/re-tokenize: the ceiling."""
    llm = await engine._ensure_llm()

    async def convo(i: int):
        ids, tokens, reason = list(prompt_ids[i]), 0, "max_turns"
        for t, turn_params in enumerate(params[i]):
            final = None
            async for out in llm.generate({"prompt_token_ids": ids}, turn_params, f"bench-chain-{i}-{t}-{time.monotonic_ns()}"):
                final = out
            o = final.outputs[0]
            tokens += len(o.token_ids)
            if o.finish_reason != "stop":
                reason = "max_tokens"
                break
            ids = ids + list(o.token_ids) + suffix_ids
        return tokens, reason

    t0 = time.perf_counter()
    outs = await asyncio.gather(*(convo(i) for i in range(len(prompt_ids))))
    wall = time.perf_counter() - t0
    return sum(n for n, _ in outs), [r for _, r in outs], wall


async def _agent_multi(engine, prompts: list[str], max_tokens: int, turns: int):
    """``run_agent`` with a simulated user who answers every turn with the same short reply."""
    from schemas import Message, Task
    from synthesizers.agent_loop import Budget, run_agent
    from synthesizers.domains.base import ToolContext
    from synthesizers.engines.base import SamplingParams

    ctx = ToolContext(task=Task(id="bench", domain="bench"))
    budget = Budget(max_turns=turns, max_total_tokens=2048)

    async def reply(convo):
        return Message(role="user", content=CONTINUE)

    def one(i: int, prompt: str):
        return run_agent(engine, [Message(role="user", content=prompt)], [], ctx=ctx,
                         params=SamplingParams(temperature=0.7, top_p=0.95, max_tokens=max_tokens, seed=i,
                                               stop=STOP),
                         budget=budget, user_turn=reply)

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


def run(n_prompts: int | None = None, max_tokens: int | None = None, reps: int | None = None,
        turns: int | None = None) -> dict:
    from vllm import SamplingParams as VSamplingParams
    from vllm.sampling_params import RequestOutputKind

    from schemas import Message
    from synthesizers.agent_loop import turn_seed
    from synthesizers.engines.model_store import ensure_embedded_model
    from synthesizers.engines.vllm_local import VLLMEngine

    n_prompts = n_prompts or _knob("BENCH_AGENT_PROMPTS", 24)
    max_tokens = max_tokens or _knob("BENCH_AGENT_MAX_TOKENS", 64)
    reps = reps or _knob("BENCH_AGENT_REPS", 3)
    turns = turns or _knob("BENCH_AGENT_TURNS", 3)
    turn_max = max(8, max_tokens // 2)  # multi-turn: short turns, so per-turn overhead weighs the most
    prompts = _prompts(n_prompts)

    engine = VLLMEngine(str(ensure_embedded_model()), max_model_len=2048, max_concurrency=max(n_prompts, 8))
    try:
        start_s = engine.start()
        first = [[Message(role="user", content=p)] for p in prompts]
        prompt_ids = [engine.tokenizer.encode(engine.render(m), add_special_tokens=False) for m in first]
        # What the template adds between an assistant turn's last token and the next generation.
        mark = "@@BENCH@@"
        tail = engine.render([first[0][0], Message(role="assistant", content=mark),
                              Message(role="user", content=CONTINUE)]).partition(mark)[2]
        suffix_ids = engine.tokenizer.encode(tail, add_special_tokens=False)

        def vparams(i: int, t: int, limit: int, stop=None):  # the agent's per-turn seed, exactly
            return VSamplingParams(temperature=0.7, top_p=0.95, max_tokens=limit, seed=turn_seed(i, t),
                                   stop=list(stop) if stop else None, output_kind=RequestOutputKind.FINAL_ONLY)

        single = [vparams(i, 0, max_tokens) for i in range(n_prompts)]
        chained = [[vparams(i, t, turn_max, STOP) for t in range(turns)] for i in range(n_prompts)]
        sides = {
            ("single", "raw"): lambda: engine._submit(_raw(engine, prompt_ids, single)).result(),
            ("single", "agent"): lambda: asyncio.run(_agent(engine, prompts, max_tokens)),
            ("multi", "raw"): lambda: engine._submit(_raw_chain(engine, prompt_ids, chained, suffix_ids)).result(),
            ("multi", "agent"): lambda: asyncio.run(_agent_multi(engine, prompts, turn_max, turns)),
        }
        # Warm-up on every path (first-batch allocations, template compilation).
        engine._submit(_raw(engine, prompt_ids[:2], single[:2])).result()
        asyncio.run(_agent_multi(engine, prompts[:2], turn_max, 2))

        rounds: dict[str, list] = {"single": [], "multi": []}
        for rep in range(reps):
            for mode in ("single", "multi"):
                order = ("raw", "agent") if rep % 2 == 0 else ("agent", "raw")
                got = {side: _side(*sides[(mode, side)]()) for side in order}
                got["ratio"] = round(got["agent"]["tokens_per_s"] / got["raw"]["tokens_per_s"], 3)
                rounds[mode].append(got)
                print(f"agent_loop rep {rep} {mode}: raw {got['raw']['tokens_per_s']} tok/s "
                      f"({got['raw']['tokens']} tokens), agent {got['agent']['tokens_per_s']} tok/s "
                      f"({got['agent']['tokens']} tokens), ratio {got['ratio']}", file=sys.stderr, flush=True)
    finally:
        engine.shutdown()

    def stats(mode: str) -> dict:
        ratios = [r["ratio"] for r in rounds[mode]]
        return {"ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
                "raw_tokens_per_s": statistics.median(r["raw"]["tokens_per_s"] for r in rounds[mode]),
                "agent_tokens_per_s": statistics.median(r["agent"]["tokens_per_s"] for r in rounds[mode]),
                "rounds": rounds[mode]}

    one, multi = stats("single"), stats("multi")
    return {
        "name": "agent_loop_vs_raw_vllm",
        "model": engine.model_id,
        "engine_start_s": round(start_s, 1),
        "prompts": n_prompts,
        "concurrency": n_prompts,
        "repetitions": reps,
        "single_turn": {"max_tokens": max_tokens, **one},
        "multi_turn": {"turns": turns, "max_tokens_per_turn": turn_max, "stop": list(STOP),
                       "user_reply": CONTINUE, **multi},
        "figures": [
            {"figure": "agent-loop tok/s / raw vLLM tok/s, same prompts (median)", "value": one["ratio_median"],
             "goal": f">= {GOAL}"},
            {"figure": "  spread over reps (min..max)", "value": f"{one['ratio_min']}..{one['ratio_max']}",
             "goal": "-"},
            {"figure": f"  raw vLLM tok/s ({n_prompts} concurrent x {max_tokens} tokens)",
             "value": one["raw_tokens_per_s"], "goal": "-"},
            {"figure": "  agent-loop tok/s", "value": one["agent_tokens_per_s"], "goal": "-"},
            {"figure": f"multi-turn ({turns} turns, user reply between) agent / raw token chain (median)",
             "value": multi["ratio_median"], "goal": f">= {GOAL}"},
            {"figure": "  spread over reps (min..max)", "value": f"{multi['ratio_min']}..{multi['ratio_max']}",
             "goal": "-"},
        ],
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
