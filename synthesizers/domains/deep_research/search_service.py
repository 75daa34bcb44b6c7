"""The local search service: FastAPI over a BM25 index, served by uvicorn on 127.0.0.1.

Routes (the same JSON schema an external search API must speak to replace it):
  GET  /health                       -> {"status": "ok", "docs": N, "corpus": hash}
  POST /search {"query", "k"}        -> {"results": [{"doc_id", "title", "snippet", "score"}]}
  POST /open   {"doc_id", "offset"}  -> {"doc_id", "title", "text", "offset", "next_offset", "total_chars"}

``SearchService`` runs it in a child process (BM25 scoring is CPU-bound: a
thread would compete for the GIL with the engine's event loop). The parent
binds the socket itself on a free port and hands the file descriptor over, so
there is no window in which another process can take the port. The child
exits when its parent dies (it polls ``getppid``), so a SIGKILLed Ray actor
never leaves a server behind.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
from pydantic import BaseModel, Field

PAGE_CHARS = 1500


class SearchRequest(BaseModel):
    query: str = Field(max_length=2000)
    k: int = Field(default=5, ge=1, le=50)


class OpenRequest(BaseModel):
    doc_id: str = Field(max_length=200)
    offset: int = Field(default=0, ge=0)


def create_app(corpus_spec: dict[str, Any] | None = None, page_chars: int = PAGE_CHARS):
    from fastapi import FastAPI, HTTPException

    from synthesizers.domains.deep_research.corpus import load_corpus
    from synthesizers.domains.deep_research.search_index import index_for

    corpus = load_corpus(corpus_spec)
    index = index_for(corpus)
    app = FastAPI(title="trajforge deep-research search")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "docs": len(corpus), "corpus": corpus.hash}

    # Plain ``def`` routes run in uvicorn's thread pool, so one slow search
    # never stalls the event loop that accepts the other clients.
    @app.post("/search")
    def search(req: SearchRequest) -> dict[str, Any]:
        hits = index.search(req.query, req.k)
        return {
            "results": [
                {"doc_id": h.doc.doc_id, "title": h.doc.title, "snippet": h.snippet, "score": round(h.score, 4)}
                for h in hits
            ]
        }

    @app.post("/open")
    def open_doc(req: OpenRequest) -> dict[str, Any]:
        doc = corpus.by_id.get(req.doc_id)
        if doc is None:
            raise HTTPException(status_code=404, detail=f"no document with id {req.doc_id!r}")
        text = doc.text
        if req.offset >= len(text) and text:
            raise HTTPException(status_code=416, detail=f"offset {req.offset} is past the end ({len(text)} chars)")
        end = min(len(text), req.offset + page_chars)
        return {
            "doc_id": doc.doc_id,
            "title": doc.title,
            "text": text[req.offset : end],
            "offset": req.offset,
            "next_offset": end if end < len(text) else None,
            "total_chars": len(text),
        }

    return app


class ServiceStartError(RuntimeError):
    pass


def answers_health(url: str, timeout_s: float = 2.0) -> bool:
    """True when ``url``/health answers 200; any transport or HTTP failure is False."""
    try:
        return httpx.get(url + "/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


class SearchService:
    """Context manager: start the service in a child process, health-check it, stop it.

    ``with SearchService(spec) as svc: httpx.get(svc.url + "/health")``
    """

    def __init__(self, corpus_spec: dict[str, Any] | None = None, *, page_chars: int = PAGE_CHARS, start_timeout_s: float = 120.0):
        self.corpus_spec = corpus_spec
        self.page_chars = page_chars
        self.start_timeout_s = start_timeout_s
        self.port: int | None = None
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        if self.port is None:
            raise ServiceStartError("search service is not running")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "SearchService":
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return self
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            sock.listen(512)
            self.port = sock.getsockname()[1]
            args = json.dumps({"corpus": self.corpus_spec, "page_chars": self.page_chars, "parent": os.getpid()})
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", __name__, "--fd", str(sock.fileno()), "--args", args],
                    pass_fds=(sock.fileno(),),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                    start_new_session=True,  # a Ctrl-C meant for the parent does not race our stop()
                )
            finally:
                sock.close()  # the child holds its own copy of the listening socket
            self._wait_healthy()
            return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = (self._proc.stderr.read() or "").strip().splitlines()
                raise ServiceStartError(f"search service exited with {self._proc.returncode}: {err[-1] if err else 'no output'}")
            if answers_health(self.url):
                return
            time.sleep(0.1)
        self.stop()
        raise ServiceStartError(f"search service did not answer /health within {self.start_timeout_s:g} s")

    def healthy(self) -> bool:
        if self._proc is None or self._proc.poll() is not None:
            return False
        return answers_health(self.url)

    def stop(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def __enter__(self) -> "SearchService":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(0)  # orphaned: the process that owns us is gone
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> None:
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="trajforge deep-research search service (child process)")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--args", required=True)
    ns = parser.parse_args(argv)
    opts = json.loads(ns.args)
    threading.Thread(target=_watch_parent, args=(int(opts["parent"]),), daemon=True).start()
    app = create_app(opts.get("corpus"), page_chars=int(opts.get("page_chars") or PAGE_CHARS))
    uvicorn.run(app, fd=ns.fd, log_level="warning", access_log=False, timeout_graceful_shutdown=3)


if __name__ == "__main__":
    main()
