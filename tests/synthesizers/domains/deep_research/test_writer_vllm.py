"""The LLM question writer with the real embedded model (session ``vllm_engine``):
forward construction on a few real hop chains; every question the model wrote
and construction accepted must hold the rejection rules, checked here
independently of ``check_question`` (answer not in the question, answer in the
target document, no intermediate title named, one BM25 search of the question
does not already find the answer document). The acceptance rate and the
rejection reasons are printed (run with -s)."""

from __future__ import annotations

import json
import time

import pytest

from synthesizers.domains.deep_research import construction
from verifiers.deep_research import normalize

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

CANDIDATES = 8
# Four prompts (~350 tokens each) at a time fit one vLLM CPU prefill step (2048 tokens by
# default): a seeded prompt prefilled in chunks crashes vLLM CPU ("CPU Generator does not
# use offset"), and this engine is the session's.
BATCH = 4


def _in(haystack: str, needle: str) -> bool:
    n = normalize(needle)
    return bool(n) and f" {n} " in f" {normalize(haystack)} "


async def test_llm_writer_questions_that_are_accepted_hold_every_rule(vllm_engine, full_corpus, full_index):
    writer = construction.engine_writer(vllm_engine, temperature=0.7, max_tokens=64)
    started = time.perf_counter()
    rows, stats = await construction.construct(
        full_corpus, full_index, count=CANDIDATES, seed=3, hops=[2], reverse_fraction=0.0,
        writer=writer, batch=BATCH, max_candidates=CANDIDATES,
    )
    wall = time.perf_counter() - started
    llm_rows = [r for r in rows if r["writer"] == "llm"]
    rejected = {k: v for k, v in stats.items() if k.startswith("llm_rejected")}
    print(f"\nLLM writer: {len(llm_rows)}/{stats['candidates']} accepted in {wall:.1f} s; rejected: {rejected}")
    for r in llm_rows:
        print("  accepted:", r["question"], "->", r["answer"])

    assert stats["candidates"] == CANDIDATES
    # The real model wrote a question (a line ending in "?") for most candidates, and each was judged.
    judged = stats.get("llm_accepted", 0) + sum(rejected.values())
    assert CANDIDATES // 2 <= judged <= CANDIDATES
    assert stats.get("llm_accepted", 0) == len(llm_rows)
    assert llm_rows, f"no question of the real model was accepted (rejected: {rejected}): the checks below would be vacuous"
    for r in llm_rows:
        question, hops = r["question"], json.loads(r["hops"])
        assert r["question"].endswith("?")
        for gold in [r["answer"], *r["aliases"]]:
            assert not _in(question, gold) and gold.lower() not in question.lower(), (question, gold)
        for doc_id in r["answer_doc_ids"]:
            assert _in(full_corpus.by_id[doc_id].text, r["answer"]), (doc_id, r["answer"])
        assert r["answer_doc_ids"] == [hops[-1]["doc_id"]]
        for hop in hops[1:]:
            assert not _in(question, hop["title"]), (question, hop["title"])
        top = [h.doc.doc_id for h in full_index.search(question, 5)]
        assert hops[-1]["doc_id"] not in top, (question, top)
