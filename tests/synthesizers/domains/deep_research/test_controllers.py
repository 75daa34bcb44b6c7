"""The small-model turn policy (``controllers.py``): each rule is checked on the grammar it
builds (xgrammar accepts or rejects the exact text a turn would be)."""

from __future__ import annotations

import json

import xgrammar as xgr
from xgrammar.testing import _is_grammar_accept_string

from schemas import Message, Task, ToolCall, ToolResult
from synthesizers.domains.base import ToolContext
from synthesizers.domains.deep_research.tools import OpenTool, SearchTool
from synthesizers.agent_loop import TurnInfo
from synthesizers.controller import PolicyController
from synthesizers.hermes import parse_tool_calls
from synthesizers.domains.deep_research.domain import DeepResearchDomain
from synthesizers.domains.deep_research.controllers import (
    ANSWER_MAX_CHARS,
    candidates_by_doc,
    openable,
    query_candidates,
    seen_doc_ids,
)

HTTP = {"search": {"backend": "http", "url": "http://127.0.0.1:1"}}
TASK = Task(id="t", domain="deep-research", payload={"question": "Who?"})
QUESTION = 'Which country in West Africa is mentioned in both the Wikipedia summary of "Kano (city)" and that of "Niger"?'
SEARCH_RESULT = [("d00007", "Niger", "Niger borders Nigeria and Chad."),
                 ("d04242", "Kano (city)", "Kano is a city in Nigeria, near Lagos.")]
PAGE = ("d04242", "Kano (city)", "Kano is the capital of Kano State in Nigeria. Lagos is far.")


ENGLAND = ("d02821", "England", "England became a unified state in 927 and the Kingdom of England in 1066.")


def assistant(name, args, i=0):
    return Message(role="assistant", content="", tool_calls=[ToolCall.make(f"c{i}", name, args)])


class _Backend:
    """Answers one search or one page, so the messages are the real tools' own (text and result)."""

    def __init__(self, hits=(), page=None):
        self.hits, self.page = hits, page

    def search(self, query, k):
        return [{"doc_id": d, "title": t, "snippet": snippet} for d, t, snippet in self.hits]

    def open(self, doc_id, offset):
        d, t, text = self.page
        return {"doc_id": d, "title": t, "offset": 0, "text": text, "total_chars": len(text), "next_offset": None}


def tool(name, found, i=0):
    """The tool message of a ``search`` listing ``found`` ([(doc_id, title, snippet)]) or an ``open``
    of ``found`` ((doc_id, title, text)), as the agent loop writes it."""
    ctx = ToolContext(task=TASK, state={})
    output = (SearchTool(_Backend(hits=found)).run({"query": "q"}, ctx) if name == "search"
              else OpenTool(_Backend(page=found)).run({"doc_id": found[0]}, ctx))
    return Message(role="tool", name=name, tool_call_id=f"c{i}", content=str(output),
                   result=ToolResult(fields=output.fields))


def start(question=QUESTION):
    return [Message(role="system", content="s"), Message(role="user", content=question)]


def searched(question=QUESTION, result=SEARCH_RESULT):
    return start(question) + [assistant("search", {"query": "Kano"}), tool("search", result)]


def opened():
    return searched() + [assistant("open", {"doc_id": "d04242"}, 1), tool("open", PAGE, 1)]


def policy():
    return DeepResearchDomain(HTTP).controller(TASK)


def forced_call(overrides):
    """(name, arguments) of a forced turn's one call, parsed as the agent loop parses it; None if sampled."""
    if overrides.get("forced_text") is None:
        return None
    content, calls, errors = parse_tool_calls(overrides["assistant_prefix"] + overrides["forced_text"])
    assert not errors and not content and len(calls) == 1
    return calls[0].function.name, calls[0].parsed_arguments()


def accepts(overrides, name, args):
    """The turn could make this call: a forced turn's one call is it, or the grammar accepts it."""
    if (forced := forced_call(overrides)) is not None:
        return forced == (name, args)
    grammar = xgr.Grammar.from_structural_tag(overrides["structured_outputs"]["structural_tag"])
    text = "\n" + json.dumps({"name": name, "arguments": args}) + "\n</tool_call>"
    return _is_grammar_accept_string(grammar, text)


def test_first_turn_is_one_search_call():
    first = policy()(start(), TurnInfo(0, 6, 1000))
    assert first["assistant_prefix"] == "<tool_call>"
    assert accepts(first, "search", {"query": "Kano Niger"})  # the first query is free
    assert not accepts(first, "answer", {"citations": ["d00001"], "answer": "Nigeria"})
    grammar = xgr.Grammar.from_structural_tag(first["structured_outputs"]["structural_tag"])
    assert not _is_grammar_accept_string(grammar, "It is Nigeria.")  # no prose instead of a call


