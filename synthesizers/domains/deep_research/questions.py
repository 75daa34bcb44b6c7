"""Multi-hop questions over the corpus: link graph, candidate chains, templates, rules.

Forward: a chain A -> B [-> C] where each document mentions the next one's
title; the question names only A, describes the later hops by their short
descriptions, and asks for a fact (a year, or a linked entity) found in the
last document. Reverse: from a pair of documents that both mention an entity,
the question whose evidence they are (both are kept as gold citations).

``check_question`` holds the rejection rules every question (LLM-written or
templated) must pass; ``construction`` drives the writers and the cache.
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from synthesizers.domains.deep_research.corpus import Corpus, Doc
from synthesizers.domains.deep_research.search_index import SearchIndex

_WORD = re.compile(r"[\w'’.-]+", re.UNICODE)
_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")
MAX_TITLE_WORDS = 6
MIN_QUESTION_CHARS, MAX_QUESTION_CHARS = 20, 400


@dataclass
class Candidate:
    """A question to be written: the documents, the answer, and a templated question."""

    construction: str  # forward | reverse
    answer_type: str  # year | entity
    docs: list[Doc]  # forward: the hop chain; reverse: the evidence set
    answer: str
    aliases: list[str]
    answer_doc_ids: list[str]  # evidence documents that contain the answer
    template: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class LinkGraph:
    """Which titles each document mentions (case-sensitive n-gram match on whole words)."""

    def __init__(self, corpus: Corpus):
        self.corpus = corpus
        self._titles = {d.title: d for d in corpus.docs if _linkable(d.title)}
        self._links: dict[str, list[Doc]] = {}

    def links(self, doc: Doc) -> list[Doc]:
        if doc.doc_id not in self._links:
            words = [w.strip(".") if i else w for i, w in enumerate(_WORD.findall(doc.text))]
            found: dict[str, Doc] = {}
            i = 0
            while i < len(words):
                # Longest title first, and no overlaps: "Papua New Guinea" is not a mention of "Guinea".
                for n in range(min(MAX_TITLE_WORDS, len(words) - i), 0, -1):
                    target = self._titles.get(" ".join(words[i : i + n]))
                    if target is not None:
                        break
                else:
                    n, target = 1, None
                # A one-word title at the start of the text is usually a common noun.
                if target is not None and target.doc_id != doc.doc_id and not (n == 1 and i == 0):
                    found.setdefault(target.doc_id, target)
                i += n
            self._links[doc.doc_id] = sorted(found.values(), key=lambda d: d.doc_id)
        return self._links[doc.doc_id]


def _linkable(title: str) -> bool:
    return bool(title) and title[0].isupper() and "(" not in title and not title.isdigit() and len(title) > 3


def _a(description: str) -> str:
    desc = _lower(description)
    return ("an " if desc[:1].lower() in "aeiou" else "a ") + desc


def first_year(doc: Doc, earlier: list[Doc]) -> str | None:
    """The first year ``doc``'s summary mentions, if no earlier hop (text or title) nor its
    own title mentions it: the year question asks for the *first* year, so a later year
    would be a wrong gold, and a year an earlier hop shows would need no last hop."""
    match = _YEAR.search(doc.text)
    if match is None:
        return None
    seen = " ".join(d.title + " " + d.text for d in earlier) + " " + doc.title
    return None if match.group(1) in seen else match.group(1)


def aliases_for(title: str) -> list[str]:
    base = re.sub(r"\s*\(.*?\)\s*", " ", title).strip()
    return [base] if base and base != title else []


def forward_candidates(graph: LinkGraph, rng: random.Random, hops: int, tries: int = 50) -> Candidate | None:
    """One random chain of ``hops`` documents with an answer in the last one."""
    docs = graph.corpus.docs
    for _ in range(tries):
        chain = [rng.choice(docs)]
        while len(chain) < hops:
            used = {d.description for d in chain}
            nxt = [d for d in graph.links(chain[-1]) if d.description and d not in chain and d.description not in used]
            if not nxt:
                break
            chain.append(rng.choice(nxt))
        if len(chain) < hops:
            continue
        head = f'The Wikipedia summary of "{chain[0].title}" mentions {_a(chain[1].description)}'
        if hops == 3:
            head += f", and that subject's summary mentions {_a(chain[2].description)}"
        year = first_year(chain[-1], chain[:-1])
        if year and rng.random() < 0.6:
            q = f"{head}. What is the first year mentioned in the summary about that {'last ' if hops == 3 else ''}subject?"
            return Candidate("forward", "year", chain, year, [], [chain[-1].doc_id], q)
        linked = graph.links(chain[-1])
        # The entity must be the only one of its description there, or the question is ambiguous.
        described = Counter(d.description for d in linked)
        targets = [d for d in linked if d.description and d not in chain and described[d.description] == 1]
        if targets:
            t = rng.choice(targets)
            q = f"{head}. Which {_lower(t.description)} is mentioned in the summary about that {'last ' if hops == 3 else ''}subject?"
            return Candidate("forward", "entity", chain, t.title, aliases_for(t.title), [chain[-1].doc_id], q, {"answer_doc": t.doc_id})
    return None


def reverse_candidates(graph: LinkGraph, rng: random.Random, tries: int = 200) -> Candidate | None:
    """Two documents that both mention one described entity; the entity is the answer."""
    docs = graph.corpus.docs
    for _ in range(tries):
        a = rng.choice(docs)
        described = Counter(e.description for e in graph.links(a))
        entities = [e for e in graph.links(a) if e.description and described[e.description] == 1]
        if not entities:
            continue
        entity = rng.choice(entities)
        partners = [d for d in graph.links(entity) if d != a and entity in graph.links(d)]
        if not partners:
            continue
        b = rng.choice(partners)
        q = (
            f'Which {_lower(entity.description)} is mentioned in both the Wikipedia summary of "{a.title}" '
            f'and that of "{b.title}"?'
        )
        return Candidate("reverse", "entity", [a, b], entity.title, aliases_for(entity.title), [a.doc_id, b.doc_id], q, {"answer_doc": entity.doc_id})
    return None


_PROPER_SUFFIXES = ("an", "ese", "ish", "ic", "i")


def _lower(text: str) -> str:
    """Lower-case a description's first letter unless its first word looks proper
    (an acronym or a nationality-like adjective: "Phoenician city-state")."""
    first = text.split(" ", 1)[0] if text else ""
    if not first or first[:2].isupper() or (first[0].isupper() and first.endswith(_PROPER_SUFFIXES)):
        return text
    return text[0].lower() + text[1:]


def normalize(text: str) -> str:
    """SQuAD-style: lowercase, drop punctuation and articles, squeeze spaces."""
    text = text.lower().replace("’", "'")
    text = "".join(ch if ch not in string.punctuation else " " for ch in text)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def contains(haystack: str, needle: str) -> bool:
    n = normalize(needle)
    return bool(n) and f" {n} " in f" {normalize(haystack)} "


def check_question(question: str, cand: Candidate, index: SearchIndex | None, leak_k: int = 5) -> str | None:
    """Why ``question`` must be rejected, or None when it passes every rule."""
    q = question.strip()
    if not (MIN_QUESTION_CHARS <= len(q) <= MAX_QUESTION_CHARS) or not q.endswith("?"):
        return "malformed: not a single question of sane length ending in '?'"
    for gold in [cand.answer, *cand.aliases]:
        if contains(q, gold):
            return f"contains its answer ({gold!r})"
    by_id = {d.doc_id: d for d in cand.docs}
    if not all(contains(by_id[i].text, cand.answer) or any(contains(by_id[i].text, a) for a in cand.aliases) for i in cand.answer_doc_ids):
        return "answer does not occur in its evidence document"
    if cand.construction == "forward":
        for hop in cand.docs[1:]:
            if contains(q, hop.title):
                return f"names an intermediate document ({hop.title!r}): the hop is not needed"
        if index is not None:
            top = [h.doc.doc_id for h in index.search(q, leak_k)]
            if cand.docs[-1].doc_id in top:
                return f"one search of the question finds the answer document (top {leak_k}): hops not needed"
    return None
