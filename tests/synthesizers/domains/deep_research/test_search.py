"""The corpus, the real BM25 index over the full corpus, and the real HTTP service."""

from __future__ import annotations

import time

import httpx
import pytest

from synthesizers.domains.deep_research.corpus import CorpusError, load_corpus, normalize_spec
from synthesizers.domains.deep_research.search_index import SearchIndex


def test_default_corpus_is_the_ovos_wikipedia_summaries(full_corpus):
    assert len(full_corpus) == 10_033
    doc = full_corpus.by_title["Stanley Kubrick"]
    assert doc.doc_id.startswith("d") and "filmmaker" in doc.text
    # ids are stable: same title, same id on every load
    assert load_corpus({"source": "ovos"}).by_title["Stanley Kubrick"].doc_id == doc.doc_id


@pytest.mark.parametrize(
    "query, title",
    [
        ("1755 earthquake that destroyed Lisbon with a tsunami", "1755 Lisbon earthquake"),
        ("1968 science fiction film directed by Stanley Kubrick with HAL 9000", "2001: A Space Odyssey"),
        ("painting by Georges Seurat pointillist", "A Sunday Afternoon on the Island of La Grande Jatte"),
    ],
)
def test_known_question_finds_the_right_doc_in_top_k(full_index, query, title):
    hits = full_index.search(query, k=5)
    assert title in [h.doc.title for h in hits]
    assert hits[0].score >= hits[-1].score


def test_queries_without_known_words_return_nothing(full_index):
    assert full_index.search("the of and", 5) == []
    assert full_index.search("zzqxqzz", 5) == []


def test_index_is_cached_and_the_cache_gives_the_same_ranking(tmp_path, tiny_spec):
    corpus = load_corpus(tiny_spec)
    first = SearchIndex.build(corpus, cache_dir=tmp_path)
    second = SearchIndex.build(corpus, cache_dir=tmp_path)
    assert not first.cached and second.cached
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []  # no half-written index left
    q = "who founded Alpha Town"
    assert [h.doc.doc_id for h in first.search(q, 3)] == [h.doc.doc_id for h in second.search(q, 3)]
    assert first.search(q, 1)[0].doc.title in ("Alpha Town", "Mara Quill")


def test_bad_corpus_specs_say_what_to_fix(tmp_path):
    with pytest.raises(CorpusError, match="needs a 'path'"):
        normalize_spec({"source": "folder"})
    with pytest.raises(CorpusError, match="source must be"):
        normalize_spec({"source": "ftp"})
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus({"source": "folder", "path": str(tmp_path / "missing")})


def test_service_health_search_and_open(service, full_corpus):
    health = httpx.get(service.url + "/health").json()
    assert health == {"status": "ok", "docs": 10_033, "corpus": full_corpus.hash}
    results = httpx.post(service.url + "/search", json={"query": "Stanley Kubrick film director", "k": 3}).json()["results"]
    assert results[0]["title"] == "Stanley Kubrick" and set(results[0]) >= {"doc_id", "title", "snippet"}
    page = httpx.post(service.url + "/open", json={"doc_id": results[0]["doc_id"]}).json()
    assert page["text"] == full_corpus.by_id[results[0]["doc_id"]].text and page["next_offset"] is None


def test_service_pages_long_docs_and_rejects_bad_requests(tiny_service):
    url = tiny_service.url
    doc_id = httpx.post(url + "/search", json={"query": "Gamma City capital Deltaland", "k": 1}).json()["results"][0]["doc_id"]
    first = httpx.post(url + "/open", json={"doc_id": doc_id}).json()
    assert len(first["text"]) == 500 and first["next_offset"] == 500
    second = httpx.post(url + "/open", json={"doc_id": doc_id, "offset": 500}).json()
    assert second["offset"] == 500 and second["text"] and second["text"] != first["text"]
    assert httpx.post(url + "/open", json={"doc_id": "nope"}).status_code == 404
    assert httpx.post(url + "/open", json={"doc_id": doc_id, "offset": 10**6}).status_code == 416
    assert httpx.post(url + "/search", json={"query": "x", "k": 0}).status_code == 422


def test_service_stops_and_leaves_no_process(tiny_spec):
    from synthesizers.domains.deep_research.search_service import SearchService

    svc = SearchService(tiny_spec).start()
    pid, url = svc._proc.pid, svc.url
    assert svc.healthy()
    svc.stop()
    time.sleep(0.2)
    with pytest.raises(httpx.HTTPError):
        httpx.get(url + "/health", timeout=1.0)
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)