def test_open_takes_only_the_latest_results_not_yet_opened():
    msgs = searched()
    assert seen_doc_ids(msgs) == ["d00007", "d04242"] and openable(msgs) == ["d00007", "d04242"]
    turn = policy()(msgs, TurnInfo(1, 5, 1000))
    assert accepts(turn, "open", {"doc_id": "d04242"})
    assert not accepts(turn, "open", {"doc_id": "d90042"})  # the worked example's id, never seen
    assert not accepts(turn, "search", {"query": "Niger"})  # no tool twice in a row
    assert openable(opened()) == ["d00007"]
    again = opened() + [assistant("search", {"query": "Niger"}, 2), tool("search", [("d04242", "Kano (city)", "Kano ...")], 2)]
    assert openable(again) == []  # the only result is open already
    assert not accepts(policy()(again, TurnInfo(3, 3, 1000)), "open", {"doc_id": "d04242"})


def test_a_later_search_never_repeats_a_query_and_names_the_quoted_documents_first():
    msgs = opened()
    assert query_candidates(msgs) == ["Kano (city)", "Niger"]  # the question's quoted titles, unsearched
    turn = policy()(msgs, TurnInfo(2, 4, 1000))
    assert accepts(turn, "search", {"query": "Niger"})
    assert not accepts(turn, "search", {"query": "Lagos"})  # not while a named document is unsearched
    assert not accepts(turn, "search", {"query": "anything at all"})
    both = msgs + [assistant("search", {"query": "niger"}, 2), tool("search", [("d00007", "Niger", "Niger ...")], 2),
                   assistant("search", {"query": "Kano (city)"}, 3), tool("search", [("d04242", "Kano (city)", "...")], 3)]
    queries = query_candidates(both)
    assert "Lagos" in queries and "West Africa" in queries  # read in a result / named by the question
    assert not {"Kano", "Niger", "niger", "Kano (city)"} & set(queries)  # run already (any case)
    assert not accepts(policy()(both, TurnInfo(5, 2, 1000)), "search", {"query": "Kano"})


def test_names_skip_words_that_only_open_sentences():
    from synthesizers.domains.deep_research.controllers import _spans

    text = "It lies in Europe. They say it is old. Like Saturn, Titan has air. Later, Rome grew. Poland and Rome trade."
    names = _spans(text, want_year=False)
    assert {"Europe", "Saturn", "Titan", "Rome", "Poland"} <= set(names)
    assert not {"It", "They", "Later"} & set(names)  # capitals only at a sentence start


def test_shared_question_cites_a_named_document_and_a_name_both_mention():
    question = 'Which sea is mentioned in both the Wikipedia summary of "Europe" and that of "Ukraine"?'
    europe = ("d1", "Europe", "Europe borders the Black Sea and the Baltic Sea near Russia.")
    council = ("d9", "Council of Europe", "The council sits in Strasbourg near the Black Sea.")
    one = searched(question, [council, europe])
    assert candidates_by_doc(one) == {"d1": ["Black Sea and the Baltic Sea", "Black Sea", "Baltic Sea", "Russia"]}  # the named one
    both = one + [assistant("search", {"query": "Ukraine"}, 1),
                  tool("search", [("d2", "Ukraine", "Ukraine lies on the Black Sea next to Russia.")], 1)]
    assert candidates_by_doc(both) == {"d1": ["Black Sea", "Russia"], "d2": ["Black Sea", "Russia"]}
    turn = policy()(both, TurnInfo(3, 1, 1000))
    assert accepts(turn, "answer", {"citations": ["d2"], "answer": "Black Sea"})
    assert not accepts(turn, "answer", {"citations": ["d9"], "answer": "Black Sea"})  # not a named document
    assert not accepts(turn, "answer", {"citations": ["d1"], "answer": "Baltic Sea"})  # Ukraine's never names it


def test_answer_cites_one_document_then_names_something_it_shares():
    msgs = opened()
    # "Lagos" is read in one document only, and the question asks what "both" mention.
    assert candidates_by_doc(msgs) == {"d00007": ["Nigeria"], "d04242": ["Nigeria"]}
    turn = policy()(msgs, TurnInfo(2, 4, 1000))
    assert accepts(turn, "answer", {"citations": ["d04242"], "answer": "Nigeria"})
    assert not accepts(turn, "answer", {"citations": ["d04242"], "answer": "Lagos"})
    assert not accepts(turn, "answer", {"citations": ["d04242"], "answer": "Niger"})  # named by the question
    assert not accepts(turn, "answer", {"citations": [], "answer": "Nigeria"})  # evidence required
    assert not accepts(turn, "answer", {"citations": ["d04242", "d00007"], "answer": "Nigeria"})  # one document
    assert not accepts(turn, "answer", {"citations": ["d99999"], "answer": "Nigeria"})  # never seen


