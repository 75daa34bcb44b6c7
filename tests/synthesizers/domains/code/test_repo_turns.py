"""Localized guided turns (``repo_turns`` on ``localize``): the rollout runs the task's own
reproduce command, opens a traceback frame of the library, edits a line it was shown, runs the test
again, and submits once it passes. Driven through the real agent loop with a scripted engine and
scripted tools; the grammars are checked with xgrammar."""

from __future__ import annotations

import json
from typing import Any

import xgrammar as xgr
from xgrammar.testing import _is_grammar_accept_string as accepts

from schemas import Message, Task
from synthesizers.agent_loop import Budget, TurnInfo, run_agent
from synthesizers.controller import PolicyController
from synthesizers.domains.base import ToolContext, ToolOutput
from synthesizers.domains.code.domain import CodeDomain, reproduce_command, trace_command
from synthesizers.domains.code.localize import TRACED_COUNT, TRACED_SPAN, frame_windows
from synthesizers.domains.code.tools import code_tools
from synthesizers.engines.base import SamplingParams
from tests.fakes import FakeEngine
from tests.synthesizers.domains.code.helpers import ScriptedTool, answered, observation, ran
from tests.synthesizers.domains.code.test_controllers import allowed_tools, call, forced_call, msg_call, recording
from tests.synthesizers.domains.code.test_localize import (FAILING, GUIDED, PROJECT, REPRODUCE, TASK, VIEW,
                                                          VIEW_SHOWN, shown_view)


CHECK = reproduce_command(PROJECT, ["tests.test_m::test_b"], traceback="line")
LEVEL = "            level = depth - 1"  # a line with repairs that are not the fix
VIEW_TRY = shown_view([LEVEL if i == 7 else line.replace("if decompress", "if not decompress")
                       for i, line in enumerate(VIEW_SHOWN)])


def tools(state: dict[str, bool]) -> list[ScriptedTool]:
    """The test fails until an edit removes `not` from `if not decompress:`."""
    def bash(args):
        if state.get("fixed"):
            return ran("exit code: 0\n1 passed", 0)
        return ran(FAILING if args["command"] == REPRODUCE else "exit code: 1\n/work/repo/src/pkg/url_safe.py:48: BadPayload", 1)

    def edit(args):
        state["fixed"] = args["new_str"] == "        if decompress:"
        return ToolOutput(f"Edited {args['path']}. The lines around the change now read:\n   42  {args['new_str']}",
                          {"path": args["path"], "line": 42})

    results = {"bash": bash, "view": lambda args: VIEW_TRY, "edit": edit,
               "submit": lambda args: "Submitted. Your patch against the starting checkout:\n<patch>\n</patch>"}
    return [ScriptedTool(t, results[t.name]) for t in code_tools()]


def grammar(params: SamplingParams) -> Any:
    return xgr.Grammar.from_structural_tag(params.structured_outputs["structural_tag"])


def body(name: str, **arguments: Any) -> str:  # the prefix already wrote "<tool_call>"
    return f"\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


