"""The simulated user on its own with a scripted engine, and inside the real
agent loop through the ``user_turn`` hook."""

from __future__ import annotations

import asyncio

from schemas import Message, ToolCall
from synthesizers.agent_loop import Budget, run_agent
from synthesizers.domains.base import ToolContext
from synthesizers.domains.tool_use.domain import ToolUseDomain
from synthesizers.domains.tool_use.user_sim import GUIDELINES, STOP_TOKEN, LLMUserSimulator, tau2_instructions
from synthesizers.engines.base import Completion, SamplingParams


class ReplayEngine:
    """Answers from a list in order and records what it was asked."""

    model_id = "replay"

    def __init__(self, replies: list[str], error: str | None = None):
        self.replies = list(replies)
        self.error = error
        self.seen: list[tuple[list[Message], object, SamplingParams]] = []

    async def chat(self, messages, *, tools=None, params=SamplingParams()):
        self.seen.append((list(messages), tools, params))
        if self.error:
            return Completion(error=self.error, finish_reason="error")
        return Completion(text=self.replies.pop(0), finish_reason="stop")

    async def close(self):
        return None


AGENT_CONVO = [
    Message(role="system", content="agent policy (never shown to the user)"),
    Message(role="user", content="Hi! I need some help."),
    Message(role="assistant", content="Sure, what is your user id?"),
]


def test_roles_are_flipped_and_tool_traffic_hidden():
    sim = LLMUserSimulator(ReplayEngine([]), "You are Mia; user id mia_1.")
    convo = AGENT_CONVO + [
        Message(role="user", content="mia_1"),
        Message(role="assistant", tool_calls=[ToolCall.make("c", "get_user_details", {"user_id": "mia_1"})]),
        Message(role="tool", content="{secret db row}", tool_call_id="c"),
        Message(role="assistant", content="Found you. What next?"),
    ]
    mine = sim.sim_messages(convo)
    assert mine[0].role == "system" and mine[0].content == GUIDELINES + "You are Mia; user id mia_1."
    assert [(m.role, m.content) for m in mine[1:]] == [
        ("assistant", "Hi! I need some help."), ("user", "Sure, what is your user id?"),
        ("assistant", "mia_1"), ("user", "Found you. What next?")]
    assert "secret" not in str(mine) and "agent policy" not in str(mine)


def test_reply_then_stop_token_ends_and_seeds_are_deterministic():
    engine = ReplayEngine(["My id is mia_1.", f"Thanks! {STOP_TOKEN}"])
    sim = LLMUserSimulator(engine, "scenario", seed_key="task-1")
    first = asyncio.run(sim.reply(AGENT_CONVO))
    assert first == Message(role="user", content="My id is mia_1.")
    assert engine.seen[0][1] is None  # the user has no tools
    assert asyncio.run(sim.reply(AGENT_CONVO + [first, Message(role="assistant", content="Done.")])) is None
    again = LLMUserSimulator(ReplayEngine(["x"]), "scenario", seed_key="task-1")
    asyncio.run(again.reply(AGENT_CONVO))
    assert sim._seed(AGENT_CONVO) == again._seed(AGENT_CONVO) != LLMUserSimulator(None, "s", seed_key="task-2")._seed(AGENT_CONVO)


def test_turn_cap_engine_error_and_empty_reply_end_the_conversation():
    capped = LLMUserSimulator(ReplayEngine(["a", "b", "c"]), "s", max_turns=2)
    assert [asyncio.run(capped.reply(AGENT_CONVO)) is not None for _ in range(3)] == [True, True, False]
    broken = LLMUserSimulator(ReplayEngine([], error="boom"), "s")
    assert asyncio.run(broken.reply(AGENT_CONVO)) is None and broken.last_error == "boom"
    assert asyncio.run(LLMUserSimulator(ReplayEngine(["  "]), "s").reply(AGENT_CONVO)) is None


def test_tau2_instructions_text():
    text = tau2_instructions({"persona": None, "instructions": {
        "reason_for_call": "Cancel EHGLP3.", "known_info": "You are Emma Kim.", "unknown_info": None,
        "task_instructions": "Do not cancel without a refund."}})
    assert text.splitlines() == ["Why you are calling: Cancel EHGLP3.", "What you know: You are Emma Kim.",
                                 "How to behave: Do not cancel without a refund."]


class TwoRoleEngine:
    """Agent: asks a question, then (after the user answered) calls a file tool, then reports.
    User (recognised by the simulator's system prompt): answers once, then stops."""

    model_id = "two-role"

    async def chat(self, messages, *, tools=None, params=SamplingParams()):
        if messages[0].content.startswith(GUIDELINES):
            said = [m for m in messages if m.role == "assistant"]
            return Completion(text="Yes, go ahead." if len(said) < 2 else f"Great. {STOP_TOKEN}", finish_reason="stop")
        if not any(m.role == "user" and m.content == "Yes, go ahead." for m in messages):
            return Completion(text="Shall I add it to your todo list?", finish_reason="stop")
        if not any(m.role == "tool" for m in messages):
            call = '<tool_call>{"name": "append_file", "arguments": {"path": "/home/user/todo.txt", "content": "fix garden\\n"}}</tool_call>'
            return Completion(text=call, finish_reason="stop")
        return Completion(text="Added it.", finish_reason="stop")

    async def close(self):
        return None


def test_simulated_user_drives_the_real_agent_loop():
    domain = ToolUseDomain()
    task = next(t for t in ToolUseDomain({"sources": ["files"]}).seed_tasks(limit=50, seed=0)
                if t.payload["expected_actions"][0]["name"] == "append_file")
    task.payload["expected_actions"][0]["arguments"]["content"] = "fix garden\n"
    engine = TwoRoleEngine()
    sim = domain.user_simulator(task, engine)
    result = asyncio.run(run_agent(engine, domain.initial_messages(task), domain.tools(task),
                                   ctx=ToolContext(task=task, state={}), budget=Budget(max_turns=6),
                                   is_final=domain.is_final, user_turn=sim.reply))
    roles = [m.role for m in result.messages]
    assert result.stop_reason == "user_ended", result
    assert roles == ["system", "user", "assistant", "user", "assistant", "tool", "assistant"]
    from verifiers.tool_use import StateVerifier

    assert StateVerifier().verify(task, result.messages).passed
