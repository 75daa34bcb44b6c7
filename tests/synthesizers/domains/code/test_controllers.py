"""The guided turn policy of the code domain, driven through the real agent loop with a
scripted engine and fake tools (the real tools' schemas, no sandbox)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas import Message, Task
from synthesizers.agent_loop import Budget, TurnInfo, run_agent
from synthesizers.controller import PolicyController
from synthesizers.domains.base import DomainOptionsError, ToolContext
from synthesizers.domains.code.domain import CodeDomain
from synthesizers.domains.code.domain import is_read_only
from synthesizers.domains.code.controllers import CLOSING_MAX_TOKENS, SUBMIT_ROOM_TOKENS, guided_policy
from synthesizers.domains.code.tools import code_tools
from synthesizers.engines.base import SamplingParams
from synthesizers.hermes import parse_tool_calls
from tests.fakes import FakeEngine
from tests.synthesizers.domains.code.helpers import ScriptedTool, answered, observation, ran

PAYLOAD = {"project": {"name": "p", "version": "1", "test_paths": ["tests"]}, "FAIL_TO_PASS": ["tests.t::test_b"],
           "problem_statement": "x"}
PLAIN = Task(id="t", domain="code", kind="repo", payload=PAYLOAD)
GUIDED = PLAIN  # rolled out by a domain built with {"guided": True}


def _field(params: dict[str, Any] | SamplingParams, name: str) -> Any:
    return params.get(name) if isinstance(params, dict) else getattr(params, name)


def forced_call(params: dict[str, Any] | SamplingParams) -> tuple[str, dict[str, Any]] | None:
    """The one call a forced turn writes (name, arguments), parsed as the agent loop parses the
    turn (prefix + forced text); None for a sampled turn."""
    text = _field(params, "forced_text")
    if text is None:
        return None
    assert not _field(params, "structured_outputs")  # nothing is sampled, so no grammar either
    content, calls, errors = parse_tool_calls((_field(params, "assistant_prefix") or "") + text)
    assert not errors and not content and len(calls) == 1, (content, errors)
    return calls[0].function.name, calls[0].parsed_arguments()


def allowed_tools(params: dict[str, Any] | SamplingParams) -> set[str] | None:
    """The tool names a turn's grammar admits (a forced turn: its call's); None for a turn without a grammar."""
    if (forced := forced_call(params)) is not None:
        return {forced[0]}
    structured = _field(params, "structured_outputs")
    if not structured:
        return None
    fmt = json.loads(structured["structural_tag"])["format"]
    assert fmt["type"] == "or"  # exactly one call of one of these tags, nothing else
    return {json.loads(tag["begin"].split('"name": ')[1].split(",")[0]) for tag in fmt["elements"]}


def turn_admits(params: dict[str, Any] | SamplingParams, name: str, arguments: dict[str, Any]) -> bool:
    """Whether a turn could make this call: a forced turn's call is exactly it, a sampled turn's
    grammar accepts it."""
    import xgrammar as xgr
    from xgrammar.testing import _is_grammar_accept_string as accepts

    if (forced := forced_call(params)) is not None:
        return forced == (name, arguments)
    grammar = xgr.Grammar.from_structural_tag(_field(params, "structured_outputs")["structural_tag"])
    return accepts(grammar, f"\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>")


def recording(policy, seen: list[dict[str, Any]]):
    """``policy``, keeping every turn's fields in ``seen`` (a forced turn never reaches the engine)."""
    def wrapped(messages, info):
        fields = policy(messages, info)
        seen.append(fields)
        return fields

    return wrapped