async def test_localized_rollout_tries_a_repair_checks_undoes_tries_another_then_submits():
    window = frame_windows(FAILING)[-1].arguments()
    broken, fixed, path = "        if not decompress:", "        if decompress:", window["path"]
    # Only the turns with a choice reach the engine: the reproduce run, the checks, the undo and
    # the submit have one possible call each, and the framework writes them (forced_text).
    engine = FakeEngine([call("view", **window),
                         call("edit", path=path, old_str=LEVEL, new_str="            level = depth + 1"),
                         call("edit", path=path, old_str=broken, new_str=fixed), "Done."])
    domain = CodeDomain(GUIDED)
    fields: list[dict[str, Any]] = []
    result = await run_agent(engine, domain.initial_messages(TASK), tools({}), ctx=ToolContext(task=TASK),
                             params=SamplingParams(max_tokens=300, seed=1), budget=Budget(max_turns=12),
                             is_final=domain.is_final, controller=PolicyController(recording(domain.controller(TASK), fields)))
    sent = [SamplingParams(**f) for f in fields]
    assert [allowed_tools(p) for p in sent] == [{"bash"}, {"view"}, {"view", "edit"}, {"bash"}, {"edit"},
                                                {"view", "edit"}, {"bash"}, {"submit"}, None]
    assert result.stop_reason == "final_answer"
    assert [p.forced_text is not None for p in sent] == [True, False, False, True, True, False, True, True, False]
    assert len(engine.seen) == 4
    assert forced_call(sent[0]) == ("bash", {"command": REPRODUCE})  # only the task's own reproduce command
    assert forced_call(sent[3]) == ("bash", {"command": CHECK})  # after an edit: the terse check, nothing else
    # the check failed: exactly the edit reversed
    assert forced_call(sent[4]) == ("edit", {"path": path, "old_str": "            level = depth + 1", "new_str": LEVEL})
    assert forced_call(sent[6]) == ("bash", {"command": CHECK}) and forced_call(sent[7]) == ("submit", {})
    made = [(c.function.name, c.parsed_arguments()) for m in result.messages if m.role == "assistant" for c in m.tool_calls]
    assert [made[i] for i in (0, 3, 4, 6, 7)] == [forced_call(sent[i]) for i in (0, 3, 4, 6, 7)]  # as forced
    view = grammar(sent[1])  # only windows around the traceback's library frames
    assert accepts(view, body("view", **window))
    assert accepts(view, body("view", path="src/pkg/serializer.py", start_line=329, end_line=345))
    assert not accepts(view, body("view", path="src/pkg/url_safe.py", start_line=1, end_line=52))
    assert not accepts(view, body("view", path="tests/test_pkg/test_serializer.py", start_line=56, end_line=70))
    edit = grammar(sent[2])  # a shown line into one of its single-token repairs
    assert accepts(edit, body("edit", path=path, old_str=broken, new_str=fixed))
    assert accepts(edit, body("edit", path=path, old_str=LEVEL, new_str="            level = depth + 1"))
    assert accepts(edit, body("edit", path=path, old_str=LEVEL, new_str="            level = depth - 0"))
    assert not accepts(edit, body("edit", path=path, old_str=broken, new_str="            level = depth + 1"))
    assert not accepts(edit, body("edit", path=path, old_str=broken, new_str="        if decompress or x:"))
    assert not accepts(edit, body("edit", path=path, old_str="if not", new_str="if"))  # not a whole line
    assert not accepts(edit, body("edit", path="src/pkg/serializer.py", old_str=broken, new_str=fixed))
    assert not accepts(edit, body("view", **window))  # that window was seen already
    again = grammar(sent[5])  # the tried repair is not offered again; the others are
    assert not accepts(again, body("edit", path=path, old_str=LEVEL, new_str="            level = depth + 1"))
    assert accepts(again, body("edit", path=path, old_str=LEVEL, new_str="            level = depth * 1"))
    assert accepts(again, body("edit", path=path, old_str=broken, new_str=fixed))


def test_a_no_op_edit_neither_retests_nor_unlocks_submit_and_nothing_traced_means_free_exploration():
    policy = CodeDomain(GUIDED).controller(TASK)
    info = TurnInfo(turn=3, turns_left=6, tokens_left=3000)
    start = CodeDomain().initial_messages(TASK)
    window = frame_windows(FAILING)[-1].arguments()
    reproduced = [msg_call("bash", "c1", command=REPRODUCE), answered("c1", ran(FAILING, 1)),
           msg_call("view", "c2", **window), answered("c2", VIEW)]
    same = "        if decompress:"
    noop = [msg_call("edit", "c3", path=window["path"], old_str=same, new_str=same),
            observation("c3", "Edited src/pkg/url_safe.py.")]
    assert allowed_tools(policy(start + reproduced + noop, info)) == {"view", "edit"}
    # a passing run without an edit before it is no fix: no submit
    passing = [msg_call("bash", "c1", command=REPRODUCE), answered("c1", ran("exit code: 0", 0))]
    assert allowed_tools(policy(start + passing, info)) == {"bash", "view", "edit"}
    # the failure is an assertion in the test itself: no library frame, so the test is traced; a trace
    # that lists no function of the checkout leaves nothing to localize: the turn explores freely
    assertion = "exit code: 1\ntests/test_m.py:3: in test_b\n    assert f() == 2\nE   assert 1 == 2"
    no_frame = [msg_call("bash", "c1", command=REPRODUCE), answered("c1", ran(assertion, 1))]
    assert allowed_tools(policy(start + no_frame, info)) == {"bash"}
    trace = trace_command(PROJECT, ["tests.test_m::test_b"])
    nothing = no_frame + [msg_call("bash", "c2", command=trace),
                          answered("c2", ran("exit code: 1\nF\nno function of the checkout ran in a test", 1))]
    assert allowed_tools(policy(start + nothing, info)) == {"bash", "view", "edit"}
    assert allowed_tools(policy(start, info)) == {"bash"}  # a rollout always starts with the reproduce command


