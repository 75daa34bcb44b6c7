"""Any OpenAI-compatible server (``vllm serve``, the vLLM api_server, others) over httpx.

``OpenAIHTTPEngine`` sends ``/v1/chat/completions`` requests with the
conversation in OpenAI format (tool calls and tool messages included), retries
connection errors, timeouts, 429 and 5xx with exponential backoff, and turns a
final failure into ``Completion(error=...)`` — it never raises out of ``chat``.
When the server parsed tool calls itself (a tool-call parser is configured),
they come back in ``Completion.tool_calls``; otherwise the raw text is left for
the agent loop's Hermes parser.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx

from schemas import Message, messages_from_openai
from synthesizers.engines.base import Completion, SamplingParams
from synthesizers.engines.errors import CONTEXT_OVERFLOW

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
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
    ):
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        self.model_id = model or ""
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self._timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._transport = transport
        # None: let the server decide. A server without a tool-call parser refuses
        # the implicit "auto"; "none" still renders the tools into the prompt there.
        self.tool_choice = tool_choice
        # One client per event loop: an httpx.AsyncClient's pool is bound to the loop it first ran in.
        self._clients: dict[int, httpx.AsyncClient] = {}
        self._model_lock: asyncio.Lock | None = None

    def _client(self) -> httpx.AsyncClient:
        key = id(asyncio.get_running_loop())
        client = self._clients.get(key)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(
                timeout=self._timeout, headers=self._headers, limits=self._limits, transport=self._transport
            )
            self._clients[key] = client
        return client

    async def _post_with_retries(self, path: str, payload: dict[str, Any] | None) -> httpx.Response:
        """The final response (any status), or raises the last transport error."""
        attempt = 0
        while True:
            try:
                if payload is None:
                    response = await self._client().get(self.base_url + path)
                else:
                    response = await self._client().post(self.base_url + path, json=payload)
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
            if params.seed is not None:
                payload["seed"] = params.seed
            if params.stop:
                payload["stop"] = list(params.stop)
            payload.update(penalty_fields(params))
            if params.structured_outputs:
                payload["structured_outputs"] = dict(params.structured_outputs)
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
            completion = Completion(finish_reason="error", error=f"{type(exc).__name__}: {exc}")
        completion.latency_s = time.perf_counter() - t0
        return completion

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
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


def _completion_from(response: httpx.Response) -> Completion:
    if response.status_code != 200:
        detail = response.text[:500]
        prefix = CONTEXT_OVERFLOW + ": " if response.status_code == 400 and _is_overflow(detail) else ""
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
