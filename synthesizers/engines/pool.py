"""Many OpenAI-compatible endpoints serving one model, used as one engine.

``engine.model`` names the endpoints as a list of URLs (in YAML) or one string of URLs
separated by commas (``--model http://a:8000,http://b:8000``); ``make_engine`` then builds an
``EndpointPool``: an ``LLMEngine`` and ``TokenEngine`` like ``OpenAIHTTPEngine``, over one
``OpenAIHTTPEngine`` per endpoint.

- **Load balancing**: each request goes to the healthy endpoint with the fewest requests in
  flight from this pool (ties rotate), so a slow or busy server gets less.
- **Health**: a request that an endpoint fails for the endpoint's reasons (refused, reset,
  timed out, 429/5xx: ``errors.ENDPOINT_UNAVAILABLE``) takes that endpoint out; a background
  thread probes the endpoints that are out (``GET /v1/models``, the same model id) every
  ``probe_interval_s`` and puts each back once it answers.
- **Retries elsewhere**: the failed request is sent again, unchanged (same prompt ids, same
  seed), to another healthy endpoint, at most ``max_retries`` times. Every endpoint serves the
  same model and tokenizer (checked at start: ``served.establish_tokenizer``), so the answer
  is the one the dead endpoint would have given; the rollout goes on and the completion counts
  the retries (``Completion.endpoint_retries`` -> ``Timings.endpoint_retries``): an
  infrastructure retry, never a model failure. With no endpoint healthy a request waits up to
  ``wait_healthy_s`` for one to come back, then fails as ``ENDPOINT_UNAVAILABLE`` (the rollout
  ends as ``engine_error`` and the rollout-level infrastructure retry takes over).

Each endpoint's own engine does not retry (``max_retries=0``): a dead endpoint fails fast
and the pool moves the request on.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import httpx

from schemas import Message
from synthesizers.engines.base import Completion, SamplingParams
from synthesizers.engines.errors import ENDPOINT_UNAVAILABLE, is_endpoint_unavailable
from synthesizers.engines.openai_http import OpenAIHTTPEngine, error_text, load_tokenizer


def endpoint_urls(spec: str | list[str]) -> list[str]:
    """The endpoint URLs of an engine spec (a list, or one string separated by commas)."""
    parts = spec if isinstance(spec, (list, tuple)) else str(spec).split(",")
    urls = [str(p).strip() for p in parts if str(p).strip()]
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"endpoint {url!r} is not an http(s) URL: engine.model lists OpenAI-compatible servers")
    if len(set(u.rstrip("/") for u in urls)) != len(urls):
        raise ValueError(f"engine.model names an endpoint twice ({', '.join(urls)}): list each server once")
    return urls


def is_pool_spec(spec: str) -> bool:
    from synthesizers.engines.spec import parse_model_spec

    return parse_model_spec(spec).kind == "url" and "," in spec


@dataclass
class Endpoint:
    url: str
    engine: OpenAIHTTPEngine
    index: int
    healthy: bool = True
    in_flight: int = 0
    served: int = 0  # requests it answered
    failed: int = 0  # requests it failed for its own reasons (each took it out)
    taken_out: int = 0  # times it went from healthy to out
    readmitted: int = 0  # times a probe put it back
    last_error: str = ""

    def stats(self) -> dict[str, Any]:
        return {"url": self.url, "healthy": self.healthy, "in_flight": self.in_flight, "served": self.served,
                "failed": self.failed, "taken_out": self.taken_out, "readmitted": self.readmitted,
                "last_error": self.last_error}


@dataclass
class PoolEvent:
    at: float  # time.monotonic()
    url: str
    kind: str  # "out" | "in"
    detail: str = ""


class EndpointPool:
    def __init__(
        self,
        urls: str | list[str],
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_connections: int = 256,
        tool_choice: str | None = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        token_exact: bool | None = None,
        probe_interval_s: float = 2.0,
        probe_timeout_s: float = 5.0,
        wait_healthy_s: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        probe_transport: httpx.BaseTransport | None = None,
    ):
        urls = endpoint_urls(urls)
        if len(urls) < 2:
            raise ValueError("an endpoint pool needs at least two URLs; one URL is a plain OpenAI-compatible engine")
        self.tokenizer = load_tokenizer(tokenizer, chat_template) if tokenizer is not None else None
        self.token_exact = self.tokenizer is not None and (True if token_exact is None else bool(token_exact))
        self.model_id = model or ""
        self.max_model_len: int | None = None
        self.max_retries = int(max_retries)
        self.probe_interval_s = float(probe_interval_s)
        self.probe_timeout_s = float(probe_timeout_s)
        self.wait_healthy_s = float(timeout_s if wait_healthy_s is None else wait_healthy_s)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._probe_transport = probe_transport
        self.endpoints = [
            Endpoint(url, OpenAIHTTPEngine(url, model=model, api_key=api_key, timeout_s=timeout_s, max_retries=0,
                                           backoff_s=backoff_s, max_connections=max_connections,
                                           tool_choice=tool_choice, transport=transport, tokenizer=self.tokenizer,
                                           token_exact=token_exact), i)
            for i, url in enumerate(urls)
        ]
        self.events: list[PoolEvent] = []
        self._lock = threading.Lock()
        self._turn = 0  # rotates ties between equally loaded endpoints
        self._closed = threading.Event()
        self._prober: threading.Thread | None = None
        self._model_lock: asyncio.Lock | None = None
        self._resolved = bool(model)  # a given model id is sent as is (as OpenAIHTTPEngine does)

    # ---- choosing an endpoint ---------------------------------------------------

    def _pick(self) -> Endpoint | None:
        with self._lock:
            healthy = [e for e in self.endpoints if e.healthy]
            if not healthy:
                return None
            n, turn = len(self.endpoints), self._turn
            self._turn += 1
            endpoint = min(healthy, key=lambda e: (e.in_flight, (e.index - turn) % n))
            endpoint.in_flight += 1
            return endpoint

    async def _acquire(self) -> Endpoint | None:
        """The least loaded healthy endpoint (its in-flight count taken), waiting up to
        ``wait_healthy_s`` for a probe to put one back when none is healthy."""
        deadline = time.monotonic() + self.wait_healthy_s
        while True:
            endpoint = self._pick()
            if endpoint is not None or time.monotonic() >= deadline or self._closed.is_set():
                return endpoint
            await asyncio.sleep(max(0.05, min(0.5, self.probe_interval_s / 4)))

    def _release(self, endpoint: Endpoint, outcome: str, error: str = "") -> None:
        """``outcome``: "served", "failed" (the endpoint's fault: it is taken out and probed) or
        "dropped" (the caller gave up, e.g. a cancelled rollout: nobody's fault)."""
        with self._lock:
            endpoint.in_flight -= 1
            if outcome == "served":
                endpoint.served += 1
            if outcome == "failed":
                endpoint.failed += 1
                self._take_out(endpoint, error)

    def _take_out(self, endpoint: Endpoint, error: str) -> None:
        """(Under the lock.) Out of the rotation until a probe finds it answering again."""
        endpoint.last_error = error[:300]
        if endpoint.healthy:
            endpoint.healthy = False
            endpoint.taken_out += 1
            self.events.append(PoolEvent(time.monotonic(), endpoint.url, "out", error[:300]))
        if self._prober is None and not self._closed.is_set():
            self._prober = threading.Thread(target=self._probe_loop, name="trajforge-endpoint-probe", daemon=True)
            self._prober.start()

    async def _dispatch(self, send: Callable[[OpenAIHTTPEngine], Awaitable[Completion]]) -> Completion:
        """``send`` on the least loaded healthy endpoint; on an endpoint failure, again on another."""
        t0 = time.perf_counter()
        retries, last = 0, "none was healthy"
        for _ in range(1 + max(0, self.max_retries)):
            endpoint = await self._acquire()
            if endpoint is None:
                last = f"no healthy endpoint among {len(self.endpoints)} (last failure: {last})"
                break
            try:
                completion = await send(endpoint.engine)
            except BaseException:
                self._release(endpoint, "dropped")
                raise
            if not is_endpoint_unavailable(completion.error):
                self._release(endpoint, "served")
                completion.endpoint_retries = retries
                completion.latency_s = time.perf_counter() - t0
                return completion
            self._release(endpoint, "failed", completion.error or "")
            last = f"{endpoint.url}: {completion.error}"
            retries += 1
        return Completion(finish_reason="error", error=f"{ENDPOINT_UNAVAILABLE}: {last}", endpoint_retries=retries,
                          latency_s=time.perf_counter() - t0)

    # ---- the engine Protocols -----------------------------------------------------

    async def resolve_model(self) -> str:
        """The served model id (given, or from the first endpoint that answers); every
        endpoint's engine then sends it without asking again."""
        if self._resolved:
            return self.model_id
        if self._model_lock is None:
            self._model_lock = asyncio.Lock()
        async with self._model_lock:
            if not self._resolved:
                await self._resolve_once()
        return self.model_id

    async def _resolve_once(self) -> None:
        problems = []
        for endpoint in sorted(self.endpoints, key=lambda e: not e.healthy):
            try:
                self.model_id = await endpoint.engine.resolve_model()
            except Exception as exc:  # noqa: BLE001 - this endpoint cannot say; ask the next
                problems.append(f"{endpoint.url}: {type(exc).__name__}: {exc}")
                if is_endpoint_unavailable(error_text(exc)):
                    with self._lock:
                        self._take_out(endpoint, error_text(exc))
                continue
            self.max_model_len = endpoint.engine.max_model_len
            for e in self.endpoints:
                e.engine.model_id, e.engine.max_model_len = self.model_id, self.max_model_len
            self._resolved = True
            return
        raise RuntimeError(f"no endpoint says which model it serves ({'; '.join(problems)})")

    async def chat(self, messages: list[Message], *, tools: list[dict[str, Any]] | None = None,
                   params: SamplingParams = SamplingParams()) -> Completion:
        try:
            await self.resolve_model()
        except Exception as exc:  # the Protocol: a failed request is recorded, not raised
            return Completion(finish_reason="error", error=f"{ENDPOINT_UNAVAILABLE}: {exc}")
        return await self._dispatch(lambda engine: engine.chat(messages, tools=tools, params=params))

    async def generate(self, prompt_ids: list[int], params: SamplingParams = SamplingParams()) -> Completion:
        try:
            await self.resolve_model()
        except Exception as exc:  # the Protocol: a failed request is recorded, not raised
            return Completion(finish_reason="error", error=f"{ENDPOINT_UNAVAILABLE}: {exc}")
        return await self._dispatch(lambda engine: engine.generate(prompt_ids, params))

    async def score(self, ids: list[int]) -> list[float]:
        await self.resolve_model()
        for _ in range(1 + max(0, self.max_retries)):
            endpoint = await self._acquire()
            if endpoint is None:
                break
            try:
                scores = await endpoint.engine.score(ids)
            except (httpx.TransportError, httpx.TimeoutException, httpx.HTTPStatusError) as exc:
                error = error_text(exc)
                self._release(endpoint, "failed" if is_endpoint_unavailable(error) else "dropped", error)
                if not is_endpoint_unavailable(error):
                    raise
                continue
            except BaseException:
                self._release(endpoint, "dropped")
                raise
            self._release(endpoint, "served")
            return scores
        raise RuntimeError(f"{ENDPOINT_UNAVAILABLE}: no endpoint of {len(self.endpoints)} could score the ids")

    # ---- health -------------------------------------------------------------------

    def _probe_loop(self) -> None:
        """Probe the endpoints that are out until none is (then the thread ends)."""
        with httpx.Client(timeout=httpx.Timeout(self.probe_timeout_s), headers=self._headers,
                          transport=self._probe_transport) as client:
            while not self._closed.wait(self.probe_interval_s):
                for endpoint in [e for e in self.endpoints if not e.healthy]:
                    problem = self._probe(client, endpoint)
                    if problem is None:
                        with self._lock:
                            endpoint.healthy = True
                            endpoint.readmitted += 1
                            self.events.append(PoolEvent(time.monotonic(), endpoint.url, "in"))
                    else:
                        endpoint.last_error = problem
                with self._lock:
                    if all(e.healthy for e in self.endpoints):
                        self._prober = None
                        return

    def _probe(self, client: httpx.Client, endpoint: Endpoint) -> str | None:
        """None when ``endpoint`` answers ``/v1/models`` with the pool's model, else why not."""
        try:
            response = client.get(endpoint.engine.base_url + "/models")
            response.raise_for_status()
            served = [str(m.get("id")) for m in response.json().get("data") or []]
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            return f"probe: {type(exc).__name__}: {exc}"
        if not served:
            return "probe: /v1/models lists no model"
        if self.model_id and self.model_id not in served:
            return f"probe: serves {served[0]!r}, not {self.model_id!r}"
        return None

    def stats(self) -> list[dict[str, Any]]:
        with self._lock:
            return [e.stats() for e in self.endpoints]

    async def close(self) -> None:
        self._closed.set()
        prober = self._prober
        if prober is not None:
            prober.join(timeout=self.probe_timeout_s + 1)
        for endpoint in self.endpoints:
            await endpoint.engine.close()
