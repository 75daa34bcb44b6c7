"""The domain plug-in: deterministic seed tasks from the cached question set,
prompts, tools, and the final/critical-step rules."""

from __future__ import annotations

import json

import pytest

from schemas import Message, ToolCall
from synthesizers.domains.deep_research import construction
from synthesizers.domains.deep_research.domain import DeepResearchDomain
from synthesizers.domains.registry import get_domain


def assistant(*calls, content=""):
    return Message(role="assistant", content=content, tool_calls=[ToolCall.make(f"c{i}", n, a) for i, (n, a) in enumerate(calls)])


def test_registered_and_seed_tasks_are_deterministic(monkeypatch, tmp_path):
    monkeypatch.setattr(construction, "CACHE_DIR", tmp_path)
    domain = get_domain("deep-research")
    assert isinstance(domain, DeepResearchDomain) and not domain.needs_sandbox
    opts = {"questions": {"count": 10, "seed": 2}, "f1_threshold": 0.7}
    first = list(domain.seed_tasks(opts, limit=6, seed=1))
    assert domain.last_construction_stats["template_accepted"] == 10
    assert len(list(tmp_path.glob("questions-*.parquet"))) == 1
    again = list(DeepResearchDomain().seed_tasks(opts, limit=6, seed=1))
    assert [t.model_dump() for t in again] == [t.model_dump() for t in first]
    other = list(domain.seed_tasks(opts, limit=None, seed=2))
    assert len(other) == 10 and {t.id for t in first} <= {t.id for t in other}
    assert [t.id for t in other[:6]] != [t.id for t in first]  # the run seed changes the order
    p = first[0].payload
    assert p["f1_threshold"] == 0.7 and p["search"] == {"backend": "local", "corpus": {"source": "ovos"}}
    assert set(p) >= {"question", "answer", "aliases", "evidence_doc_ids", "answer_doc_ids", "hops"}
    assert len({t.id for t in other}) == 10


def test_bad_options_fail_fast():
    with pytest.raises(ValueError, match="unknown deep-research option"):
        list(DeepResearchDomain().seed_tasks({"corpuss": {}}, limit=1, seed=0))
    with pytest.raises(ValueError, match="hops must be among"):
        list(DeepResearchDomain().seed_tasks({"questions": {"hops": [5]}}, limit=1, seed=0))
    with pytest.raises(ValueError, match="writer must be"):
        list(DeepResearchDomain().seed_tasks({"questions": {"writer": "gpt", "count": 3, "seed": 99}}, limit=1, seed=0))


def test_final_and_critical_step_rules():
    d = DeepResearchDomain()
    assert d.is_final(assistant(("answer", {"answer": "x", "citations": []})))
    assert d.is_final(assistant(content="Final answer: Paris\nCitations: d00001"))
    assert not d.is_final(assistant(("search", {"query": "x"})))
    assert not d.is_final(Message(role="user", content="Final answer: x"))
    msgs = [
        Message(role="system", content="s"),
        Message(role="user", content="q"),
        assistant(content="thinking"),
        assistant(("open", {"doc_id": "d1"})),
        Message(role="tool", content="..."),
        assistant(("search", {"query": "x"})),
    ]
    assert d.first_critical_step(msgs) == 5
    assert d.first_critical_step(msgs[:5]) == 2  # never searched: cut at the first assistant turn
    assert d.first_critical_step(msgs[:2]) is None


def test_prompt_and_tools():
    d = DeepResearchDomain()
    from schemas import Task

    task = Task(id="t", domain="deep-research", payload={"question": "Who?", "search": {"backend": "http", "url": "http://127.0.0.1:1"}})
    msgs = d.initial_messages(task)
    assert [m.role for m in msgs] == ["system", "user"] and msgs[1].content == "Who?"
    assert [t.name for t in d.tools(task)] == ["search", "open", "find", "answer"]


def _grammar(overrides):
    import xgrammar as xgr

    return xgr.Grammar.from_structural_tag(overrides["structured_outputs"]["structural_tag"])


def _accepts(overrides, text):
    from xgrammar.testing import _is_grammar_accept_string

    return _is_grammar_accept_string(_grammar(overrides), text)


def test_forcing_policy_searches_first_answers_last_and_cites_only_seen_docs():
    from schemas import Task
    from synthesizers.agent_loop import TurnInfo
    from synthesizers.domains.deep_research.forcing import ANSWER_MAX_CHARS, answer_candidates, seen_doc_ids

    d = DeepResearchDomain()
    task = Task(id="t", domain="deep-research", payload={"question": "Who?", "search": {"backend": "http", "url": "http://127.0.0.1:1"}})
    policy = d.turn_policy(task)
    start = [Message(role="system", content="s"),
             Message(role="user", content='Which country is mentioned in both "Kano (city)" and "Niger"?')]
    call = lambda name, args: "\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"  # noqa: E731

    first = policy(start, TurnInfo(0, 6, 1000))
    assert first["assistant_prefix"] == "<tool_call>"
    assert _accepts(first, call("search", {"query": "Kano Niger"}))
    assert not _accepts(first, call("answer", {"answer": "Nigeria", "citations": ["d00001"]}))  # search first
    assert not _accepts(first, "It is Nigeria.")  # no prose instead of a call

    results = Message(role="tool", name="search", tool_call_id="c0",
                      content="[d04242] Kano (city)\n    Kano is a city in Nigeria\n[d00007] Niger\n    Niger is ...")
    searched = start + [assistant(("search", {"query": "Kano"})), results]
    assert seen_doc_ids(searched) == ["d04242", "d00007"]
    assert answer_candidates(searched) == ["Nigeria"]  # "Kano", "Niger" are the question's own names
    middle = policy(searched, TurnInfo(1, 5, 1000))
    assert _accepts(middle, call("open", {"doc_id": "d04242"}))
    assert not _accepts(middle, call("open", {"doc_id": "d90042"}))  # the worked example's id, never seen
    assert _accepts(middle, call("answer", {"answer": "Nigeria", "citations": ["d04242"]}))
    assert not _accepts(middle, call("answer", {"answer": "Nigeria", "citations": []}))  # evidence required
    assert not _accepts(middle, call("answer", {"answer": "x" * (ANSWER_MAX_CHARS + 1), "citations": ["d04242"]}))
    assert not _accepts(middle, call("answer", {"answer": "Paris", "citations": ["d04242"]}))  # never read
    assert not _accepts(middle, call("answer", {"answer": "Niger", "citations": ["d04242"]}))  # named by the question
    assert not _accepts(middle, call("search", {"query": "Kano"}))  # no tool twice in a row
    opened = searched + [assistant(("open", {"doc_id": "d04242"})),
                         Message(role="tool", name="open", tool_call_id="c1", content="[d04242] Kano (city)\nKano lies in Nigeria.")]
    assert _accepts(policy(opened, TurnInfo(2, 4, 1000)), call("search", {"query": "Niger"}))

    for info in (TurnInfo(5, 1, 1000), TurnInfo(2, 4, 50)):  # last turn, or little room: only an answer
        last = policy(searched, info)
        assert _accepts(last, call("answer", {"answer": "Nigeria", "citations": ["d00007", "d04242"]}))
        assert not _accepts(last, call("search", {"query": "more"}))

    off = Task(id="t", domain="deep-research", payload={"question": "Who?", "search": {"backend": "http", "url": "http://127.0.0.1:1"}, "forcing": False})
    assert d.turn_policy(off) is None
