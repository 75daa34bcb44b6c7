"""Question construction: link graph, rejection rules, the LLM writer with its
templated fallback, and the Parquet cache."""

from __future__ import annotations

import asyncio
import random
import re

import pytest

from synthesizers.domains.deep_research import construction
from synthesizers.domains.deep_research.corpus import Corpus, Doc
from synthesizers.domains.deep_research.questions import Candidate, LinkGraph, check_question, first_year, forward_candidates
from synthesizers.engines.base import Completion


def doc(doc_id, title, text, description=""):
    return Doc(doc_id, title, text, description)


KUBRICK = doc("k", "Stanley Kubrick", "Stanley Kubrick was an American filmmaker. He was born in 1928 in New York City.", "American filmmaker")
FILM = doc("f", "2001: A Space Odyssey", "A 1968 film directed by Stanley Kubrick.", "1968 film")


def cand(**kw):
    base = dict(construction="forward", answer_type="year", docs=[FILM, KUBRICK], answer="1928", aliases=[], answer_doc_ids=["k"])
    return Candidate(**{**base, **kw})


def test_rules_reject_bad_questions_and_accept_a_good_one(full_index):
    c = cand()
    good = 'The film "2001: A Space Odyssey" was directed by someone; in what year was that person born?'
    assert check_question(good, c, full_index) is None
    assert "contains its answer" in check_question("Was the director of 2001: A Space Odyssey born in 1928?", c, full_index)
    assert "names an intermediate" in check_question("In what year was Stanley Kubrick, director of the film, born?", c, full_index)
    assert "malformed" in check_question("Tell me the year.", c, full_index)
    missing = cand(answer="1930")
    assert "does not occur" in check_question(good, missing, full_index)


def test_rule_rejects_a_question_one_search_already_answers(full_corpus, full_index):
    lisbon = full_corpus.by_title["1755 Lisbon earthquake"]
    c = Candidate("forward", "entity", [full_corpus.by_title["Portugal"], lisbon], "Cape St. Vincent", [], [lisbon.doc_id])
    leaky = "Which cape lies 200 km from the epicenter of the earthquake that destroyed Lisbon with a tsunami?"
    assert "one search" in check_question(leaky, c, full_index)
    assert check_question(leaky, c, None) is None  # the same question passes when only the other rules apply


def test_links_take_the_longest_title_and_skip_self_links():
    png = doc("p", "Papua New Guinea", "x", "country in Oceania")
    guinea = doc("g", "Guinea", "y", "country in West Africa")
    cass = doc("c", "Cassowary", "The cassowary lives in Papua New Guinea and nearby islands. Cassowary birds.", "bird")
    graph = LinkGraph(Corpus(docs=[png, guinea, cass], spec={"source": "test"}))
    assert [d.title for d in graph.links(cass)] == ["Papua New Guinea"]


def test_forward_chains_link_documents_and_answers_lie_in_the_last(full_corpus):
    graph = LinkGraph(full_corpus)
    rng = random.Random(3)
    for hops in (2, 3, 3):
        c = forward_candidates(graph, rng, hops)
        assert c is not None and len(c.docs) == hops
        for a, b in zip(c.docs, c.docs[1:]):
            assert b in graph.links(a)
        assert c.answer_doc_ids == [c.docs[-1].doc_id]
        assert c.answer.lower() in c.docs[-1].text.lower()


def test_year_answer_is_the_first_year_of_the_last_summary_and_new():
    assert first_year(KUBRICK, [FILM]) == "1928"
    # The summary's first year is one the earlier hop already shows: no year question
    # (the first *new* year, 1999, would be a wrong gold for "the first year mentioned").
    remake = doc("r", "Remake", "Announced in 1968, released in 1999.")
    assert first_year(remake, [FILM]) is None
    assert first_year(doc("n", "None", "No years here."), [FILM]) is None


def test_year_questions_ask_for_the_first_year_of_their_answer_document(full_corpus):
    graph, rng, years = LinkGraph(full_corpus), random.Random(5), 0
    for _ in range(60):
        c = forward_candidates(graph, rng, 2)
        if c is not None and c.answer_type == "year":
            years += 1
            assert re.search(r"\b(?:1[0-9]{3}|20[0-9]{2})\b", c.docs[-1].text).group() == c.answer
    assert years >= 5


class ScriptedWriter:
    """An LLMEngine whose question is good, leaks the answer, or is nonsense, by turn."""

    model_id = "scripted-writer"

    def __init__(self, mode):
        self.mode, self.calls = mode, 0

    async def chat(self, messages, *, tools=None, params=None):
        self.calls += 1
        prompt = messages[-1].content
        answer = prompt.split('whose answer is "', 1)[1].split('"', 1)[0]
        example = prompt.rsplit("Example of the style: ", 1)[1]
        text = {
            "good": "Question: " + example.replace("The Wikipedia summary of", "The encyclopedia summary of"),
            "leak": f"Is the answer {answer}?",
            "nonsense": "banana banana banana",
        }[self.mode]
        return Completion(text=text, finish_reason="stop")

    async def close(self):
        return None


@pytest.mark.parametrize("mode, llm_share", [("good", "most"), ("leak", "none"), ("nonsense", "none")])
def test_llm_writer_is_checked_and_falls_back_to_templates(full_corpus, full_index, mode, llm_share):
    engine = ScriptedWriter(mode)
    rows, stats = asyncio.run(
        construction.construct(full_corpus, full_index, count=8, seed=5, writer=construction.engine_writer(engine))
    )
    assert len(rows) == 8 and engine.calls >= 8
    llm = [r for r in rows if r["writer"] == "llm"]
    if llm_share == "none":
        assert not llm and stats["template_accepted"] == 8
        if mode == "leak":
            assert stats["llm_rejected: contains its answer"] >= 8
    else:
        assert len(llm) >= 6 and all(r["question"].startswith("The encyclopedia summary of") or r["construction"] == "reverse" for r in llm)
    for r in rows:
        assert r["answer"].lower() not in r["question"].lower()


def test_construction_is_deterministic_and_cached_atomically(full_corpus, full_index, tmp_path):
    a, _ = asyncio.run(construction.construct(full_corpus, full_index, count=6, seed=11))
    b, stats = asyncio.run(construction.construct(full_corpus, full_index, count=6, seed=11))
    assert a == b and stats["template_accepted"] == 6
    path = construction.cache_path(full_corpus, {"count": 6, "seed": 11}, cache_dir=tmp_path)
    construction.write_rows(path, a, stats)
    rows, read_stats = construction.read_rows(path)
    assert rows == a and read_stats == stats
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    assert construction.cache_path(full_corpus, {"count": 7, "seed": 11}, cache_dir=tmp_path) != path


def test_clean_question_strips_labels_and_keeps_one_question():
    assert construction.clean_question('Question: "Who wrote it?" Then more.\nNext?') == "Who wrote it?"
    assert construction.clean_question("no question here") is None