def test_without_a_library_frame_the_rollout_traces_what_the_test_ran_and_views_the_functions_listed():
    task = Task(id="s", domain="code", kind="repo",
                payload={"project": {**PROJECT, "source": ["src/pkg"]}, "problem_statement": "x",
                         "FAIL_TO_PASS": ["tests.test_m::test_partition_all[2]"]})
    policy = CodeDomain(GUIDED).controller(task)
    reproduce = reproduce_command(task.payload["project"], task.payload["FAIL_TO_PASS"])
    trace = trace_command(task.payload["project"], task.payload["FAIL_TO_PASS"])
    assert trace == ("python3 -m pytest -p tf_trace_calls --disable-warnings -q -x --tb=no -o addopts= tests "
                     "-k test_partition_all")
    info = TurnInfo(turn=1, turns_left=8, tokens_left=3000)
    start = CodeDomain().initial_messages(task)
    assertion = ("exit code: 1\ntests/test_m.py:9: in test_partition_all\n    assert list(partition_all(2, seq)) == "
                 "[(1, 2)]\nE   assert [(1,)] == [(1, 2)]")
    reproduced = [msg_call("bash", "c1", command=reproduce), answered("c1", ran(assertion, 1))]
    first = policy(start + reproduced, info)
    # nothing seen yet to view or edit: trace the failing test, the one possible call (forced)
    assert forced_call(first) == ("bash", {"command": trace})
    listed = [("src/pkg/recipes.py", 700, 712, "partition_all"), ("src/pkg/more.py", 40, 95, "chunked"),
              ("src/pkg/more.py", 10, 12, "Seq.__iter__"), ("src/pkg/recipes.py", 300, 330, "take"),
              ("src/pkg/more.py", 120, 140, "last_one")]
    listing = "\n".join(["exit code: 1", "F", "functions the failing tests ran (fewest calls first; 5 of 5):"]
                        + [f"  {p}:{a}-{b} {n} (1 call)" for p, a, b, n in listed])
    traced = reproduced + [msg_call("bash", "c2", command=trace), answered("c2", ran(listing, 1))]
    second = policy(start + traced, info)
    assert allowed_tools(second) == {"view"}  # the trace ran: view one of the functions it listed
    g = grammar(SamplingParams(**second))
    windows = [dict(path=p, start_line=a, end_line=min(b, a + TRACED_SPAN)) for p, a, b, _ in listed]
    assert windows[1] == dict(path="src/pkg/more.py", start_line=40, end_line=40 + TRACED_SPAN)  # a long one: its head
    assert all(accepts(g, body("view", **w)) for w in windows[:TRACED_COUNT])
    assert not any(accepts(g, body("view", **w)) for w in windows[TRACED_COUNT:])  # the most called: not offered
    assert not accepts(g, body("view", path="src/pkg/recipes.py", start_line=1, end_line=24))
    assert not accepts(g, body("bash", command=trace))  # traced once is enough
    viewed = traced + [msg_call("view", "c3", **windows[0]),
                       answered("c3", shown_view(["def partition_all(n, seq):", "    if n < 1:"], 700, 900,
                                                 "src/pkg/recipes.py"))]
    third = policy(start + viewed, info)
    assert allowed_tools(third) == {"view", "edit"}  # the other listed functions, or a repair of a shown line
    g = grammar(SamplingParams(**third))
    assert not accepts(g, body("view", **windows[0])) and accepts(g, body("view", **windows[1]))
    assert accepts(g, body("edit", path="src/pkg/recipes.py", old_str="    if n < 1:", new_str="    if n <= 1:"))


