"""Agent-loop efficiency: output tokens/s of concurrent agent loops divided by raw
vLLM generate tokens/s on the same prompts, in one process on one engine (goal >= 0.95).

One ``VLLMEngine`` serves both sides, so model, dtype, KV cache and scheduler
are identical. Per repetition (the order alternates, so drift on a shared
machine hits both sides alike):

- raw: the prompts are rendered and tokenized *before* the clock starts, and
  all requests go straight to vLLM's ``AsyncLLM.generate`` on the engine's own
  event loop (no thread hop, no template, no parsing): the ceiling;
- agent: ``run_agent`` for every prompt at once from the caller's event loop,
  exactly as a pipeline unit calls it (token-in/token-out: the exact ids plus
  the template's rendering of what is new, each token's source and logprob
  kept, thread hop to the engine loop, Hermes parsing), one turn, no tools.

Same prompts, same sampling and per-request seeds (the agent's turn-0 seed),
same ``max_tokens``, same concurrency, and vLLM's prefix cache emptied before
each timed side (else the second side would skip the prefill of the first's prompts). Prompts ask for long answers so nearly
every request runs to ``max_tokens``; both sides count the tokens actually
generated, and the result records the counts and the finish reasons.

A second, harsher pair measures the per-turn cost: ``turns`` short turns (the
prompt asks for one short fact; each turn stops at its first sentence) with a
simulated user's reply between them. The
raw side chains each conversation at the token level on the engine loop
(prompt + generated ids + the template's fixed reply markup); the agent side
keeps its token trace and renders only the new messages each turn, as it does
in the pipelines. Same seeds per turn; tokens counted on both sides.

Headline: the ratio of the pooled tok/s over all repetitions; the per-rep
ratios show the spread. Knobs (environment): ``BENCH_AGENT_PROMPTS`` (16),
``BENCH_AGENT_MAX_TOKENS`` (48, also per turn), ``BENCH_AGENT_TURNS`` (3),
``BENCH_AGENT_REPS`` (3). ``python -m bench.bench_agent_loop``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time

GOAL = 0.95
STOP = (".",)  # multi-turn: each turn ends at its first sentence
CONTINUE = "Continue."
_LAST: dict[str, list] = {}  # the latest multi-turn agent results, replayed for the loop's own CPU cost
TOPICS = ("rivers", "bridges", "bees", "volcanoes", "libraries", "trains", "glaciers", "markets", "forests",
          "lighthouses", "deserts", "harbours", "comets", "gardens", "mountains", "bakeries")


def _prompts(n: int) -> list[str]:
    return [f"Write a long, detailed essay of at least 500 words about {TOPICS[i % len(TOPICS)]} "
            f"(essay number {i}). Do not stop early." for i in range(n)]


async def _reset_prefix_cache(engine) -> None:
    llm = await engine._ensure_llm()
    if not await llm.reset_prefix_cache():
        raise RuntimeError("vLLM refused to reset its prefix cache")


def _fact_prompts(n: int) -> list[str]:
    return [f"Tell me one short fact about {TOPICS[i % len(TOPICS)]} (fact number {i})." for i in range(n)]


def _knob(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return max(1, int(value))
    except ValueError:
        raise SystemExit(f"error: {name}={value!r} is not an integer") from None


async def _timed(coros) -> tuple[list, float]:
    """All of ``coros`` at once; their results and the wall time of the whole batch."""
    t0 = time.perf_counter()
    results = await asyncio.gather(*coros)
    return results, time.perf_counter() - t0


async def _agents(engine, prompts: list[str], params, budget, **loop_kw) -> tuple[list, float]:
    """``run_agent`` for every prompt at once from the caller's event loop, exactly as a pipeline
    unit calls it; ``params(i)`` gives conversation ``i``'s sampling. Any failed rollout fails the run."""
    from schemas import Message, Task
    from synthesizers.agent_loop import run_agent
    from synthesizers.domains.base import ToolContext

    ctx = ToolContext(task=Task(id="bench", domain="bench"))
    results, wall = await _timed(run_agent(engine, [Message(role="user", content=p)], [], ctx=ctx, params=params(i),
                                           budget=budget, **loop_kw) for i, p in enumerate(prompts))
    errors = [r.error for r in results if r.error]
    if errors:
        raise RuntimeError(f"agent loop: {len(errors)} rollouts failed, first: {errors[0]}")
    return results, wall


