"""Where the agent's ``search``/``open`` calls go: the node-local service or any
HTTP search API that speaks the same JSON schema (see ``search_service``).

A *search spec* (a plain dict carried in each task's payload, so Ray workers
need no side channel) picks the backend:

    {"backend": "local", "corpus": {...corpus spec...}}           # default
    {"backend": "http", "url": "https://...", "headers": {...}, "timeout_s": 10}
    {"backend": "python:package.module:Class", ...kwargs}         # any SearchBackend

Lifecycle of the local service (one per node): the first tool call in a
process takes a file lock under ``.cache/deep_research/services/``; if a
healthy service for the same corpus is recorded there (started by another
worker on this node) it is reused, otherwise this process starts one as its
child, records it, and stops it at exit. A child service dies with its owner,
so a reusing process that loses it simply starts its own on the next call.
"""

from __future__ import annotations

import atexit
import fcntl
import importlib
import json
import threading
import time
from typing import Any, Protocol, runtime_checkable

import httpx

from synthesizers.domains.deep_research.corpus import normalize_spec, spec_key
from synthesizers.domains.deep_research.search_index import CACHE_DIR
from synthesizers.domains.deep_research.search_service import SearchService, answers_health


class BackendError(RuntimeError):
    """A search backend failed; the message is shown to the model as a tool error."""


@runtime_checkable
class SearchBackend(Protocol):
    def search(self, query: str, k: int) -> list[dict[str, Any]]:
        """Ranked results: dicts with doc_id, title, snippet (score optional)."""

    def open(self, doc_id: str, offset: int = 0) -> dict[str, Any]:
        """A page: doc_id, title, text, offset, next_offset (None at the end), total_chars."""


class HttpSearchBackend:
    """Any server with the ``/search`` and ``/open`` routes of ``search_service``."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout_s: float = 10.0, retries: int = 2):
        self.url = url.rstrip("/")
        self.retries = retries
        # httpx.Client is thread-safe; tools run in the agent loop's worker threads.
        self._client = httpx.Client(headers=headers or {}, timeout=timeout_s)

    def _post(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(self.retries + 1):
            try:
                resp = self._client.post(self.url + route, json=body)
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise BackendError(f"search service unreachable: {type(exc).__name__}") from None
                time.sleep(0.2 * 2**attempt)
                continue
            if resp.status_code in (404, 416, 422):
                raise BackendError(_detail(resp))
            if resp.status_code >= 500 and attempt < self.retries:
                time.sleep(0.2 * 2**attempt)
                continue
            if resp.status_code != 200:
                raise BackendError(f"search service answered HTTP {resp.status_code}")
            return resp.json()
        raise BackendError("search service failed")  # unreachable; keeps type checkers calm

    def search(self, query: str, k: int) -> list[dict[str, Any]]:
        return list(self._post("/search", {"query": query, "k": k}).get("results", []))

    def open(self, doc_id: str, offset: int = 0) -> dict[str, Any]:
        return self._post("/open", {"doc_id": doc_id, "offset": offset})


def _detail(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail")
    except ValueError:
        detail = None
    if isinstance(detail, list):  # pydantic validation errors
        detail = "; ".join(str(d.get("msg", d)) for d in detail)
    return str(detail or f"HTTP {resp.status_code}")


class LocalServiceBackend:
    """The node-local service for one corpus, started on first use."""

    def __init__(self, corpus: dict[str, Any] | None = None):
        self.corpus_spec = normalize_spec(corpus)
        self._key = spec_key(self.corpus_spec)
        self._http: HttpSearchBackend | None = None
        self._lock = threading.Lock()

    def _backend(self, stale: HttpSearchBackend | None = None) -> HttpSearchBackend:
        with self._lock:
            if self._http is None or self._http is stale:
                self._http = HttpSearchBackend(ensure_local_service(self.corpus_spec, self._key))
            return self._http

    def _call(self, method: str, *args: Any) -> Any:
        http = self._backend()
        try:
            return getattr(http, method)(*args)
        except BackendError as exc:
            if "unreachable" not in str(exc):
                raise
            return getattr(self._backend(stale=http), method)(*args)  # the service died: start or find another

    def search(self, query: str, k: int) -> list[dict[str, Any]]:
        return self._call("search", query, k)

    def open(self, doc_id: str, offset: int = 0) -> dict[str, Any]:
        return self._call("open", doc_id, offset)


_OWNED: dict[str, SearchService] = {}
_OWNED_LOCK = threading.Lock()


def ensure_local_service(corpus_spec: dict[str, Any], key: str | None = None) -> str:
    """URL of a healthy service for this corpus on this node, starting one if needed."""
    key = key or spec_key(corpus_spec)
    with _OWNED_LOCK:
        mine = _OWNED.get(key)
        if mine is not None and mine.healthy():
            return mine.url
        state_dir = CACHE_DIR / "services"
        state_dir.mkdir(parents=True, exist_ok=True)
        with open(state_dir / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one starter per node at a time
            state_file = state_dir / f"{key}.json"
            try:
                url = json.loads(state_file.read_text())["url"]
            except (OSError, ValueError, KeyError, TypeError):
                url = None
            if url and answers_health(url):
                return url
            if mine is not None:
                mine.stop()
            service = SearchService(corpus_spec).start()
            _OWNED[key] = service
            tmp = state_file.with_suffix(".json.tmp")
            tmp.write_text(json.dumps({"url": service.url}))
            tmp.replace(state_file)
            return service.url


def stop_owned_services() -> None:
    with _OWNED_LOCK:
        for service in _OWNED.values():
            service.stop()
        _OWNED.clear()


atexit.register(stop_owned_services)

_BACKENDS: dict[str, SearchBackend] = {}
_BACKENDS_LOCK = threading.Lock()


def backend_from_spec(spec: dict[str, Any] | None) -> SearchBackend:
    """One backend object per distinct spec per process."""
    spec = dict(spec or {"backend": "local"})
    key = json.dumps(spec, sort_keys=True, default=str)
    with _BACKENDS_LOCK:
        if key not in _BACKENDS:
            kind = spec.pop("backend", "local")
            if kind == "local":
                _BACKENDS[key] = LocalServiceBackend(spec.get("corpus"))
            elif kind == "http":
                if not spec.get("url"):
                    raise BackendError("search backend 'http' needs a 'url'")
                _BACKENDS[key] = HttpSearchBackend(spec["url"], spec.get("headers"), float(spec.get("timeout_s", 10.0)))
            elif kind.startswith("python:"):
                module, _, attr = kind[len("python:") :].partition(":")
                _BACKENDS[key] = getattr(importlib.import_module(module), attr)(**spec)
            else:
                raise BackendError(f"unknown search backend {kind!r} (local | http | python:module:Class)")
        return _BACKENDS[key]