def test_edits_offer_only_lines_with_repairs_and_never_a_line_the_file_holds_twice():
    policy = CodeDomain(GUIDED).controller(TASK)
    info = TurnInfo(turn=3, turns_left=6, tokens_left=3000)
    window = frame_windows(FAILING)[-1].arguments()
    view = shown_view([LEVEL if i == 7 else "        # if a < b:" if i == 2 else line.replace("if decompress", "if not decompress")
                       for i, line in enumerate(VIEW_SHOWN)])
    convo = CodeDomain().initial_messages(TASK) + [
        msg_call("bash", "c1", command=REPRODUCE), answered("c1", ran(FAILING, 1)),
        msg_call("view", "c2", **window), answered("c2", view)]
    g = grammar(SamplingParams(**policy(convo, info)))

    def edit(old: str, new: str) -> bool:
        return accepts(g, body("edit", path=window["path"], old_str=old, new_str=new))

    line = "        if not decompress:"
    assert edit(line, "        if decompress:") and edit(LEVEL, "            level = depth // 1")
    assert not edit("        # if a < b:", "        # if a <= b:")  # a comment is not code
    assert not edit("            try:", "            try:")  # no repair, not offered
    # a line the edit tool found more than once in the file is not offered again
    ambiguous = convo + [msg_call("edit", "c3", path=window["path"], old_str=line, new_str="        if decompress:"),
                         observation("c3", "Error: old_str occurs 2 times in x", status="error", reason="ambiguous", occurrences=2)]
    g = grammar(SamplingParams(**policy(ambiguous, info)))
    assert not accepts(g, body("edit", path=window["path"], old_str=line, new_str="        if decompress:"))
    assert accepts(g, body("edit", path=window["path"], old_str=LEVEL, new_str="            level = depth + 1"))


def test_a_passing_check_submits_and_an_undo_that_does_not_land_frees_the_turn():
    from synthesizers.domains.code.repo_turns import SUBMIT, localized_calls

    window = frame_windows(FAILING)[-1].arguments()
    path, new = window["path"], "            level = depth + 1"
    tried = [msg_call("bash", "c1", command=REPRODUCE), answered("c1", ran(FAILING, 1)),
             msg_call("view", "c2", **window), answered("c2", VIEW_TRY),
             msg_call("edit", "c3", path=path, old_str=LEVEL, new_str=new),
             observation("c3", "Edited x.")]
    passed = tried + [msg_call("bash", "c4", command=CHECK), answered("c4", ran("exit code: 0\n1 passed", 0))]
    assert localized_calls(passed, REPRODUCE, CHECK) == SUBMIT
    stuck = tried + [msg_call("bash", "c4", command=CHECK), answered("c4", ran("exit code: 1", 1)),
                     msg_call("edit", "c5", path=path, old_str=new, new_str=LEVEL),
                     observation("c5", "Error: old_str occurs 2 times in x", status="error", reason="ambiguous", occurrences=2)]
    assert localized_calls(stuck, REPRODUCE, CHECK) is None


