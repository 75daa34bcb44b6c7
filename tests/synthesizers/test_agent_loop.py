"""The agent loop against a scripted engine and fake tools: recovery, budgets, stop reasons, concurrency."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from schemas import Message, Task, ToolCall
from synthesizers.agent_loop import Budget, run_agent, truncate, turn_seed
from synthesizers.controller import PolicyController
from synthesizers.domains.base import ToolContext, ToolError, ToolOutput
from synthesizers.engines.base import Completion, SamplingParams
from synthesizers.engines.errors import CONTEXT_OVERFLOW
from tests.fakes import FakeEngine

CTX = ToolContext(task=Task(id="t1", domain="test"))
START = [Message(role="system", content="sys"), Message(role="user", content="question")]


def call(name: str, **arguments: Any) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


@dataclass
class FakeTool:
    name: str
    fn: Callable[[dict[str, Any], ToolContext], str]
    required: tuple[str, ...] = ()
    needs_sandbox: bool = False

    @property
    def schema(self):
        return {
            "type": "function",
            "function": {"name": self.name, "parameters": {"type": "object", "properties": {}, "required": list(self.required)}},
        }

    def run(self, arguments, ctx):
        return self.fn(arguments, ctx)


def echo_tool():
    return FakeTool("echo", lambda a, c: f"echo:{a.get('text', '')}")


def boxed(m: Message) -> bool:
    return "\\boxed" in m.content


async def test_tool_call_then_final_answer():
    engine = FakeEngine([f"Let me check. {call('echo', text='hi')}", "So \\boxed{7}."])
    result = await run_agent(engine, START, [echo_tool()], ctx=CTX, params=SamplingParams(seed=1), budget=Budget(), is_final=boxed)
    assert result.stop_reason == "final_answer" and result.error is None
    roles = [m.role for m in result.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assistant, observation = result.messages[2], result.messages[3]
    assert assistant.content == "Let me check."
    assert assistant.tool_calls == [ToolCall.make("call_0_0", "echo", {"text": "hi"})]
    assert (observation.content, observation.tool_call_id, observation.name) == ("echo:hi", "call_0_0", "echo")
    assert (result.tokens.prompt, result.tokens.completion, result.turns) == (20, 10, 2)
    assert START == [Message(role="system", content="sys"), Message(role="user", content="question")]  # input untouched


async def test_plain_answer_without_final_marker_stops_with_no_tool_call():
    result = await run_agent(FakeEngine(["I think it is 5."]), START, [echo_tool()], ctx=CTX, is_final=boxed)
    assert result.stop_reason == "no_tool_call" and result.turns == 1


async def test_malformed_call_gets_an_error_observation_and_the_model_recovers():
    engine = FakeEngine(["<tool_call>{name: echo}</tool_call>", call("echo", text="again"), "\\boxed{1}"])
    result = await run_agent(engine, START, [echo_tool()], ctx=CTX, is_final=boxed)
    assert result.stop_reason == "final_answer"
    error_obs = result.messages[3]
    assert error_obs.role == "tool" and error_obs.tool_call_id is None
    assert "malformed tool call" in error_obs.content and "not valid JSON" in error_obs.content
    assert result.messages[5].content == "echo:again"  # the recovered call ran
    assert engine.seen[1][0][-1] == error_obs  # the model saw the error before retrying


async def test_unknown_tool_missing_argument_tool_error_and_crash_are_observations():
    def picky(arguments, ctx):
        raise ToolError("x must be positive")

    def broken(arguments, ctx):
        return {}["missing"]

    tools = [FakeTool("picky", picky), FakeTool("broken", broken), FakeTool("needs", lambda a, c: "ok", required=("x",))]
    text = call("nope") + call("picky", x=-1) + call("broken") + call("needs")
    result = await run_agent(FakeEngine([text, "\\boxed{0}"]), START, tools, ctx=CTX, is_final=boxed)
    observations = [m.content for m in result.messages if m.role == "tool"]
    assert observations[0].startswith("Error: unknown tool 'nope'") and "broken, needs, picky" in observations[0]
    assert observations[1] == "Error: x must be positive"
    assert observations[2].startswith("Error: tool 'broken' failed: KeyError")
    assert observations[3] == "Error: 'needs' is missing required argument(s): x."
    assert result.stop_reason == "final_answer"
    results = [m.result for m in result.messages if m.role == "tool"]
    assert [(r.status, r.fields.get("reason")) for r in results] == [
        ("error", "unknown_tool"), ("error", "refused"), ("error", "tool_failed"), ("error", "missing_arguments")]
    assert results[3].fields["missing"] == ["x"]


async def test_every_observation_carries_the_calls_result_as_data():
    """A tool's own fields (``ToolOutput``), a refusal's fields (``ToolError``), a plain string's
    bare ok, a malformed call's error: stored on the message, never shown to the model."""
    def answer(arguments, ctx):
        return ToolOutput(f"did {arguments['n']}", {"n": arguments["n"], "items": [1, 2]})

    def refuse(arguments, ctx):
        raise ToolError("it occurs 2 times", reason="ambiguous", occurrences=2)

    tools = [FakeTool("answer", answer), FakeTool("refuse", refuse), echo_tool()]
    text = call("answer", n=3) + call("refuse") + call("echo", text="x") + "<tool_call>{bad}</tool_call>"
    result = await run_agent(FakeEngine([text, "\\boxed{0}"]), START, tools, ctx=CTX, is_final=boxed)
    answered, refused, echoed, malformed = [m for m in result.messages if m.role == "tool"]
    assert answered.content == "did 3" and type(answered.content) is str
    assert (answered.result.status, answered.result.fields) == ("ok", {"n": 3, "items": [1, 2]})
    assert (refused.result.status, refused.result.fields) == ("error", {"reason": "ambiguous", "occurrences": 2})
    assert refused.content == "Error: it occurs 2 times"
    assert (echoed.result.status, echoed.result.fields) == ("ok", {})
    assert (malformed.result.status, malformed.result.fields) == ("error", {"reason": "malformed_call"})
    assert all("result" not in m.to_openai() for m in result.messages)  # the model never sees it


