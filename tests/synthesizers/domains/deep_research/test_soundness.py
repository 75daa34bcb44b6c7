"""Seed-time soundness of deep-research questions: the answer is in a cited document and the
hop chain is reachable by the search service. Sound questions pass; an absent answer, a
missing document, a hop the previous one never mentions and a hop that no search of its
title returns are each caught, and the domain marks them for the run to drop."""

from __future__ import annotations

import json

import pytest

from synthesizers.domains.deep_research.corpus import Corpus, Doc
from synthesizers.domains.deep_research.questions import LinkGraph, forward_candidates, reverse_candidates
from synthesizers.domains.deep_research.construction import row as question_row
from synthesizers.domains.deep_research.search_index import SearchIndex
from synthesizers.domains.deep_research.soundness import ChainChecker

DECOYS = 12  # more than a search returns (MAX_K = 10): the target drowns below them


@pytest.fixture(scope="module")
def checker() -> ChainChecker:
    docs = [
        Doc("alpha", "Alpha Town", "Alpha Town lies on the Blue River and was founded by Mara Quill. Hidden Place is near.",
            "small town"),
        Doc("mara", "Mara Quill", "Mara Quill was a surveyor who moved to Gamma City in 1851.", "surveyor"),
        Doc("gamma", "Gamma City", "Gamma City is the capital of Deltaland, built in 1702.", "capital city"),
        Doc("hidden", "Hidden Place", "A quiet spot by the sea, settled in 1777. " + "Waves and rocks. " * 40),
        *[Doc(f"decoy{i}", f"Decoy {i}", "Hidden Place. " * 6 + f"Decoy number {i}.", "") for i in range(DECOYS)],
    ]
    corpus = Corpus(docs, {"source": "test"})
    return ChainChecker(corpus, SearchIndex.build(corpus, cache_dir=None))


def _row(hops: list[str], answer: str, construction: str = "forward", aliases: list[str] | None = None) -> dict:
    return {"evidence_doc_ids": hops, "answer": answer, "aliases": aliases or [], "construction": construction,
            "hops": json.dumps([{"doc_id": h, "title": h} for h in hops])}


def test_sound_questions_pass(checker):
    assert checker.check(_row(["alpha", "mara"], "1851")) is None  # Alpha Town names Mara Quill; found by title
    assert checker.check(_row(["mara", "gamma"], "Deltaland")) is None
    assert checker.check(_row(["alpha", "gamma"], "Blue River", "reverse", ["Blue River"])) is None  # reverse: both named


def test_answer_absent_from_every_cited_document(checker):
    assert checker.check(_row(["alpha", "mara"], "1999")) == "answer occurs in none of its cited documents"
    assert checker.check(_row(["alpha", "mara"], "1999", aliases=["1851"])) is None  # an alias counts


def test_unreachable_hop(checker):
    """Alpha Town mentions Hidden Place, but twelve shorter documents say "Hidden Place" more
    often: no search for it returns the document, so an agent cannot reach the hop."""
    assert "hidden" not in {h.doc.doc_id for h in checker.index.search("Hidden Place", 10)}
    why = checker.check(_row(["alpha", "hidden"], "1777"))
    assert why is not None and why.startswith("hop 1 ('Hidden Place') is not in the top 10 search results")


def test_hop_not_mentioned_and_missing_documents(checker):
    assert checker.check(_row(["gamma", "mara"], "1851")) == "hop 1 ('Mara Quill') is not mentioned in hop 0"
    assert checker.check(_row(["alpha", "nowhere"], "1851")) == "cited document 'nowhere' is not in the corpus"
    assert checker.check({**_row(["alpha", "mara"], "1851"), "hops": "[]"}) == "has no hop chain"
    assert checker.check(_row([], "1851")) == "cites no document"


def test_questions_built_on_the_real_corpus_are_mostly_sound(full_corpus, full_index):
    """Candidates as construction makes them, over the shipped Wikipedia summaries: most are
    sound, and the few that are not fail on reachability (the rules above), not on the answer
    (construction already requires it in an evidence document)."""
    import random

    graph, checker = LinkGraph(full_corpus), ChainChecker(full_corpus, full_index)
    rng = random.Random(5)
    results = []
    for i in range(40):
        cand = reverse_candidates(graph, rng) if i % 4 == 0 else forward_candidates(graph, rng, 2 + i % 2)
        if cand is not None:
            results.append(checker.check(question_row(cand, cand.template, "template")))
    assert len(results) >= 30
    sound = results.count(None)
    assert sound >= 0.7 * len(results), results
    assert all("answer" not in why for why in results if why), results


def test_the_domain_marks_each_task():
    """The default question set (cached after its first construction): every task carries its
    verdict, and the checker's verdict is what the mark says."""
    from synthesizers.domains.deep_research.domain import DeepResearchDomain

    tasks = list(DeepResearchDomain().seed_tasks(limit=None, seed=0))
    assert len(tasks) == 64 and all(set(t.payload["qa"]) == {"unsound", "noop_passes"} for t in tasks)
    sound = [t for t in tasks if t.payload["qa"]["unsound"] is None]
    assert len(sound) >= 48, [t.payload["qa"]["unsound"] for t in tasks if t not in sound]
