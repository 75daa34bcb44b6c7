"""Fixtures for the deep-research tests: the full default corpus and its real BM25
index (built once, cached under .cache/), one real search service for the whole
session (stopped at the end), and a tiny folder corpus for cheap unit tests."""

from __future__ import annotations

import pytest

from synthesizers.domains.deep_research.corpus import load_corpus
from synthesizers.domains.deep_research.search_index import index_for
from synthesizers.domains.deep_research.search_service import SearchService

TINY_DOCS = {
    "Alpha_Town": "Alpha Town is a small town on the Blue River. It was founded in 1820 by Mara Quill.",
    "Blue_River": "The Blue River flows through Alpha Town and Gamma City. Its source is Mount Orin.",
    "Mara_Quill": "Mara Quill was a surveyor. She founded Alpha Town and later moved to Gamma City in 1851.",
    "Gamma_City": "Gamma City is the capital of Deltaland. " + "It has many bridges over the Blue River. " * 60,
}


@pytest.fixture(scope="session")
def full_corpus():
    return load_corpus(None)


@pytest.fixture(scope="session")
def full_index(full_corpus):
    return index_for(full_corpus)


@pytest.fixture(scope="session")
def service():
    with SearchService(None) as svc:
        yield svc


@pytest.fixture(scope="session")
def tiny_spec(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-corpus")
    for name, text in TINY_DOCS.items():
        (root / f"{name}.txt").write_text(text)
    return {"source": "folder", "path": str(root)}


@pytest.fixture(scope="session")
def tiny_service(tiny_spec):
    with SearchService(tiny_spec, page_chars=500) as svc:
        yield svc