async def test_non_object_arguments_from_a_server_parsed_call_are_an_observation():
    bad = ToolCall(id="srv_1", function={"name": "echo", "arguments": "[1, 2]"})
    engine = FakeEngine([Completion(text="", tool_calls=[bad], finish_reason="tool_calls"), "\\boxed{2}"])
    result = await run_agent(engine, START, [echo_tool()], ctx=CTX, is_final=boxed)
    assert result.messages[2].tool_calls == [bad]  # server-parsed calls are used as they are
    assert result.messages[3].tool_call_id == "srv_1" and "not a JSON object" in result.messages[3].content


async def test_slow_tool_times_out_into_an_observation():
    # The tool blocks until released; the loop must have moved on (and finished) while it still blocks.
    release, finished = threading.Event(), threading.Event()
    tools = [FakeTool("slow", lambda a, c: (release.wait(30), finished.set(), "late")[-1])]
    budget = Budget(tool_timeout_s=0.1)
    try:
        result = await run_agent(FakeEngine([call("slow"), "\\boxed{3}"]), START, tools, ctx=CTX, budget=budget,
                                 is_final=boxed)
        assert not finished.is_set()  # the loop did not wait for the tool
    finally:
        release.set()
    assert result.messages[3].content == "Error: tool 'slow' timed out after 0.1 s."
    assert result.messages[3].result.status == "timeout"


async def test_max_turns_budget():
    engine = FakeEngine(lambda msgs: call("echo", text="loop"))
    result = await run_agent(engine, START, [echo_tool()], ctx=CTX, budget=Budget(max_turns=3), is_final=boxed)
    assert result.stop_reason == "max_turns" and result.turns == 3 and len(engine.seen) == 3
    assert sum(m.role == "tool" for m in result.messages) == 3


async def test_max_total_tokens_budget_clamps_generation_then_stops():
    def reply(msgs):
        # The conversation grows: 300 prompt tokens on the first turn, 420 on the second.
        first = len(msgs) == len(START)
        return Completion(text=call("echo"), finish_reason="stop", prompt_tokens=300 if first else 420, completion_tokens=100 if first else 91)

    engine = FakeEngine(reply)
    budget = Budget(max_turns=10, max_total_tokens=500)
    result = await run_agent(engine, START, [echo_tool()], ctx=CTX, params=SamplingParams(max_tokens=256), budget=budget)
    assert result.stop_reason == "max_tokens"
    assert engine.seen[0][1].max_tokens == 256  # nothing counted yet: the full per-turn budget
    # 400 counted + the short observation (~9 estimated) leaves 91 for the second turn.
    assert engine.seen[1][1].max_tokens == 91
    assert len(engine.seen) == 2  # 511 tokens: no room for a third turn


