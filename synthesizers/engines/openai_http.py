"""Any OpenAI-compatible server (``vllm serve``, the vLLM api_server, others) over httpx.

``OpenAIHTTPEngine`` sends ``/v1/chat/completions`` requests with the
conversation in OpenAI format (tool calls and tool messages included), retries
connection errors, timeouts, 429 and 5xx with exponential backoff, and turns a
final failure into ``Completion(error=...)`` — it never raises out of ``chat``.
When the server parsed tool calls itself (a tool-call parser is configured),
they come back in ``Completion.tool_calls``; otherwise the raw text is left for
the agent loop's Hermes parser.

Token mode (``TokenEngine``): given the served model's tokenizer (established
against the server before a run: ``synthesizers.engines.served``), ``generate``
sends the prompt as token ids to ``/v1/completions`` with vLLM's
``return_token_ids`` and ``logprobs: 0``, and returns the ids the server saw
and sampled with each sampled token's logprob. Without a tokenizer, or for a
server that cannot return ids (``token_exact=False``), the engine runs text
mode (``chat``) only.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from typing import Any

import httpx

from schemas import Message, messages_from_openai
from synthesizers.engines.base import Completion, SamplingParams
from synthesizers.engines.errors import CONTEXT_OVERFLOW, ENDPOINT_UNAVAILABLE
from synthesizers.engines.exact import trim_to_text

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
CONNECTIONS_PER_CLIENT = 64
_OVERFLOW_HINTS = ("maximum context length", "context length", "max_model_len", "too long")


class OpenAIHTTPEngine:
    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_connections: int = 256,
        tool_choice: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        token_exact: bool | None = None,
    ):
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        self.model_id = model or ""
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self._timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Connections are split over several clients of at most CONNECTIONS_PER_CLIENT: httpcore's
        # pool scans every connection of its client on each request and each response, so one
        # client of 1,000 connections costs ~10 ms of CPU a request, sixteen of 64 ~2.5 ms.
        self._shards = max(1, math.ceil(int(max_connections) / CONNECTIONS_PER_CLIENT))
        per_client = math.ceil(int(max_connections) / self._shards)
        self._limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
        self._transport = transport
        # None: let the server decide. A server without a tool-call parser refuses
        # the implicit "auto"; "none" still renders the tools into the prompt there.
        self.tool_choice = tool_choice
        # Clients per event loop (an httpx.AsyncClient's pool is bound to the loop it first ran in),
        # each with its count of requests in flight (a request goes to the least busy).
        self._clients: dict[int, tuple[list[httpx.AsyncClient], list[int]]] = {}
        self._model_lock: asyncio.Lock | None = None
        self.max_model_len: int | None = None  # from /v1/models where the server says (vLLM does)
        # The served model's tokenizer (a local folder, a hub id, or a loaded tokenizer): token mode.
        self.tokenizer = load_tokenizer(tokenizer, chat_template) if tokenizer is not None else None
        self.token_exact = self.tokenizer is not None and (True if token_exact is None else bool(token_exact))

    def _loop_clients(self) -> tuple[list[httpx.AsyncClient], list[int]]:
        key = id(asyncio.get_running_loop())
        entry = self._clients.get(key)
        if entry is None or entry[0][0].is_closed:
            entry = ([httpx.AsyncClient(timeout=self._timeout, headers=self._headers, limits=self._limits,
                                        transport=self._transport) for _ in range(self._shards)], [0] * self._shards)
            self._clients[key] = entry
        return entry

    async def _request(self, path: str, payload: dict[str, Any] | None) -> httpx.Response:
        clients, busy = self._loop_clients()
        i = min(range(len(clients)), key=busy.__getitem__)
        busy[i] += 1
        try:
            if payload is None:
                return await clients[i].get(self.base_url + path)
            return await clients[i].post(self.base_url + path, json=payload)
        finally:
            busy[i] -= 1

    async def _post_with_retries(self, path: str, payload: dict[str, Any] | None) -> httpx.Response:
        """The final response (any status), or raises the last transport error."""
        attempt = 0
        while True:
            try:
                response = await self._request(path, payload)
                if response.status_code not in RETRY_STATUS or attempt >= self.max_retries:
                    return response
            except (httpx.TransportError, httpx.TimeoutException):
                if attempt >= self.max_retries:
                    raise
            # Exponential backoff with jitter so many loops do not retry in lockstep.
            await asyncio.sleep(self.backoff_s * (2**attempt) * (0.5 + random.random() / 2))
            attempt += 1

    async def resolve_model(self) -> str:
        """The served model id (the first one `/v1/models` lists) unless one was given."""
        if self.model_id:
            return self.model_id
        response = await self._post_with_retries("/models", None)
        response.raise_for_status()
        models = response.json().get("data") or []
        if not models:
            raise RuntimeError(f"{self.base_url}/models lists no model")
        self.model_id = models[0]["id"]
        if isinstance(models[0].get("max_model_len"), int):
            self.max_model_len = models[0]["max_model_len"]
        return self.model_id

    async def chat(
        self,
        messages: list[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        params: SamplingParams = SamplingParams(),
    ) -> Completion:
        t0 = time.perf_counter()
        try:
            payload: dict[str, Any] = {
                "model": await self.resolve_model(),
                "messages": [_to_wire(m) for m in messages],
                "max_tokens": params.max_tokens,
                "temperature": params.temperature,
                "top_p": params.top_p,
            }
            payload.update(sampling_fields(params))
            if params.assistant_prefix:
                # vLLM's (and most servers') way to continue a started assistant turn.
                payload["messages"].append({"role": "assistant", "content": params.assistant_prefix})
                payload["continue_final_message"] = True
                payload["add_generation_prompt"] = False
            if tools:
                payload["tools"] = tools
                if self.tool_choice:
                    payload["tool_choice"] = self.tool_choice
            response = await self._post_with_retries("/chat/completions", payload)
            completion = _completion_from(response)
            if params.assistant_prefix and completion.error is None:
                completion.text = params.assistant_prefix + completion.text
        except Exception as exc:  # the Protocol: a failed request is recorded, not raised
            completion = Completion(finish_reason="error", error=error_text(exc))
        completion.latency_s = time.perf_counter() - t0
        return completion

    async def generate(self, prompt_ids: list[int], params: SamplingParams = SamplingParams()) -> Completion:
        """Continue ``prompt_ids`` exactly (``/v1/completions`` with the ids as the prompt);
        ``params.assistant_prefix`` is ignored (the caller puts a prefix's ids in the prompt)."""
        t0 = time.perf_counter()
        try:
            prompt_ids = [int(i) for i in prompt_ids]
            model = await self.resolve_model()
            max_tokens = params.max_tokens
            if self.max_model_len is not None:
                room = self.max_model_len - len(prompt_ids)
                if room <= 0:
                    return Completion(
                        finish_reason="error", prompt_tokens=len(prompt_ids), latency_s=time.perf_counter() - t0,
                        error=f"{CONTEXT_OVERFLOW}: prompt has {len(prompt_ids)} tokens, max_model_len is {self.max_model_len}",
                    )
                max_tokens = min(max_tokens, room)  # as in-process vLLM: the room that is left
            payload = completions_payload(model, prompt_ids, params, max_tokens)
            response = await self._post_with_retries("/completions", payload)
            completion = self._token_completion_from(response, prompt_ids, params)
        except Exception as exc:  # the Protocol: a failed request is recorded, not raised
            completion = Completion(finish_reason="error", error=error_text(exc))
        completion.latency_s = time.perf_counter() - t0
        return completion

    async def score(self, ids: list[int]) -> list[float]:
        """The served model's logprob of each token given the ones before it (vLLM's
        ``prompt_logprobs``; NaN for the first): how a row's stored logprobs are checked."""
        payload = {"model": await self.resolve_model(), "prompt": [int(i) for i in ids], "max_tokens": 1,
                   "prompt_logprobs": 0}
        response = await self._post_with_retries("/completions", payload)
        response.raise_for_status()
        per_position = response.json()["choices"][0].get("prompt_logprobs")
        if not per_position:
            raise RuntimeError(f"{self.base_url}/completions returned no prompt_logprobs (not a vLLM server?)")
        return [math.nan] + [float(per_position[i][str(token)]["logprob"]) for i, token in enumerate(ids) if i]

    def _token_completion_from(self, response: httpx.Response, prompt_ids: list[int], params: SamplingParams) -> Completion:
        if response.status_code != 200:
            return _completion_from(response)  # the error, context overflow marked
        body = response.json()
        choice = (body.get("choices") or [{}])[0]
        ids = choice.get("token_ids")
        if not isinstance(ids, list):
            return Completion(finish_reason="error", prompt_tokens=len(prompt_ids),
                              error=f"{self.base_url}/completions returned no token ids (not a vLLM server?)")
        ids = [int(i) for i in ids]
        logprobs = None
        if params.logprobs:
            logprobs = _sampled_logprobs((choice.get("logprobs") or {}).get("token_logprobs"), len(ids))
        text = choice.get("text") or ""
        # ``stop_reason`` is the matched stop string (a str) or a stop token id (an int); vLLM keeps
        # a stop string's tokens in ``token_ids`` while cutting it from the text.
        stopped_on_string = isinstance(choice.get("stop_reason"), str)
        tokenizer = self.tokenizer
        if stopped_on_string and tokenizer is None:
            return Completion(finish_reason="error", prompt_tokens=len(prompt_ids),
                              error="stopped on a stop string but the engine has no tokenizer to trim its tokens")
        sampled = len(ids)
        ids, logprobs, text = trim_to_text(tokenizer, ids, logprobs, text, stopped_on_string)
        echoed = choice.get("prompt_token_ids")
        usage = body.get("usage") or {}
        return Completion(
            text=text,
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens") or len(prompt_ids)),
            completion_tokens=int(usage.get("completion_tokens") or sampled),
            prompt_ids=[int(i) for i in echoed] if isinstance(echoed, list) else list(prompt_ids),
            output_ids=ids,
            output_logprobs=logprobs,
        )

    async def close(self) -> None:
        clients, self._clients = [c for entry in self._clients.values() for c in entry[0]], {}
        for client in clients:
            try:
                await client.aclose()
            except RuntimeError:  # its loop is gone; nothing left to release
                pass


def penalty_fields(params: SamplingParams) -> dict[str, float]:
    """The penalties that are set, as request fields; ``repetition_penalty`` is vLLM's extension
    of the OpenAI API, so it is sent only when set (a plain OpenAI server refuses unknown fields)."""
    fields = {"presence_penalty": params.presence_penalty, "frequency_penalty": params.frequency_penalty}
    fields = {key: value for key, value in fields.items() if value != 0.0}
    if params.repetition_penalty != 1.0:
        fields["repetition_penalty"] = params.repetition_penalty
    return fields


def sampling_fields(params: SamplingParams) -> dict[str, Any]:
    """The optional request fields both endpoints share: seed, stop strings, penalties, structured outputs."""
    fields: dict[str, Any] = {}
    if params.seed is not None:
        fields["seed"] = params.seed
    if params.stop:
        fields["stop"] = list(params.stop)
    fields.update(penalty_fields(params))
    if params.structured_outputs:
        fields["structured_outputs"] = dict(params.structured_outputs)
    return fields


def completions_payload(model: str, prompt_ids: list[int], params: SamplingParams, max_tokens: int) -> dict[str, Any]:
    """A vLLM ``/v1/completions`` request that continues ``prompt_ids`` and returns the ids it
    saw and sampled (``return_token_ids``) with each sampled token's logprob (``logprobs: 0``).
    Special tokens are skipped from the text and a stop string is cut from it, as in-process
    vLLM does by default; ``generate`` then trims the ids to the text."""
    payload: dict[str, Any] = {
        "model": model,
        "prompt": list(prompt_ids),
        "max_tokens": max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "return_token_ids": True,
        "skip_special_tokens": True,
        "include_stop_str_in_output": False,
    }
    if params.logprobs:
        payload["logprobs"] = 0
    payload.update(sampling_fields(params))
    return payload


def load_tokenizer(tokenizer: Any, chat_template: str | None = None) -> Any:
    """A Hugging Face tokenizer from a local folder or hub id (or one already loaded), its chat
    template replaced by ``chat_template`` when given."""
    if isinstance(tokenizer, (str, bytes)) or hasattr(tokenizer, "__fspath__"):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def _sampled_logprobs(values: Any, n: int) -> list[float]:
    """One float per sampled id (NaN where the server gave none)."""
    out = [float("nan") if v is None else float(v) for v in (values or [])][:n]
    return out + [float("nan")] * (n - len(out))


def _to_wire(message: Message) -> dict[str, Any]:
    wire = message.to_openai()
    if message.role == "tool" and message.tool_call_id is None:
        # An observation answering a malformed call has no id to point at, and
        # servers reject such tool messages. This user turn renders to the same
        # text under trajforge's chat template.
        return {"role": "user", "content": f"<tool_response>\n{message.content}\n</tool_response>"}
    if message.role == "assistant" and message.tool_calls and not message.content:
        wire["content"] = None
    return wire


def error_text(exc: Exception) -> str:
    """A failed request's ``Completion.error``: marked ``ENDPOINT_UNAVAILABLE`` when the server
    did not answer (refused, reset, timed out) or said it cannot now (429, 5xx)."""
    text = f"{type(exc).__name__}: {exc}"
    status = exc.response.status_code if isinstance(exc, httpx.HTTPStatusError) else None
    if isinstance(exc, (httpx.TransportError, httpx.TimeoutException)) or status in RETRY_STATUS:
        return f"{ENDPOINT_UNAVAILABLE}: {text}"
    return text


def _completion_from(response: httpx.Response) -> Completion:
    if response.status_code != 200:
        detail = response.text[:500]
        prefix = CONTEXT_OVERFLOW + ": " if response.status_code == 400 and _is_overflow(detail) else ""
        if response.status_code in RETRY_STATUS:
            prefix = ENDPOINT_UNAVAILABLE + ": "
        return Completion(finish_reason="error", error=f"{prefix}HTTP {response.status_code}: {detail}")
    body = response.json()
    choice = (body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    usage = body.get("usage") or {}
    calls = []
    if message.get("tool_calls"):
        calls = messages_from_openai([{"role": "assistant", "tool_calls": message["tool_calls"]}])[0].tool_calls
    return Completion(
        text=message.get("content") or "",
        finish_reason=choice.get("finish_reason") or "stop",
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        tool_calls=calls,
    )


def _is_overflow(detail: str) -> bool:
    lowered = detail.lower()
    return any(hint in lowered for hint in _OVERFLOW_HINTS)
