"""In-process vLLM backend: ``VLLMEngine`` implements ``LLMEngine`` over vLLM's ``AsyncLLM``.

vLLM's async client binds its ZMQ sockets and output-handler task to the event
loop it starts in. Callers of this engine live in many loops (a pytest session
loop, ``asyncio.run`` per pipeline unit, Ray actors), so the ``AsyncLLM`` runs
in a private event loop on a daemon thread and ``chat`` hops onto it with
``run_coroutine_threadsafe``. That makes the engine safe to construct from sync
code or inside any running loop, and usable from every loop afterwards. The
engine itself (the ~30 s model load) starts lazily on the first ``chat``, or
eagerly with ``start()``.

``generate`` is the token-in/token-out path (``TokenEngine``): the prompt is
given as ids, and the completion carries the ids vLLM sampled and each one's
logprob (``SamplingParams(logprobs=0)``: the sampled token's own, the raw
model's). ``chat`` renders messages with the chat template (tools included),
tokenizes without extra special tokens and runs the same path.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import itertools
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from schemas import Message
from synthesizers.engines.base import Completion, SamplingParams
from synthesizers.engines.errors import CONTEXT_OVERFLOW
from synthesizers.engines.exact import trim_to_text


class VLLMEngine:
    token_exact = True

    def __init__(
        self,
        model: str,
        *,
        max_model_len: int = 4096,
        kv_cache_gb: float = 2,
        max_concurrency: int = 64,
        enforce_eager: bool = False,
        dtype: str = "auto",
        chat_template: str | None = None,
        model_id: str | None = None,
        engine_seed: int = 0,
        **engine_kwargs: Any,
    ):
        if _looks_like_path(model) and not Path(model).expanduser().exists():
            raise FileNotFoundError(f"model folder not found: {model} (run `make setup` or pass a valid path)")
        self.model = str(Path(model).expanduser()) if _looks_like_path(model) else model
        self.model_id = model_id or Path(self.model).name
        self.max_model_len = int(max_model_len)
        if _slow_bf16_cpu():
            # Measured on a 2-core AVX2 EPYC (no avx512_bf16/AMX): fp32 eager ~50 tok/s vs bf16 ~18;
            # torch.compile adds ~4 min of start-up for no gain there.
            dtype = "float32" if dtype == "auto" else dtype
            enforce_eager = True
        self._engine_kwargs = dict(
            max_model_len=self.max_model_len,
            max_num_seqs=int(max_concurrency),
            enforce_eager=enforce_eager,
            dtype=dtype,
            seed=engine_seed,
            disable_log_stats=True,
            **engine_kwargs,
        )
        # vLLM CPU sizes its KV cache from this variable; an explicit setting wins.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(int(kv_cache_gb) if float(kv_cache_gb).is_integer() else kv_cache_gb))

        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.model)
        if chat_template is not None:
            self.tokenizer.chat_template = chat_template
        if not self.tokenizer.chat_template:
            raise ValueError(f"{self.model} has no chat template: pass chat_template=")

        self._llm: Any = None
        self._start_error: BaseException | None = None
        self.start_seconds: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._ids = itertools.count()
        self._closed = False

    # ---- lifecycle -------------------------------------------------------

    def _engine_loop(self) -> asyncio.AbstractEventLoop:
        with self._thread_lock:
            if self._closed:
                raise RuntimeError("engine is closed")
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-engine", daemon=True)
                self._thread.start()
                atexit.register(self.shutdown)
            return self._loop

    def _submit(self, coro) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self._engine_loop())

    async def _ensure_llm(self):
        # Runs on the engine loop only; creation is synchronous, so no two
        # coroutines can start it twice.
        if self._llm is None and self._start_error is None:
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM

            t0 = time.perf_counter()
            try:
                self._llm = AsyncLLM.from_engine_args(AsyncEngineArgs(model=self.model, **self._engine_kwargs))
            except BaseException as exc:  # remembered: a failed start is not retried per request
                self._start_error = exc
            self.start_seconds = time.perf_counter() - t0
        if self._start_error is not None:
            raise RuntimeError(f"vLLM engine failed to start: {self._start_error}")
        return self._llm

    def start(self) -> float:
        """Start the engine now (blocking); returns the start-up seconds."""
        self._submit(self._ensure_llm()).result()
        return self.start_seconds or 0.0

    async def astart(self) -> float:
        await asyncio.wrap_future(self._submit(self._ensure_llm()))
        return self.start_seconds or 0.0

    def shutdown(self) -> None:
        """Stop the engine process and the engine thread (idempotent, any thread)."""
        with self._thread_lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        atexit.unregister(self.shutdown)
        if loop is None:
            return

        def stop() -> None:
            llm, self._llm = self._llm, None
            try:
                if llm is not None:
                    llm.shutdown()
                    # AsyncLLM.__del__ shuts down again; if the object lives until
                    # interpreter teardown that second call crashes on half-gone modules.
                    llm.shutdown = lambda *args, **kwargs: None
            finally:
                loop.stop()

        loop.call_soon_threadsafe(stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    async def close(self) -> None:
        await asyncio.to_thread(self.shutdown)

    # ---- requests --------------------------------------------------------

    def render(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> str:
        return self.tokenizer.apply_chat_template(
            [m.to_openai() for m in messages], tools=tools or None, add_generation_prompt=True, tokenize=False
        )

    async def chat(
        self,
        messages: list[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        params: SamplingParams = SamplingParams(),
    ) -> Completion:
        try:
            prompt = self.render(messages, tools) + params.assistant_prefix
            prompt_ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        except Exception as exc:  # the Protocol: never raise, record the failure
            return Completion(finish_reason="error", error=f"{type(exc).__name__}: {exc}")
        completion = await self.generate(prompt_ids, params)
        if completion.error is None and params.assistant_prefix:
            completion.text = params.assistant_prefix + completion.text
        return completion

    async def generate(self, prompt_ids: list[int], params: SamplingParams = SamplingParams()) -> Completion:
        t0 = time.perf_counter()
        try:
            prompt_ids = list(prompt_ids)
            room = self.max_model_len - len(prompt_ids)
            if room <= 0:
                return Completion(
                    finish_reason="error",
                    prompt_tokens=len(prompt_ids),
                    error=f"{CONTEXT_OVERFLOW}: prompt has {len(prompt_ids)} tokens, max_model_len is {self.max_model_len}",
                    latency_s=time.perf_counter() - t0,
                )
            # Clamp instead of failing: a long conversation still gets the room that is left.
            completion = await asyncio.wrap_future(
                self._submit(self._generate(prompt_ids, params, min(params.max_tokens, room)))
            )
        except Exception as exc:  # the Protocol: never raise, record the failure
            completion = Completion(finish_reason="error", error=f"{type(exc).__name__}: {exc}")
        completion.latency_s = time.perf_counter() - t0
        return completion

    async def score(self, ids: list[int]) -> list[float]:
        """The model's logprob of each token given the ones before it (``prompt_logprobs``; NaN for
        the first): how a row's stored logprobs are checked against the same model."""
        llm = await asyncio.wrap_future(self._submit(self._ensure_llm()))
        request_id = f"tf-score-{next(self._ids)}-{uuid.uuid4().hex[:8]}"
        return await asyncio.wrap_future(self._submit(_score(llm, list(ids), request_id)))

    async def _generate(self, prompt_ids: list[int], params: SamplingParams, max_tokens: int) -> Completion:
        from vllm import SamplingParams as VSamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        llm = await self._ensure_llm()
        sampling = VSamplingParams(
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=max_tokens,
            seed=params.seed,
            stop=list(params.stop) or None,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
            repetition_penalty=params.repetition_penalty,
            output_kind=RequestOutputKind.FINAL_ONLY,
            logprobs=0 if params.logprobs else None,
            structured_outputs=StructuredOutputsParams(**params.structured_outputs) if params.structured_outputs else None,
        )
        request_id = f"tf-{next(self._ids)}-{uuid.uuid4().hex[:8]}"
        final = None
        async for output in llm.generate({"prompt_token_ids": prompt_ids}, sampling, request_id):
            final = output
        if final is None or not final.outputs:
            return Completion(finish_reason="error", prompt_tokens=len(prompt_ids), error="engine returned no output")
        out = final.outputs[0]
        if out.finish_reason == "abort":
            return Completion(finish_reason="error", prompt_tokens=len(prompt_ids), error="request aborted by the engine")
        ids = list(out.token_ids)
        logprobs = _sampled_logprobs(ids, out.logprobs) if params.logprobs else None
        # ``stop_reason`` is the matched stop string (a str) or a stop token id (an int).
        ids, logprobs, text = trim_to_text(self.tokenizer, ids, logprobs, out.text, isinstance(out.stop_reason, str))
        return Completion(
            text=text,
            finish_reason=out.finish_reason or "stop",
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(out.token_ids),
            prompt_ids=prompt_ids,
            output_ids=ids,
            output_logprobs=logprobs,
        )