async def test_truncated_generation_without_call_stops_with_max_tokens():
    engine = FakeEngine([Completion(text="Long thought that never", finish_reason="length", completion_tokens=512)])
    result = await run_agent(engine, START, [echo_tool()], ctx=CTX, is_final=boxed)
    assert result.stop_reason == "max_tokens" and result.messages[-1].content == "Long thought that never"
    # A turn that reads as final but was cut is not a final answer: the box came before the cut.
    cut = FakeEngine([Completion(text="So \\boxed{4}, and to check it we", finish_reason="length")])
    result = await run_agent(cut, START, [echo_tool()], ctx=CTX, is_final=boxed)
    assert result.stop_reason == "max_tokens"
    done = FakeEngine([Completion(text="So \\boxed{4}.", finish_reason="stop")])
    assert (await run_agent(done, START, [echo_tool()], ctx=CTX, is_final=boxed)).stop_reason == "final_answer"


async def test_engine_error_and_context_overflow_end_the_rollout_with_the_error():
    failed = FakeEngine([Completion(finish_reason="error", error="HTTP 503: down")])
    result = await run_agent(failed, START, [echo_tool()], ctx=CTX)
    assert (result.stop_reason, result.error, result.messages) == ("engine_error", "HTTP 503: down", START)
    full = FakeEngine([Completion(finish_reason="error", error=f"{CONTEXT_OVERFLOW}: 5000 > 4096")])
    result = await run_agent(full, START, [echo_tool()], ctx=CTX)
    assert result.stop_reason == "context_overflow"


async def test_tool_output_is_truncated_to_the_budget():
    tools = [FakeTool("big", lambda a, c: "A" * 5000 + "TAIL")]
    result = await run_agent(FakeEngine([call("big"), "\\boxed{1}"]), START, tools, ctx=CTX, budget=Budget(max_tool_output_chars=300), is_final=boxed)
    observation = result.messages[3].content
    assert len(observation) <= 300 and "characters cut" in observation and observation.endswith("TAIL")


def test_truncate_keeps_short_text_and_respects_the_limit():
    assert truncate("short", 100) == "short"
    assert all(len(truncate("x" * n, 50)) <= 50 for n in (51, 500, 50_000))


async def test_per_turn_seeds_are_deterministic_and_distinct():
    engine = FakeEngine([call("echo"), call("echo"), "\\boxed{1}"])
    await run_agent(engine, START, [echo_tool()], ctx=CTX, params=SamplingParams(seed=42), is_final=boxed)
    seeds = [p.seed for _, p in engine.seen]
    assert seeds == [turn_seed(42, 0), turn_seed(42, 1), turn_seed(42, 2)]
    assert len(set(seeds)) == 3 and turn_seed(43, 0) != seeds[0]
    unseeded = FakeEngine(["done"])
    await run_agent(unseeded, START, [], ctx=CTX, params=SamplingParams(seed=None))
    assert unseeded.seen[0][1].seed is None


async def test_final_answer_with_a_call_does_not_run_the_tool():
    ran = []
    tools = [FakeTool("echo", lambda a, c: ran.append(1) or "x")]
    result = await run_agent(FakeEngine([f"\\boxed{{4}} {call('echo')}"]), START, tools, ctx=CTX, is_final=boxed)
    assert result.stop_reason == "final_answer" and ran == []


async def test_a_slow_tool_does_not_block_another_loops_generation():
    tool_window: dict[str, float] = {}

    def slow(arguments, ctx):
        tool_window["start"] = time.perf_counter()
        time.sleep(1.0)  # a blocking tool, as sandbox execs are
        tool_window["end"] = time.perf_counter()
        return "slow done"

    slow_engine = FakeEngine([call("slow"), "\\boxed{1}"])
    fast_engine = FakeEngine(lambda msgs: call("echo") if len(msgs) < 12 else "\\boxed{2}", delay_s=0.02)
    tools = [FakeTool("slow", slow), echo_tool()]
    slow_result, fast_result = await asyncio.gather(
        run_agent(slow_engine, START, tools, ctx=CTX, is_final=boxed),
        run_agent(fast_engine, START, tools, ctx=CTX, budget=Budget(max_turns=20), is_final=boxed),
    )
    assert slow_result.stop_reason == fast_result.stop_reason == "final_answer"
    during = [t for t in fast_engine.call_times if tool_window["start"] < t < tool_window["end"]]
    assert len(during) >= 4  # the other loop kept generating while the slow tool ran
    assert slow_result.timings.tools_s >= 1.0


