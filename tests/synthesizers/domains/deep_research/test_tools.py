"""The agent tools against the real service, and the backend selection/lifecycle."""

from __future__ import annotations

import json

import httpx
import pytest

from schemas import Task
from synthesizers.domains.base import ToolContext, ToolError
from synthesizers.domains.deep_research import backends
from synthesizers.domains.deep_research.backends import BackendError, HttpSearchBackend, backend_from_spec
from synthesizers.domains.deep_research.tools import AnswerTool, FindTool, OpenTool, SearchTool, make_tools


def ctx() -> ToolContext:
    return ToolContext(task=Task(id="t", domain="deep-research"), state={})


def test_search_open_find_answer_over_the_real_service(service):
    backend = HttpSearchBackend(service.url)
    search, open_, find, answer = make_tools(backend)
    c = ctx()
    out = search.run({"query": "Stanley Kubrick film director", "k": 3}, c)
    first = out.splitlines()[0]
    assert first.endswith("Stanley Kubrick") and first.startswith("[d")
    doc_id = first[1 : first.index("]")]
    page = open_.run({"doc_id": doc_id}, c)
    assert "American filmmaker" in page and c.state["page"]["doc_id"] == doc_id
    hits = find.run({"pattern": "new hollywood"}, c)
    assert "1 match(es)" in hits and "New Hollywood" in hits
    assert "does not occur" in find.run({"pattern": "zebra"}, c)
    assert answer.run({"answer": "x", "citations": [doc_id]}, c) == "Answer recorded."


def test_best_last_lists_the_same_results_worst_first(service):
    backend = HttpSearchBackend(service.url)
    best_first = SearchTool(backend).run({"query": "Stanley Kubrick film director", "k": 3}, ctx())
    best_last = SearchTool(backend, best_last=True).run({"query": "Stanley Kubrick film director", "k": 3}, ctx())
    blocks = lambda text: [b for b in text.split("\n[") if b]  # noqa: E731
    assert len(blocks(best_first)) == 3
    assert [b.lstrip("[") for b in blocks(best_last)] == [b.lstrip("[") for b in reversed(blocks(best_first))]
    assert best_last.splitlines()[-2].endswith("Stanley Kubrick")  # the best match is the last one read


def test_tool_errors_are_model_readable(service):
    backend = HttpSearchBackend(service.url)
    c = ctx()
    with pytest.raises(ToolError, match="non-empty"):
        SearchTool(backend).run({"query": "  "}, c)
    with pytest.raises(ToolError, match="unexpected: q"):
        SearchTool(backend).run({"q": "x"}, c)
    with pytest.raises(ToolError, match="no document with id"):
        OpenTool(backend).run({"doc_id": "d99999999"}, c)
    with pytest.raises(ToolError, match="no page is open"):
        FindTool().run({"pattern": "x"}, ctx())
    with pytest.raises(ToolError, match="list of doc_id"):
        AnswerTool().run({"answer": "x", "citations": "d00001"}, c)
    assert "No results" in SearchTool(backend).run({"query": "zzqxqzz"}, c)


def test_unreachable_backend_is_a_tool_error_not_a_crash():
    dead = HttpSearchBackend("http://127.0.0.1:9", timeout_s=0.5, retries=1)
    with pytest.raises(ToolError, match="unreachable"):
        SearchTool(dead).run({"query": "x"}, ctx())


class RecordingBackend:
    """An 'external API' adapter loaded by python:module:Class."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def search(self, query, k):
        return [{"doc_id": "ext-1", "title": f"external {query}", "snippet": json.dumps(self.kwargs)}]

    def open(self, doc_id, offset=0):
        return {"doc_id": doc_id, "title": "t", "text": "hello", "offset": 0, "next_offset": None, "total_chars": 5}


def test_search_spec_selects_http_or_python_adapters(service):
    http = backend_from_spec({"backend": "http", "url": service.url})
    assert isinstance(http, HttpSearchBackend) and http.search("Kubrick", 1)[0]["title"] == "Stanley Kubrick"
    assert backend_from_spec({"backend": "http", "url": service.url}) is http  # one per spec per process
    ext = backend_from_spec({"backend": f"python:{__name__}:RecordingBackend", "api_key_env": "X"})
    assert "external who" in SearchTool(ext).run({"query": "who"}, ctx())
    with pytest.raises(BackendError, match="unknown search backend"):
        backend_from_spec({"backend": "gopher"})


def test_local_backend_starts_one_service_reuses_it_and_restarts_it(tiny_spec, tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "CACHE_DIR", tmp_path)
    try:
        one = backends.LocalServiceBackend(tiny_spec)
        assert one.search("Alpha Town founded", 2)
        url = one._http.url
        (first_service,) = backends._OWNED.values()
        # a second backend in this process (or another process on this node) finds the same service
        two = backends.LocalServiceBackend(tiny_spec)
        assert two.search("Blue River", 1) and two._http.url == url
        assert json.loads(next(tmp_path.glob("services/*.json")).read_text())["url"] == url
        # the service dies: the next call starts a fresh one instead of failing
        backends.stop_owned_services()
        assert one.search("Mara Quill surveyor", 1)[0]["title"] == "Mara Quill"
        (second_service,) = backends._OWNED.values()
        assert second_service is not first_service and second_service.healthy()
    finally:
        backends.stop_owned_services()
    with pytest.raises(httpx.HTTPError):
        httpx.get(one._http.url + "/health", timeout=1.0)