def test_turns_follow_the_tools_results_not_the_wording_of_their_observations():
    """Rewording what the tools print (the edit's confirmation, the view's header, the exit-code
    line) changes no turn; a result that says otherwise (the check failed) changes the turn."""
    from synthesizers.domains.code.repo_turns import SUBMIT, localized_calls

    window = frame_windows(FAILING)[-1].arguments()
    path, new = window["path"], "            level = depth + 1"
    viewed = [msg_call("bash", "c1", command=REPRODUCE), answered("c1", ran(FAILING, 1)),
              msg_call("view", "c2", **window), answered("c2", VIEW_TRY)]
    edited = viewed + [msg_call("edit", "c3", path=path, old_str=LEVEL, new_str=new),
                       observation("c3", "Edited x.", path=path, line=45)]
    passed = edited + [msg_call("bash", "c4", command=CHECK), answered("c4", ran("exit code: 0\n1 passed", 0))]

    def reworded(messages: list[Message]) -> list[Message]:
        return [m.model_copy(update={"content": m.content.replace("exit code: ", "returned ").replace("Edited", "Changed")
                                     .replace(" (lines ", " [lines ")}) if m.role == "tool" else m for m in messages]

    assert reworded(passed)[-1].content.startswith("returned 0") and "[lines 38-46" in reworded(viewed)[-1].content
    for convo in (viewed, edited, passed):
        assert localized_calls(reworded(convo), REPRODUCE, CHECK) == localized_calls(convo, REPRODUCE, CHECK)
    assert localized_calls(passed, REPRODUCE, CHECK) == SUBMIT
    failed_check = passed[:-1] + [observation("c4", "exit code: 0\n1 passed", exit_code=1, timed_out=False)]
    assert localized_calls(failed_check, REPRODUCE, CHECK) != SUBMIT  # the result, not the text, says it failed


def test_with_every_repair_of_the_window_tried_the_next_view_is_a_neighbouring_window():
    """With nothing left to offer the turn went free and the model repeated its
    undo ten times. Now the windows just above and below the viewed one are offered instead."""
    from synthesizers.domains.code.repo_turns import localized_calls, one_of

    path = "src/pkg/m.py"
    view = shown_view(["    def f(self, key):", "        return key in self.data"], 40, 200, path)
    line, repaired = "        return key in self.data", "        return key not in self.data"
    only = "exit code: 1\ntests/test_m.py:3: in test_b\n    f()\nsrc/pkg/m.py:52: in f\n    raise KeyError(key)\nE   KeyError: 1"
    convo = [msg_call("bash", "c1", command=REPRODUCE), answered("c1", ran(only, 1)),
             msg_call("view", "c2", path=path, start_line=40, end_line=56),
             answered("c2", view)]
    assert allowed_tools(one_of(localized_calls(convo, REPRODUCE, CHECK))) == {"edit"}
    tried = convo + [msg_call("edit", "c3", path=path, old_str=line, new_str=repaired),
                     observation("c3", "Edited x."),
                     msg_call("bash", "c4", command=CHECK), answered("c4", ran("exit code: 1", 1)),
                     msg_call("edit", "c5", path=path, old_str=repaired, new_str=line),
                     observation("c5", "Edited x.")]
    calls = localized_calls(tried, REPRODUCE, CHECK)
    g = grammar(SamplingParams(**one_of(calls)))
    assert accepts(g, body("view", path=path, start_line=23, end_line=39))  # above
    assert accepts(g, body("view", path=path, start_line=57, end_line=73))  # below
    assert not accepts(g, body("view", path=path, start_line=40, end_line=56))  # seen
    assert not accepts(g, body("edit", path=path, old_str=line, new_str=repaired))  # tried


def test_edits_skip_headers_and_repairs_that_would_duplicate_a_shown_line():
    """Tries spent on a def line's defaults, and an undo that failed because the
    repair had made the line equal to its neighbour ("old_str occurs 2 times")."""
    from synthesizers.domains.code.repo_turns import localized_calls, one_of

    path = "src/pkg/v.py"
    view = shown_view(["    def bump(self, token=1):", "        if self._build is None:", "            return 0",
                       "        if self._build is not None:", "            return token + 1"], 40, 200, path)
    only = "exit code: 1\ntests/test_m.py:3: in test_b\n    f()\nsrc/pkg/v.py:44: in bump\n    x\nE   TypeError: no"
    convo = [msg_call("bash", "c1", command=REPRODUCE), answered("c1", ran(only, 1)),
             msg_call("view", "c2", path=path, start_line=40, end_line=46), answered("c2", view)]
    g = grammar(SamplingParams(**one_of(localized_calls(convo, REPRODUCE, CHECK))))

    def edit(old: str, new: str) -> bool:
        return accepts(g, body("edit", path=path, old_str=old, new_str=new))

    assert edit("            return token + 1", "            return token - 1")
    assert not edit("    def bump(self, token=1):", "    def bump(self, token=0):")  # a header
    assert not edit("        if self._build is None:", "        if self._build is not None:")  # = line 43
    assert edit("        if self._build is None:", "        if not self._build is None:")


