"""A bench-only OpenAI-compatible server that simulates an inference engine's speed, not a model.

It answers ``GET /v1/models``, ``POST /v1/completions`` (a prompt of token ids; vLLM's
``return_token_ids`` and ``logprobs`` fields in the answer) and ``POST /v1/chat/completions``
(a fixed text), each after the time a continuous-batching engine would take: at most
``capacity`` sequences decode at once, each at one token per ``delay_s`` (prefill is free);
requests beyond ``capacity`` wait their turn. So the server's simulated capacity is
``capacity / delay_s`` output tokens per second, and a client that keeps every slot busy
reaches it exactly; whatever falls short of it is the client's own overhead.

What it writes comes from a script (``--script FILE``, JSON): ``replies`` is a list of turns,
each ``{"ids": [...], "text": "..."}``; the turn of a request is the number of ``marker`` ids
in its prompt, less ``base``, divided by ``per_turn`` (clipped to the last reply), so a
multi-turn agent loop gets reply 0, then 1, ... Without a script every reply is
``reply_tokens`` copies of id 0. ``GET /stats`` reports requests, the peak of sequences
decoding at once and the busy slot-seconds.

    python -m bench.openai_sim --port 8101 --capacity 400 --delay-s 0.05 [--script FILE]

Used by ``bench/bench_rollout_scale.py`` and by the endpoint-pool tests (a process they kill).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent


class SimServer:
    def __init__(self, *, model: str = "sim-model", capacity: int = 64, delay_s: float = 0.02,
                 reply_tokens: int = 16, script: dict[str, Any] | None = None, max_model_len: int = 32768):
        self.model, self.capacity, self.delay_s = model, int(capacity), float(delay_s)
        self.max_model_len = int(max_model_len)
        script = script or {}
        self.replies = script.get("replies") or [{"ids": [0] * int(reply_tokens), "text": "x" * int(reply_tokens)}]
        self.marker, self.base, self.per_turn = script.get("marker"), int(script.get("base", 0)), int(script.get("per_turn", 1))
        self.slots: asyncio.Semaphore | None = None
        self.requests = self.completed = self.active = self.peak_active = 0
        self.busy_s = 0.0
        self.tokens = 0

    def _reply(self, prompt: list[int]) -> dict[str, Any]:
        turn = 0
        if self.marker is not None:
            turn = max(0, (prompt.count(self.marker) - self.base) // max(1, self.per_turn))
        return self.replies[min(turn, len(self.replies) - 1)]

    async def _decode(self, n_tokens: int) -> None:
        """Hold one of ``capacity`` slots for ``n_tokens * delay_s`` seconds."""
        if self.slots is None:
            self.slots = asyncio.Semaphore(self.capacity)
        async with self.slots:
            self.active += 1
            self.peak_active = max(self.peak_active, self.active)
            t0 = time.monotonic()
            try:
                await asyncio.sleep(n_tokens * self.delay_s)
            finally:
                self.active -= 1
                self.busy_s += time.monotonic() - t0
        self.tokens += n_tokens
        self.completed += 1

    async def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body.get("prompt")
        if not isinstance(prompt, list):
            raise ValueError("prompt must be a list of token ids")
        reply = self._reply(prompt)
        max_tokens = int(body.get("max_tokens") or 16)
        ids = list(reply["ids"][:max_tokens])
        cut = len(ids) < len(reply["ids"])
        await self._decode(len(ids))
        choice: dict[str, Any] = {"index": 0, "text": reply["text"] if not cut else "", "token_ids": ids,
                                  "finish_reason": "length" if cut else "stop", "stop_reason": None}
        if body.get("logprobs") is not None:
            choice["logprobs"] = {"token_logprobs": [-0.5] * len(ids)}
        return {"id": f"cmpl-{self.requests}", "object": "text_completion", "model": self.model, "choices": [choice],
                "usage": {"prompt_tokens": len(prompt), "completion_tokens": len(ids)}}

    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = self.replies[0]
        n = min(len(reply["ids"]), int(body.get("max_tokens") or 16))
        await self._decode(n)
        message = {"role": "assistant", "content": reply["text"]}
        return {"id": f"chat-{self.requests}", "object": "chat.completion", "model": self.model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(body.get("messages") or []), "completion_tokens": n}}

    def stats(self) -> dict[str, Any]:
        return {"requests": self.requests, "completed": self.completed, "active": self.active,
                "peak_active": self.peak_active, "busy_slot_s": round(self.busy_s, 3), "tokens": self.tokens,
                "capacity": self.capacity, "delay_s": self.delay_s}

    # ---- ASGI ------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            orphan = asyncio.ensure_future(_exit_when_orphaned())
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            orphan.cancel()
            await send({"type": "lifespan.shutdown.complete"})
            return
        path, method = scope["path"], scope["method"]
        status, answer = 404, {"detail": "Not Found"}
        if method == "GET" and path == "/v1/models":
            status, answer = 200, {"object": "list", "data": [
                {"id": self.model, "object": "model", "root": self.model, "max_model_len": self.max_model_len}]}
        elif method == "GET" and path in ("/health", "/stats"):
            status, answer = 200, self.stats()
        elif method == "POST" and path in ("/v1/completions", "/v1/chat/completions"):
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            self.requests += 1
            try:
                body = json.loads(b"".join(chunks) or b"{}")
                handler = self.completions if path == "/v1/completions" else self.chat
                status, answer = 200, await handler(body)
            except (ValueError, TypeError, KeyError) as exc:
                status, answer = 400, {"error": {"message": f"{type(exc).__name__}: {exc}"}}
        payload = json.dumps(answer).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


def agent_script(tokenizer: Any, first_prompt: list[int], *, tokens_per_turn: int, turns: int,
                 tool: str = "lookup", answer: str = "42") -> dict[str, Any]:
    """A ``--script`` for a ChatML model: ``turns - 1`` turns that each call ``tool``, then a
    final ``\\boxed{answer}``; each reply is ``tokens_per_turn`` ids ending with ``<|im_end|>``
    (thinking filler before the call). ``first_prompt`` is a rollout's first prompt: the turn of
    a request is counted in ``<|im_start|>`` ids beyond it, two per turn (assistant + tool)."""
    marker = tokenizer.convert_tokens_to_ids("<|im_start|>")
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    filler = tokenizer.encode(" Let me think about this step by step.", add_special_tokens=False)
    replies = []
    for turn in range(turns):
        if turn < turns - 1:
            tail = f'\n<tool_call>{{"name": "{tool}", "arguments": {{"key": "k{turn}"}}}}</tool_call>'
        else:
            tail = f"\nThe final answer is \\boxed{{{answer}}}."
        tail_ids = tokenizer.encode(tail, add_special_tokens=False)
        room = max(0, tokens_per_turn - 1 - len(tail_ids))
        ids = (filler * (room // max(1, len(filler)) + 1))[:room] + tail_ids + [end]
        replies.append({"ids": ids, "text": tokenizer.decode(ids, skip_special_tokens=True)})
    return {"replies": replies, "marker": marker, "base": first_prompt.count(marker), "per_turn": 2}


async def _exit_when_orphaned() -> None:
    """A server whose bench or test died goes too (it would hold its port and a core's share)."""
    parent = os.getppid()
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SimProcess:
    """A ``SimServer`` in its own process on 127.0.0.1 (so killing it is an endpoint dying)."""

    def __init__(self, port: int | None = None, **options: Any):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.options = options
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60.0) -> "SimProcess":
        args = [sys.executable, "-m", "bench.openai_sim", "--port", str(self.port)]
        for key, value in self.options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sim server on port {self.port} exited: {self.proc.stderr.read().decode()[-500:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"sim server on port {self.port} did not answer within {timeout_s:g} s")

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.url + "/stats", timeout=10.0).json()

    def kill(self) -> None:
        """SIGKILL: open connections are reset, as when a server's machine dies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def __enter__(self) -> "SimProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.kill()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="sim-model")
    parser.add_argument("--capacity", type=int, default=64, help="sequences decoding at once")
    parser.add_argument("--delay-s", type=float, default=0.02, help="seconds per output token of a sequence")
    parser.add_argument("--reply-tokens", type=int, default=16)
    parser.add_argument("--script", default=None, help="JSON file: replies per turn (see the module docstring)")
    args = parser.parse_args(argv)
    script = json.loads(open(args.script).read()) if args.script else None
    app = SimServer(model=args.model, capacity=args.capacity, delay_s=args.delay_s, reply_tokens=args.reply_tokens,
                    script=script)
    import uvicorn

    # httptools and uvloop where installed: the server must not be what limits the bench.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, backlog=4096,
                timeout_keep_alive=60)


if __name__ == "__main__":
    main()
