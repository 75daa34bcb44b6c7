"""The domain plug-in: deterministic seed tasks from the cached question set,
prompts, tools, and the final/critical-step rules."""

from __future__ import annotations

import json

import pytest

from schemas import Message, ToolCall
from synthesizers.domains.base import DomainOptionsError
from synthesizers.domains.deep_research import construction
from synthesizers.domains.deep_research.domain import DeepResearchDomain
from synthesizers.domains.registry import get_domain


def assistant(*calls, content=""):
    return Message(role="assistant", content=content, tool_calls=[ToolCall.make(f"c{i}", n, a) for i, (n, a) in enumerate(calls)])


def test_registered_and_seed_tasks_are_deterministic(monkeypatch, tmp_path):
    monkeypatch.setattr(construction, "CACHE_DIR", tmp_path)
    opts = {"questions": {"count": 10, "seed": 2}, "f1_threshold": 0.7}
    domain = get_domain("deep-research", opts)
    assert isinstance(domain, DeepResearchDomain) and not domain.needs_sandbox
    first = list(domain.seed_tasks(limit=6, seed=1))
    assert domain.last_construction_stats["template_accepted"] == 10
    assert len(list(tmp_path.glob("questions-*.parquet"))) == 1
    again = list(DeepResearchDomain(opts).seed_tasks(limit=6, seed=1))
    assert [t.model_dump() for t in again] == [t.model_dump() for t in first]
    other = list(DeepResearchDomain(opts).seed_tasks(limit=None, seed=2))
    assert len(other) == 10 and {t.id for t in first} <= {t.id for t in other}
    assert [t.id for t in other[:6]] != [t.id for t in first]  # the run seed changes the order
    p = first[0].payload
    # How a task is judged and rolled out are the domain's options, never task data.
    assert not set(p) & {"f1_threshold", "require_retrieved", "threshold", "search", "forcing", "results_order"}
    assert domain.options.search_spec == {"backend": "local", "corpus": {"source": "ovos"}}
    assert set(p) >= {"question", "answer", "aliases", "evidence_doc_ids", "answer_doc_ids", "hops"}
    assert len({t.id for t in other}) == 10


def test_judging_options_reach_the_verifier_not_the_payload(monkeypatch, tmp_path):
    monkeypatch.setattr(construction, "CACHE_DIR", tmp_path)
    questions = {"count": 6, "seed": 2}
    strict = DeepResearchDomain({"questions": questions})
    loose = DeepResearchDomain({"questions": questions, "f1_threshold": 0.5, "require_retrieved": False})
    assert strict.verifier_options() == {"threshold": 0.8, "require_retrieved": True}
    assert loose.verifier_options() == {"threshold": 0.5, "require_retrieved": False}
    tasks = [t.model_dump() for t in strict.seed_tasks(limit=None, seed=1)]
    assert len(tasks) == 6 and tasks == [t.model_dump() for t in loose.seed_tasks(limit=None, seed=1)]


def test_bad_options_fail_fast():
    with pytest.raises(DomainOptionsError, match="deep-research option 'corpuss' is unknown"):
        DeepResearchDomain({"corpuss": {}})
    with pytest.raises(DomainOptionsError, match="'questions.hops.0': Input should be 2 or 3"):
        DeepResearchDomain({"questions": {"hops": [5]}})
    with pytest.raises(DomainOptionsError, match="'f1_threshold': Input should be less than or equal to 1"):
        DeepResearchDomain({"f1_threshold": 80})
    with pytest.raises(DomainOptionsError, match="'questions.writer': Input should be 'template'"):
        DeepResearchDomain({"questions": {"writer": "gpt", "count": 3, "seed": 99}})


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

    d = DeepResearchDomain({"search": {"backend": "http", "url": "http://127.0.0.1:1"}})
    task = Task(id="t", domain="deep-research", payload={"question": "Who?"})
    msgs = d.initial_messages(task)
    assert [m.role for m in msgs] == ["system", "user"] and msgs[1].content == "Who?"
    assert [t.name for t in d.tools(task)] == ["search", "open", "find", "answer"]
    assert "best match first" in d.tools(task)[0].schema["function"]["description"]
    last = DeepResearchDomain({"search": {"backend": "http", "url": "http://127.0.0.1:1"}, "results_order": "best_last"})
    assert last.tools(task)[0].best_last and "best match last" in last.tools(task)[0].schema["function"]["description"]


def test_results_order_option_is_checked():
    with pytest.raises(DomainOptionsError, match="'results_order': Input should be 'best_first' or 'best_last'"):
        DeepResearchDomain({"results_order": "random"})