async def _generate(llm, ids: list[int], params, request_id: str):
    """One request straight into ``AsyncLLM.generate``; its final output (FINAL_ONLY: one item)."""
    final = None
    async for out in llm.generate({"prompt_token_ids": ids}, params, request_id):
        final = out
    return final.outputs[0]


async def _raw(engine, prompt_ids: list[list[int]], params: list) -> tuple[int, list[str], float]:
    """On the engine loop: every request straight into AsyncLLM.generate, concurrently."""
    from vllm.sampling_params import RequestOutputKind

    llm = await engine._ensure_llm()

    assert all(p.output_kind == RequestOutputKind.FINAL_ONLY for p in params)
    outs, wall = await _timed(_generate(llm, prompt_ids[i], params[i], f"bench-raw-{i}-{time.monotonic_ns()}")
                              for i in range(len(prompt_ids)))
    return sum(len(o.token_ids) for o in outs), [o.finish_reason or "?" for o in outs], wall


async def _agent(engine, prompts: list[str], max_tokens: int) -> tuple[int, list[str], float]:
    from synthesizers.agent_loop import Budget
    from synthesizers.engines.base import SamplingParams

    def params(i: int) -> SamplingParams:
        return SamplingParams(temperature=0.7, top_p=0.95, max_tokens=max_tokens, seed=i)

    results, wall = await _agents(engine, prompts, params, Budget(max_turns=1, max_total_tokens=4096),
                                  is_final=lambda m: True)
    return sum(r.tokens.completion for r in results), [r.stop_reason for r in results], wall


async def _raw_chain(engine, prompt_ids: list[list[int]], params: list[list], tail: str):
    """On the engine loop: each conversation chains its turns at the token level: the previous
    prompt ids + the ids of (the turn's text + the template's fixed user-reply markup ``tail``).
    No template rendering, no re-tokenizing of the conversation: the ceiling. (The turn's text,
    not its ids, so both sides build the very same prompts: vLLM's text drops the stop string.)"""
    llm = await engine._ensure_llm()

    async def convo(i: int):
        ids, tokens, reason = list(prompt_ids[i]), 0, "max_turns"
        for t, turn_params in enumerate(params[i]):
            o = await _generate(llm, ids, turn_params, f"bench-chain-{i}-{t}-{time.monotonic_ns()}")
            tokens += len(o.token_ids)
            if o.finish_reason != "stop":
                reason = "max_tokens"
                break
            ids = ids + engine.tokenizer.encode(o.text + tail, add_special_tokens=False)
        return tokens, reason

    outs, wall = await _timed(convo(i) for i in range(len(prompt_ids)))
    return sum(n for n, _ in outs), [r for _, r in outs], wall


async def _agent_multi(engine, prompts: list[str], max_tokens: int, turns: int):
    """``run_agent`` with a simulated user who answers every turn with the same short reply."""
    from schemas import Message
    from synthesizers.agent_loop import Budget
    from synthesizers.engines.base import SamplingParams

    async def reply(convo):
        return Message(role="user", content=CONTINUE)

    def params(i: int) -> SamplingParams:
        return SamplingParams(temperature=0.7, top_p=0.95, max_tokens=max_tokens, seed=i, stop=STOP)

    results, wall = await _agents(engine, prompts, params, Budget(max_turns=turns, max_total_tokens=2048),
                                  user_turn=reply)
    _LAST["multi"] = results
    return sum(r.tokens.completion for r in results), [r.stop_reason for r in results], wall