class RecordingCodeDomain(CodeDomain):
    """The code domain, its turn policy recording every turn's fields in ``sent``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[dict[str, Any]] = []

    def controller(self, task: Task):
        inner = super().controller(task)
        return None if inner is None else PolicyController(recording(inner.policy, self.sent))


def call(name: str, **arguments: Any) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def msg_call(name: str, call_id: str, **arguments: Any) -> Message:
    from schemas import ToolCall

    return Message(role="assistant", content="", tool_calls=[
        ToolCall(id=call_id, function={"name": name, "arguments": json.dumps(arguments)})])


RESULTS = {"bash": "exit code: 1\nFAILED tests/t.py::test_b", "view": "src/m.py (lines 1-3 of 3):\n    1  x = 1",
           "edit": "Edited src/m.py. The lines around the change now read:\n    1  x = 2",
           "submit": "Submitted. Your patch against the starting checkout:\n<patch>...</patch>"}


def fake_tools() -> list[ScriptedTool]:
    return [ScriptedTool(t, RESULTS[t.name]) for t in code_tools()]


def free_policy():
    """The guided policy with nothing localized (no reproduce command): the rules for free exploration."""
    return guided_policy([t.schema for t in code_tools()], is_read_only)


def test_policy_only_for_guided_tasks():
    assert CodeDomain().controller(PLAIN) is None
    domain = CodeDomain({"guided": True})
    assert callable(domain.controller(PLAIN))


async def test_a_guided_rollout_view_edit_submit_then_closing_words():
    """Every turn before submit is exactly one call with the <tool_call> prefix; submit is only
    offered once the checkout changed; after submit a free-text turn ends the rollout."""
    domain = CodeDomain({"guided": True})
    engine = FakeEngine([call("view", path="src/m.py"), call("edit", path="src/m.py", old_str="x = 1", new_str="x = 2"),
                         call("submit"), "Fixed the constant."], prompt_tokens=100, completion_tokens=20)
    result = await run_agent(engine, domain.initial_messages(GUIDED), fake_tools(),
                             ctx=ToolContext(task=GUIDED), params=SamplingParams(max_tokens=300, seed=1),
                             budget=Budget(max_turns=12, max_total_tokens=4096), is_final=domain.is_final,
                             controller=PolicyController(free_policy()))
    assert [allowed_tools(p) for _, p in engine.seen] == [
        {"bash", "view", "edit"}, {"bash", "view", "edit"}, {"bash", "view", "edit", "submit"}, None]
    assert [p.assistant_prefix for _, p in engine.seen] == ["<tool_call>"] * 3 + [""]
    closing = engine.seen[-1][1]
    assert closing.stop == ("<tool_call>",) and closing.max_tokens == CLOSING_MAX_TOKENS
    assert result.stop_reason == "final_answer" and result.messages[-1].content == "Fixed the constant."
    assert [m.name for m in result.messages if m.role == "tool"] == ["view", "edit", "submit"]


def test_last_turn_and_low_token_room_allow_only_submit():
    policy = free_policy()
    start = CodeDomain().initial_messages(GUIDED)
    assert allowed_tools(policy(start, TurnInfo(turn=0, turns_left=5, tokens_left=3000))) == {"bash", "view", "edit"}
    assert allowed_tools(policy(start, TurnInfo(turn=11, turns_left=1, tokens_left=3000))) == {"submit"}
    low = policy(start, TurnInfo(turn=3, turns_left=8, tokens_left=SUBMIT_ROOM_TOKENS - 1))
    assert allowed_tools(low) == {"submit"}
    # submit takes no arguments: a submit-only turn has one possible text, so it is forced, not sampled
    assert low["forced_text"] == '\n{"name": "submit", "arguments": {}}\n</tool_call>'
    assert low["assistant_prefix"] == "<tool_call>" and low["structured_outputs"] is None
    assert forced_call(low) == ("submit", {})
    assert allowed_tools(policy(start, TurnInfo(turn=3, turns_left=8, tokens_left=SUBMIT_ROOM_TOKENS))) \
        == {"bash", "view", "edit"}


def test_what_unlocks_submit():
    """A failed edit or a read-only command does not change the checkout; `sed -i` or a landed edit does."""
    policy = free_policy()
    info = TurnInfo(turn=2, turns_left=6, tokens_left=3000)
    start = CodeDomain().initial_messages(GUIDED)

    def after(name: str, result: Message, **arguments: Any) -> set[str] | None:
        convo = start + [msg_call(name, "c1", **arguments), result]
        return allowed_tools(policy(convo, info))

    explore, everything = {"bash", "view", "edit"}, {"bash", "view", "edit", "submit"}
    refused = observation("c1", "Error: old_str occurs 0 times in src/m.py", name="edit", status="error",
                          reason="not_found", occurrences=0)
    assert after("edit", refused, path="src/m.py", old_str="a", new_str="b") == explore
    assert after("bash", answered("c1", ran("exit code: 0", 0)), command="grep -n x src/m.py | head") == explore
    # not plainly read-only
    assert after("bash", answered("c1", ran("exit code: 1", 1)), command="python3 -m pytest -q tests") == everything
    assert after("bash", answered("c1", ran("exit code: 0", 0)), command="sed -i 's/a/b/' src/m.py") == everything
    landed = observation("c1", RESULTS["edit"], name="edit", path="src/m.py", line=1)
    assert after("edit", landed, path="src/m.py", old_str="x = 1", new_str="x = 2") == everything
    # the edit's result decides, not its wording: the same text refused changes nothing
    assert after("edit", observation("c1", RESULTS["edit"], name="edit", status="error", reason="refused"),
                 path="src/m.py", old_str="x = 1", new_str="x = 2") == explore


CHECKED = {"qa_runs": 3, "qa_outcome": "passed"}  # as pipelines.env_qa leaves a sound task
FN_PROMPT = ("Project p 1, module `m.py`. Implement this function so the project's tests pass (names the module "
             "imports are available):\n\n```python\n@cached\ndef area(w, h):\n    \"\"\"Area of a w x h box.\"\"\"\n```")


def function_task() -> Task:
    payload = {**PAYLOAD, "function": {"path": "m.py", "name": "area", "prompt": FN_PROMPT}}
    return Task(id="f", domain="code", kind="repo-function", payload=payload)


async def test_a_guided_function_answer_opens_with_the_header_and_the_verifier_reads_it():
    from verifiers.code_function import extract_code_block
    from verifiers.code_repo_function import splice_function

    assert CodeDomain().controller(function_task()) is None  # not guided: the model answers freely
    domain = CodeDomain({"guided": True, "function_temperature": 0.3})
    task = function_task()
    header = '@cached\ndef area(w, h):\n    """Area of a w x h box."""\n'
    engine = FakeEngine(["```python\n" + header + "    return w * h\n"], prompt_tokens=100, completion_tokens=20)  # the engine returns prefix + body
    result = await run_agent(engine, domain.initial_messages(task), domain.tools(task), ctx=ToolContext(task=task),
                             params=SamplingParams(max_tokens=300, temperature=0.8, stop=("X",)),
                             is_final=domain.is_final, controller=domain.controller(task))
    sent = engine.seen[0][1]
    assert sent.assistant_prefix == "```python\n" + header and sent.temperature == 0.3
    assert "```" in sent.stop and "\ndef " in sent.stop
    assert result.stop_reason == "final_answer"
    code = extract_code_block(result.messages[-1].content)  # unclosed block: the stop ate the fence
    blank = f'import x\n\n\n{header}    raise NotImplementedError\n\n\ndef other():\n    pass\n'
    assert splice_function(blank, "area", code) == blank.replace("raise NotImplementedError", "return w * h")


def test_function_temperature_is_an_option_and_kept_only_when_set(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synthesizers.domains.code.function_tasks import FIELDS

    row = {f: "" for f in FIELDS} | {"task_id": "p-1-fn-m.py:area", "project_spec": json.dumps(PAYLOAD["project"]),
                                     "path": "m.py", "name": "area", "prompt": FN_PROMPT,
                                     "FAIL_TO_PASS": ["t::a"], "PASS_TO_PASS": ["t::b"], **CHECKED}
    path = tmp_path / "fn.parquet"
    pq.write_table(pa.Table.from_pylist([row]), path)
    options = {"kinds": ["function"], "function_tasks": str(path), "guided": True}
    plain_domain, hot_domain = CodeDomain(options), CodeDomain(options | {"function_temperature": 0.4})
    plain = next(plain_domain.seed_tasks(limit=None, seed=0))
    hot = next(hot_domain.seed_tasks(limit=None, seed=0))
    assert plain == hot and plain.kind == "repo-function"  # a rollout setting: nothing of it in the task
    info = TurnInfo(turn=0, turns_left=1, tokens_left=1000)
    assert "temperature" not in plain_domain.controller(plain)([], info)
    assert hot_domain.controller(hot)([], info)["temperature"] == 0.4


def test_guided_turn_grammars_hold_the_real_tool_schemas():
    """What vLLM gets: the grammar admits the call a sensible agent would make, in the template's
    format, and refuses a command past its bound and a submit before the checkout changed."""
    import xgrammar as xgr
    from xgrammar.testing import _is_grammar_accept_string as accepts

    from synthesizers.domains.code.tools import COMMAND_MAX_CHARS

    policy = free_policy()
    first = policy(CodeDomain().initial_messages(GUIDED), TurnInfo(turn=0, turns_left=12, tokens_left=3000))
    g = xgr.Grammar.from_structural_tag(first["structured_outputs"]["structural_tag"])

    def body(name: str, arguments: dict[str, Any]) -> str:  # the prefix already wrote "<tool_call>"
        return f"\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"

    run = "python3 -m pytest -q -o addopts= tests -k 'test_a or test_b'"
    assert accepts(g, body("bash", {"command": run}))
    assert accepts(g, body("edit", {"path": "src/m.py", "old_str": "if a <= b:", "new_str": "if a < b:"}))
    assert not accepts(g, body("bash", {"command": "x" * (COMMAND_MAX_CHARS + 1)}))
    assert not accepts(g, body("submit", {}))
    assert not accepts(g, body("bash", {"command": run}) + " and more")


def test_a_repeated_call_makes_the_next_turn_hotter():
    from synthesizers.domains.code.controllers import REPEAT_TEMPERATURE

    policy = free_policy()
    info = TurnInfo(turn=3, turns_left=6, tokens_left=3000)
    echo = [msg_call("bash", "c1", command="echo"), answered("c1", ran("exit code: 0", 0)),
            msg_call("bash", "c2", command="echo"), answered("c2", ran("exit code: 0", 0))]
    start = CodeDomain().initial_messages(GUIDED)
    assert policy(start + echo, info)["temperature"] == REPEAT_TEMPERATURE
    varied = echo[:2] + [msg_call("bash", "c2", command="ls"), echo[3]]
    assert "temperature" not in policy(start + varied, info)
    assert "temperature" not in policy(start + echo[:2], info)


def test_function_body_regex_admits_a_body_and_nothing_else():
    """Given only the header, the model copied the prompt and closed the block at once: the regex
    makes the continuation body lines, the first one code, and ends it with the function."""
    import xgrammar as xgr
    from xgrammar.testing import _is_grammar_accept_string as accepts

    fields = CodeDomain({"guided": True}).controller(function_task())([], TurnInfo(turn=0, turns_left=1, tokens_left=999))
    g = xgr.Grammar.from_regex(fields["structured_outputs"]["regex"])
    assert accepts(g, "    return w * h\n")
    assert accepts(g, "    if w < 0:\n        raise ValueError(w)\n\n    return w * h\n")
    assert not accepts(g, "```")  # closing the block at once
    assert accepts(g, "    return w * h\n```")  # the fence (a stop) ends a body
    assert not accepts(g, "\n    return w * h\n")  # the first line holds code
    assert not accepts(g, "    return w * h\ndef other():\n")  # nothing after the function
    assert not accepts(g, "Here is the function:\n")


def test_kind_limits_and_bug_kinds_choose_the_tasks(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synthesizers.domains.code.function_tasks import FIELDS as FN_FIELDS
    from synthesizers.domains.code.instances import FIELDS, SCHEMA

    spec = json.dumps(PAYLOAD["project"])
    repo = [{f: "" for f in FIELDS} | {"instance_id": f"r{i}", "project_spec": spec, "FAIL_TO_PASS": ["t::a"],
                                         "PASS_TO_PASS": ["t::b"], "line": 1, "validate_seconds": 1.0,
                                         "mutation_kind": "compare" if i < 7 else "drop_statement", **CHECKED}
            for i in range(10)]
    fns = [{f: "" for f in FN_FIELDS} | {"task_id": f"f{i}", "project_spec": spec, "path": "m.py", "name": "area",
                                          "prompt": FN_PROMPT, "FAIL_TO_PASS": ["t::a"], "PASS_TO_PASS": ["t::b"],
                                          **CHECKED} for i in range(3)]
    pq.write_table(pa.Table.from_pylist(repo, schema=SCHEMA), tmp_path / "instances.parquet")
    pq.write_table(pa.Table.from_pylist(fns), tmp_path / "function_tasks.parquet")
    options = {"kinds": ["repo", "function"], "instances": str(tmp_path), "function_tasks": str(tmp_path),
               "kind_limits": {"repo": 2}}
    tasks = list(CodeDomain(options).seed_tasks(limit=None, seed=0))
    assert sum(t.kind == "repo-function" for t in tasks) == 3 and len(tasks) == 5
    assert len(list(CodeDomain(options).seed_tasks(limit=4, seed=0))) == 4
    assert len(list(CodeDomain({**options, "kind_limits": None}).seed_tasks(limit=None, seed=0))) == 13
    slips = list(CodeDomain({**options, "kind_limits": None, "bug_kinds": ["compare"]}).seed_tasks(limit=None, seed=0))
    assert sum(t.source == "mutation:compare" for t in slips) == 7 and len(slips) == 10  # + the 3 function tasks
    with pytest.raises(DomainOptionsError, match="code option 'bug_kinds.0': Input should be 'compare'"):
        CodeDomain({**options, "bug_kinds": ["typo"]})