def test_a_call_with_one_choice_left_is_forced_and_is_the_call_its_grammar_admitted():
    """One window, one repair, one command: the turn's grammar would leave one text, so the turn
    is that text (forced), the same call the grammar admitted, never sampled."""
    from synthesizers.domains.code.localize import Window
    from synthesizers.domains.code.repo_turns import command_call, edit_call, one_of, view_call

    path, line = "src/pkg/m.py", "        return key in self.data"
    cases = [
        (command_call([REPRODUCE]), command_call([REPRODUCE, CHECK]), ("bash", {"command": REPRODUCE})),
        (view_call([Window(path, 40, 56)]), view_call([Window(path, 40, 56), Window(path, 57, 73)]),
         ("view", {"path": path, "start_line": 40, "end_line": 56})),
        (edit_call(path, {line: ["        return key not in self.data"]}),
         edit_call(path, {line: ["        return key not in self.data", "        return key is self.data"]}),
         ("edit", {"path": path, "old_str": line, "new_str": "        return key not in self.data"})),
    ]
    for single, wider, expected in cases:
        fields = one_of([single])
        assert fields["structured_outputs"] is None and fields["assistant_prefix"] == "<tool_call>"
        assert forced_call(fields) == expected
        # the grammar that offered this call among others admits the forced text as it is
        assert accepts(grammar(SamplingParams(**one_of([wider]))), fields["forced_text"])
        assert one_of([wider])["structured_outputs"] and "forced_text" not in one_of([wider])
    assert "forced_text" not in one_of([command_call([REPRODUCE]), view_call([Window(path, 40, 56)])])  # two calls


async def test_a_forced_reproduce_turn_is_inserted_and_the_engine_samples_only_the_view(embedded_tokenizer):
    """Token-in/token-out: the reproduce run (one possible call) is written by the framework, every
    token of it inserted (source 3); the engine is asked for the next turn only."""
    from schemas.tokens import TokenSource
    from tests.fakes import TokenFakeEngine

    window = frame_windows(FAILING)[-1].arguments()
    engine = TokenFakeEngine(embedded_tokenizer, [body("view", **window)])
    domain = CodeDomain(GUIDED)
    result = await run_agent(engine, domain.initial_messages(TASK), tools({}), ctx=ToolContext(task=TASK),
                             params=SamplingParams(max_tokens=300, seed=1), budget=Budget(max_turns=3),
                             is_final=domain.is_final, controller=domain.controller(TASK))
    assert len(engine.prompts) == 1 and result.error is None  # the last turn, submit only, is forced too
    first, view = result.messages[2], result.messages[4]
    assert [(c.function.name, c.parsed_arguments()) for c in first.tool_calls] == [("bash", {"command": REPRODUCE})]
    assert result.messages[3].content == FAILING
    assert [(c.function.name, c.parsed_arguments()) for c in view.tool_calls] == [("view", window)]
    trace = result.trace
    sources = {m: [s for s, i in zip(trace.sources, trace.message_index) if i == m and s != TokenSource.CONTEXT]
               for m in (2, 4, 6)}
    assert sources[2] and set(sources[2]) == {TokenSource.INSERTED}
    assert [c.function.name for c in result.messages[6].tool_calls] == ["submit"]
    assert sources[6] and set(sources[6]) == {TokenSource.INSERTED}
    forced = embedded_tokenizer.decode(trace.message_tokens(2, frozenset({TokenSource.INSERTED})))
    assert forced.startswith("<tool_call>\n" + json.dumps({"name": "bash", "arguments": {"command": REPRODUCE}}))
    assert set(sources[4]) == {TokenSource.INSERTED, TokenSource.GUIDED}  # the prefix, then the model's call
    assert trace.ids[: len(engine.prompts[0])] == engine.prompts[0]