def _loop_cpu_per_turn(engine, results) -> dict:
    """What the loop itself spends per turn outside generation, replayed on the agent's own
    conversations. Token mode (what rollouts run): extend the exact ids with only the new
    messages and the generation prompt, record the sampled ids, decode and parse the turn,
    close it. Text mode (beside it, for comparison): render and tokenize the whole
    conversation, parse the reply."""
    from schemas.tokens import TokenSource
    from synthesizers.hermes import parse_tool_calls
    from synthesizers.token_conversation import TokenConversation

    token_turns, text_turns = [], []
    for r in results:
        if r.trace is None:
            continue
        sampled = {}
        for t, s, m in zip(r.trace.ids, r.trace.sources, r.trace.message_index):
            if s in (TokenSource.SAMPLED, TokenSource.GUIDED):
                sampled.setdefault(m, []).append(t)
        conv = TokenConversation(engine.tokenizer, r.messages[:1])
        for k, m in enumerate(r.messages):
            if m.role != "assistant":
                continue
            t0 = time.perf_counter()
            conv.add_messages(r.messages[len(conv.messages):k])
            conv.open_turn()
            conv.sampled(sampled.get(k, []), None, guided=False)
            parse_tool_calls(conv.turn_text())
            conv.close_turn(m)
            token_turns.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            engine.tokenizer.encode(engine.render(r.messages[:k]), add_special_tokens=False)
            parse_tool_calls(m.content or "")
            text_turns.append(time.perf_counter() - t0)
    if not token_turns:
        return {"turns": 0}
    return {"turns": len(token_turns), "mean_ms": round(statistics.mean(token_turns) * 1e3, 2),
            "max_ms": round(max(token_turns) * 1e3, 2),
            "text_mode_mean_ms": round(statistics.mean(text_turns) * 1e3, 2)}


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

    n_prompts = n_prompts or _knob("BENCH_AGENT_PROMPTS", 16)
    max_tokens = max_tokens or _knob("BENCH_AGENT_MAX_TOKENS", 48)
    reps = reps or _knob("BENCH_AGENT_REPS", 3)
    turns = turns or _knob("BENCH_AGENT_TURNS", 3)
    prompts, facts = _prompts(n_prompts), _fact_prompts(n_prompts)

    engine = VLLMEngine(str(ensure_embedded_model()), max_model_len=2048, max_concurrency=max(n_prompts, 8))
    try:
        start_s = engine.start()
        encode = lambda p: engine.tokenizer.encode(engine.render([Message(role="user", content=p)]),  # noqa: E731
                                                   add_special_tokens=False)
        prompt_ids, fact_ids = [encode(p) for p in prompts], [encode(p) for p in facts]
        # What the template adds between an assistant turn's last token and the next generation.
        mark = "@@BENCH@@"
        tail = engine.render([Message(role="user", content=facts[0]), Message(role="assistant", content=mark),
                              Message(role="user", content=CONTINUE)]).partition(mark)[2]

        def vparams(i: int, t: int, limit: int, stop=None):  # the agent's per-turn seed, exactly
            return VSamplingParams(temperature=0.7, top_p=0.95, max_tokens=limit, seed=turn_seed(i, t),
                                   stop=list(stop) if stop else None, output_kind=RequestOutputKind.FINAL_ONLY)

        single = [vparams(i, 0, max_tokens) for i in range(n_prompts)]
        chained = [[vparams(i, t, max_tokens, STOP) for t in range(turns)] for i in range(n_prompts)]
        sides = {
            ("single", "raw"): lambda: engine._submit(_raw(engine, prompt_ids, single)).result(),
            ("single", "agent"): lambda: asyncio.run(_agent(engine, prompts, max_tokens)),
            ("multi", "raw"): lambda: engine._submit(_raw_chain(engine, fact_ids, chained, tail)).result(),
            ("multi", "agent"): lambda: asyncio.run(_agent_multi(engine, facts, max_tokens, turns)),
        }
        # Warm-up on every path (first-batch allocations, template compilation).
        engine._submit(_raw(engine, prompt_ids[:2], single[:2])).result()
        asyncio.run(_agent_multi(engine, facts[:2], max_tokens, 2))

        rounds: dict[str, list] = {"single": [], "multi": []}
        for rep in range(reps):
            for mode in ("single", "multi"):
                order = ("raw", "agent") if rep % 2 == 0 else ("agent", "raw")
                got = {}
                for side in order:
                    # Cold prefix cache per side: neither side reuses the other's prompts (reuse within
                    # a side, later turns over earlier ones, stays, as in the pipelines).
                    engine._submit(_reset_prefix_cache(engine)).result()
                    got[side] = _side(*sides[(mode, side)]())
                got["ratio"] = round(got["agent"]["tokens_per_s"] / got["raw"]["tokens_per_s"], 3)
                rounds[mode].append(got)
                print(f"agent_loop rep {rep} {mode}: raw {got['raw']['tokens_per_s']} tok/s "
                      f"({got['raw']['tokens']} tokens), agent {got['agent']['tokens_per_s']} tok/s "
                      f"({got['agent']['tokens']} tokens), ratio {got['ratio']}", file=sys.stderr, flush=True)
        loop_cpu = _loop_cpu_per_turn(engine, _LAST.get("multi", []))
    finally:
        engine.shutdown()

    def stats(mode: str) -> dict:
        ratios = [r["ratio"] for r in rounds[mode]]
        pooled = {side: sum(r[side]["tokens"] for r in rounds[mode]) / sum(r[side]["wall_s"] for r in rounds[mode])
                  for side in ("raw", "agent")}
        return {"ratio_pooled": round(pooled["agent"] / pooled["raw"], 3),
                "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
                "raw_tokens_per_s": round(pooled["raw"], 1), "agent_tokens_per_s": round(pooled["agent"], 1),
                "rounds": rounds[mode]}

    one, multi = stats("single"), stats("multi")
    return {
        "name": "agent_loop_vs_raw_vllm",
        "model": engine.model_id,
        "engine_start_s": round(start_s, 1),
        "prompts": n_prompts,
        "concurrency": n_prompts,
        "repetitions": reps,
        "loop_cpu_per_turn": loop_cpu,
        "single_turn": {"max_tokens": max_tokens, **one},
        "multi_turn": {"turns": turns, "max_tokens_per_turn": max_tokens, "stop": list(STOP),
                       "user_reply": CONTINUE, **multi},
        "figures": [
            {"figure": "agent-loop tok/s / raw vLLM tok/s, same prompts (all reps pooled)",
             "value": one["ratio_pooled"], "goal": f">= {GOAL}"},
            {"figure": "  per-rep ratios: median (min..max)",
             "value": f"{one['ratio_median']} ({one['ratio_min']}..{one['ratio_max']})", "goal": "-"},
            {"figure": f"  raw vLLM tok/s ({n_prompts} concurrent x {max_tokens} tokens)",
             "value": one["raw_tokens_per_s"], "goal": "-"},
            {"figure": "  agent-loop tok/s", "value": one["agent_tokens_per_s"], "goal": "-"},
            {"figure": f"multi-turn ({turns} turns, user reply between): agent / raw token chain (pooled)",
             "value": multi["ratio_pooled"], "goal": f">= {GOAL}"},
            {"figure": "  per-rep ratios: median (min..max)",
             "value": f"{multi['ratio_median']} ({multi['ratio_min']}..{multi['ratio_max']})", "goal": "-"},
            {"figure": "agent-loop CPU per turn outside generation (token bookkeeping + parse), ms",
             "value": loop_cpu.get("mean_ms"), "goal": "-"},
            {"figure": "  the same turns in text mode (render + tokenize the whole conversation), ms",
             "value": loop_cpu.get("text_mode_mean_ms"), "goal": "-"},
        ],
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