async def test_many_loops_run_concurrently_against_one_engine():
    active = {"now": 0, "peak": 0}
    lock = threading.Lock()

    class Counting(FakeEngine):
        async def chat(self, messages, *, tools=None, params=SamplingParams()):
            with lock:
                active["now"] += 1
                active["peak"] = max(active["peak"], active["now"])
            try:
                return await super().chat(messages, tools=tools, params=params)
            finally:
                with lock:
                    active["now"] -= 1

    engine = Counting(lambda msgs: call("echo") if len(msgs) < 4 else "\\boxed{1}", delay_s=0.05)
    results = await asyncio.gather(*[run_agent(engine, START, [echo_tool()], ctx=CTX, is_final=boxed) for _ in range(32)])
    assert all(r.stop_reason == "final_answer" for r in results)
    assert active["peak"] == 32  # every loop had a request in flight at once: concurrent, proven by count


async def test_user_turn_hook_continues_until_the_user_ends():
    from schemas import Message as _Message
    from synthesizers.agent_loop import Budget as _Budget, run_agent as _run_agent
    from synthesizers.domains.base import ToolContext as _Ctx
    from synthesizers.engines.base import Completion as _Completion
    from schemas import Task as _Task

    class Echo:
        model_id = "echo"

        async def chat(self, messages, *, tools=None, params=None):
            return _Completion(text=f"reply {len(messages)}", finish_reason="stop")

        async def close(self):
            pass

    seen = []

    async def user(convo):
        seen.append(len(convo))
        return _Message(role="user", content="go on") if len(seen) < 3 else None

    result = await _run_agent(Echo(), [_Message(role="user", content="hi")], [], ctx=_Ctx(task=_Task(id="t", domain="d")),
                              budget=_Budget(max_turns=10), user_turn=user)
    assert result.stop_reason == "user_ended"
    assert [m.role for m in result.messages] == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert seen == [2, 4, 6]


async def test_a_simulated_user_only_ever_speaks_as_the_user():
    async def continues(convo):
        return Message(role="assistant", content="The answer is")

    with pytest.raises(ValueError, match="only ever speaks as the user"):
        await run_agent(FakeEngine(["thinking"]), START, [], ctx=CTX, is_final=boxed, user_turn=continues)


async def test_turn_policy_sets_sampling_per_turn_and_sees_the_budget():
    from synthesizers.agent_loop import TurnInfo

    seen: list[TurnInfo] = []

    def policy(convo, info):
        seen.append(info)
        return {"assistant_prefix": "<tool_call>" if info.turns_left > 1 else "LAST", "max_tokens": 10_000}

    engine = FakeEngine([call("echo", text="a"), call("echo", text="b"), "done"])
    result = await run_agent(engine, START, [echo_tool()], ctx=CTX, params=SamplingParams(max_tokens=50, seed=1),
                             budget=Budget(max_turns=3, max_total_tokens=4000), controller=PolicyController(policy))
    assert [p.assistant_prefix for _, p in engine.seen] == ["<tool_call>", "<tool_call>", "LAST"]
    assert [i.turns_left for i in seen] == [3, 2, 1] and [i.turn for i in seen] == [0, 1, 2]
    assert all(p.max_tokens <= info.tokens_left for (_, p), info in zip(engine.seen, seen))  # the budget still caps
    assert len({p.seed for _, p in engine.seen}) == 3  # per-turn seeds are not overridden
    assert result.stop_reason == "no_tool_call"


async def test_a_controller_continues_the_models_turn_then_ends_the_rollout():
    from synthesizers.controller import Continue, Controller, End

    class Forcing(Controller):
        def __init__(self):
            self.after = 0

        def next_turn(self, convo, info):
            return {"assistant_prefix": "POLICY", "stop": ("X",)}

        def after_turn(self, convo):
            self.after += 1
            return Continue(" The answer is") if self.after == 1 else End()

    engine = FakeEngine(["thinking", "thinking The answer is unclear", "more"])
    result = await run_agent(engine, START, [], ctx=CTX, is_final=boxed, controller=Forcing())
    # the continued turn goes on from the model's text plus the continuation (no new opener); its stops hold
    assert [p.assistant_prefix for _, p in engine.seen] == ["POLICY", "thinking The answer is"]
    assert all(p.stop == ("X",) for _, p in engine.seen)
    assert result.stop_reason == "controller_ended" and len(engine.seen) == 2
    assert [m.role for m in result.messages] == ["system", "user", "assistant"]


