"""Is a deep-research question answerable through the tools a rollout has? Checked at seed time.

A question is sound when (1) every document it cites is in the corpus, (2) its answer
(or an alias) occurs in at least one cited document, and (3) its hop chain is
reachable by the search service: each hop document is among the results of one
``search`` call (at most ``MAX_K`` results, what the tool allows) for what the agent
can know of it at that point — its title (the question names the first hop, each later
hop is mentioned by title in the document before it, found the way the question's link
graph found it), alone or with the hop's description (the question describes later hops).
Reverse questions name both evidence documents, so each must be found by its title.

The search runs in process on the same BM25 index the local search service serves
(``search_index.index_for``), so "found here" is "found by the service". Unsound
questions are marked on their task (``payload["qa"]["unsound"]``); the run drops and
counts them (``pipelines.seed_qa``).
"""

from __future__ import annotations

import json
from typing import Any

from synthesizers.domains.deep_research.corpus import Corpus
from synthesizers.domains.deep_research.questions import LinkGraph, contains
from synthesizers.domains.deep_research.search_index import SearchIndex
from synthesizers.domains.deep_research.tools import MAX_K


class ChainChecker:
    """One corpus and its index; the link graph is built lazily, per document, once."""

    def __init__(self, corpus: Corpus, index: SearchIndex, k: int = MAX_K):
        self.corpus, self.index, self.k = corpus, index, k
        self.graph = LinkGraph(corpus)

    def found(self, doc_id: str, queries: list[str]) -> bool:
        return any(doc_id in {h.doc.doc_id for h in self.index.search(q, self.k)} for q in queries if q.strip())

    def check(self, row: dict[str, Any]) -> str | None:
        """Why the question of ``row`` (a question-set row or task payload) is unsound, or None."""
        cited = list(row.get("evidence_doc_ids") or [])
        if not cited:
            return "cites no document"
        missing = [d for d in cited if d not in self.corpus.by_id]
        if missing:
            return f"cited document {missing[0]!r} is not in the corpus"
        golds = [g for g in [row.get("answer"), *(row.get("aliases") or [])] if g]
        if not golds:
            return "has no answer"
        if not any(contains(self.corpus.by_id[d].text, g) for d in cited for g in golds):
            return "answer occurs in none of its cited documents"
        hops = row.get("hops")
        hops = json.loads(hops) if isinstance(hops, str) else list(hops or [])
        if not hops:
            return "has no hop chain"
        docs = []
        for hop in hops:
            doc = self.corpus.by_id.get(hop["doc_id"])
            if doc is None:
                return f"hop document {hop['doc_id']!r} is not in the corpus"
            docs.append(doc)
        forward = row.get("construction") == "forward"
        for i, doc in enumerate(docs):
            if forward and i > 0 and doc not in self.graph.links(docs[i - 1]):
                return f"hop {i} ({doc.title!r}) is not mentioned in hop {i - 1}"
            queries = [doc.title] + ([f"{doc.title} {doc.description}"] if forward and i > 0 and doc.description else [])
            if not self.found(doc.doc_id, queries):
                return f"hop {i} ({doc.title!r}) is not in the top {self.k} search results for its title"
        return None