async def _score(llm: Any, ids: list[int], request_id: str) -> list[float]:
    from vllm import SamplingParams as VSamplingParams

    final = None
    async for output in llm.generate({"prompt_token_ids": ids}, VSamplingParams(max_tokens=1, prompt_logprobs=0),
                                     request_id):
        final = output
    per_position = final.prompt_logprobs if final is not None else None
    if not per_position:
        raise RuntimeError("vLLM returned no prompt logprobs")
    return [float("nan")] + [float(options[token].logprob) for token, options in zip(ids[1:], per_position[1:])]


def _sampled_logprobs(ids: list[int], per_position: Any) -> list[float]:
    """The logprob of each sampled token from vLLM's per-position dicts (token id -> Logprob)."""
    out = []
    for token, options in zip(ids, per_position or []):
        entry = options.get(token) if options else None
        out.append(float(entry.logprob) if entry is not None else float("nan"))
    return out + [float("nan")] * (len(ids) - len(out))


def _slow_bf16_cpu() -> bool:
    """True on a CPU-only host whose CPU has no native bf16 (vLLM CPU then runs bf16 very slowly)."""
    try:
        import torch

        if torch.cuda.is_available():
            return False
        flags = Path("/proc/cpuinfo").read_text()
    except Exception:
        return False
    return not any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", ".", "~")) or Path(model).exists()
