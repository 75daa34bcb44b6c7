"""Agent-loop efficiency: output tokens/s of many concurrent agent loops over
the in-process engine, divided by raw `vllm.LLM.generate` tokens/s on the same
prompts and sampling (goal >= 0.9). Each side runs in its own subprocess so
neither inherits the other's engine; both in one `make bench` run."""

from __future__ import annotations

import json
import subprocess
import sys
import time

N_PROMPTS = 32
MAX_TOKENS = 128


def _prompts() -> list[str]:
    return [f"Explain step by step how to compute {17 + i} * {3 + i % 7}, then give the result." for i in range(N_PROMPTS)]


def _raw_phase() -> dict:
    from vllm import LLM, SamplingParams

    from synthesizers.engines.model_store import ensure_embedded_model

    model = str(ensure_embedded_model())
    llm = LLM(model=model, max_model_len=2048, seed=0)
    tok = llm.get_tokenizer()
    prompts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
               for p in _prompts()]
    params = [SamplingParams(temperature=0.7, top_p=0.95, max_tokens=MAX_TOKENS, seed=i) for i in range(N_PROMPTS)]
    llm.generate(prompts[:2], params[:2])  # warm-up
    t0 = time.perf_counter()
    outs = llm.generate(prompts, params)
    wall = time.perf_counter() - t0
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    return {"tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall}


def _agent_phase() -> dict:
    import asyncio

    from schemas import Message
    from synthesizers.agent_loop import Budget, run_agent
    from synthesizers.domains.base import ToolContext
    from synthesizers.engines.base import SamplingParams
    from synthesizers.engines.model_store import ensure_embedded_model
    from synthesizers.engines.vllm_local import VLLMEngine
    from schemas import Task

    engine = VLLMEngine(str(ensure_embedded_model()), max_model_len=2048)
    engine.start()
    task = Task(id="bench", domain="bench")

    async def one(i: int, prompt: str):
        return await run_agent(
            engine, [Message(role="user", content=prompt)], [], ctx=ToolContext(task=task),
            params=SamplingParams(temperature=0.7, top_p=0.95, max_tokens=MAX_TOKENS, seed=i),
            budget=Budget(max_turns=1, max_total_tokens=4096, max_tool_output_chars=2000),
            is_final=lambda m: True,
        )

    async def main():
        await one(0, "warm up")
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(i, p) for i, p in enumerate(_prompts())))
        return results, time.perf_counter() - t0

    results, wall = asyncio.run(main())
    tokens = sum(r.tokens.completion for r in results)
    engine.shutdown()
    return {"tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall}


def _phase(name: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.bench_agent_loop", name], capture_output=True, text=True, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{name} phase failed: {proc.stderr.strip().splitlines()[-1:] }")
    return json.loads(lines[-1])


def run() -> dict:
    raw = _phase("raw")
    agent = _phase("agent")
    ratio = agent["tokens_per_s"] / raw["tokens_per_s"]
    return {
        "name": "agent_loop_vs_raw_vllm",
        "prompts": N_PROMPTS,
        "max_tokens": MAX_TOKENS,
        "raw_vllm": raw,
        "agent_loop": agent,
        "ratio": round(ratio, 3),
        "figures": [
            {"figure": "agent-loop tok/s / raw vLLM tok/s", "value": round(ratio, 3), "goal": ">= 0.9"},
            {"figure": "raw vLLM tok/s", "value": round(raw["tokens_per_s"], 1), "goal": "-"},
        ],
    }


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("raw", "agent"):
        print(json.dumps(_raw_phase() if sys.argv[1] == "raw" else _agent_phase()))
    else:
        print(json.dumps(run(), indent=2))