def test_answer_kind_follows_the_question():
    question = 'The Wikipedia summary of "Magna Carta" mentions a country. What is the first year mentioned in the summary about that subject?'
    result = [ENGLAND]
    msgs = searched(question, result)
    assert candidates_by_doc(msgs) == {"d02821": ["1066"]}  # a year; 927 is not four digits
    turn = policy()(msgs, TurnInfo(1, 1, 1000))
    assert accepts(turn, "answer", {"citations": ["d02821"], "answer": "1066"})
    assert not accepts(turn, "answer", {"citations": ["d02821"], "answer": "Kingdom of England"})
    # A question about one summary keeps every name of the cited document, except its own title.
    names = candidates_by_doc(searched("Which kingdom is mentioned in the summary about that subject?", result))
    assert names == {"d02821": ["Kingdom of England"]}


def test_free_answer_before_anything_answer_like_is_read():
    msgs = searched(result=[("d00001", "Zzz", "nothing capitalised here.")])
    assert candidates_by_doc(msgs) == {}
    turn = policy()(msgs, TurnInfo(1, 1, 1000))
    assert accepts(turn, "answer", {"citations": ["d00001"], "answer": "a guess"})
    assert not accepts(turn, "answer", {"citations": ["d00001"], "answer": "x" * (ANSWER_MAX_CHARS + 1)})


def test_last_turn_or_little_room_allows_only_the_answer():
    for info in (TurnInfo(5, 1, 1000), TurnInfo(2, 4, 50)):
        last = policy()(opened(), info)
        assert accepts(last, "answer", {"citations": ["d00007"], "answer": "Nigeria"})
        assert not accepts(last, "search", {"query": "Niger"})


def test_forcing_off_means_no_policy():
    assert DeepResearchDomain({**HTTP, "forcing": False}).controller(TASK) is None
    assert DeepResearchDomain(HTTP).controller(TASK) is not None


def _schemas():
    return [t.schema for t in DeepResearchDomain(HTTP).tools(TASK)]


def test_an_answer_with_one_possible_citation_and_value_is_forced():
    """One document read, offering one answer of the asked kind, on the last turn: the grammar
    would leave one text, so the turn is that text (forced, recorded as inserted), the same call."""
    from synthesizers.domains.deep_research.controllers import _narrowed
    from synthesizers.guided_calls import _structural, _tags

    question = 'The Wikipedia summary of "Magna Carta" mentions a country. What is the first year mentioned in the summary about that subject?'
    msgs = searched(question, [ENGLAND])
    turn = policy()(msgs, TurnInfo(1, 1, 1000))
    assert turn["structured_outputs"] is None and turn["assistant_prefix"] == "<tool_call>"
    assert forced_call(turn) == ("answer", {"citations": ["d02821"], "answer": "1066"})
    answer = [s for s in _narrowed(_schemas(), msgs) if s["function"]["name"] == "answer"]
    grammar = xgr.Grammar.from_structural_tag(_structural({"type": "or", "elements": _tags(answer, "")})["structural_tag"])
    assert _is_grammar_accept_string(grammar, turn["forced_text"])  # what the grammar would have forced
    # with a choice left (two documents offer an answer) the turn stays sampled under the grammar
    assert policy()(opened(), TurnInfo(2, 1, 1000)).get("forced_text") is None


async def test_a_forced_answer_is_inserted_by_the_loop_and_never_sampled(embedded_tokenizer):
    from schemas.tokens import TokenSource
    from synthesizers.agent_loop import Budget, run_agent
    from synthesizers.domains.base import ToolContext
    from synthesizers.engines.base import SamplingParams
    from tests.fakes import TokenFakeEngine
    from tests.synthesizers.test_agent_loop import FakeTool

    question = 'The Wikipedia summary of "Magna Carta" mentions a country. What is the first year mentioned in the summary about that subject?'
    msgs = searched(question, [ENGLAND])
    engine = TokenFakeEngine(embedded_tokenizer, ["never asked"])
    tools = [FakeTool(s["function"]["name"], lambda a, c: "recorded") for s in _schemas()]
    result = await run_agent(engine, msgs, tools, ctx=ToolContext(task=TASK), params=SamplingParams(seed=1),
                             budget=Budget(max_turns=1), controller=PolicyController(policy()))
    assert engine.prompts == [] and result.error is None
    index = len(msgs)
    answer = result.messages[index]
    assert [(c.function.name, c.parsed_arguments()) for c in answer.tool_calls] == [
        ("answer", {"citations": ["d02821"], "answer": "1066"})]
    own = [s for s, m in zip(result.trace.sources, result.trace.message_index) if m == index and s != TokenSource.CONTEXT]
    assert own and set(own) == {TokenSource.INSERTED}
