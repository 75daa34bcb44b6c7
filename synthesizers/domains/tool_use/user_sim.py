"""The simulated user: a second LLM conversation that plays the customer.

``LLMUserSimulator.reply(messages)`` is the agent loop's ``user_turn`` hook
(via ``Domain.user_simulator(task, engine)``): it sees the agent's
conversation with roles flipped — the agent's words become the simulator's
``user`` turns, the user's own earlier words its ``assistant`` turns; tool
traffic is invisible to a user — asks the engine (the same ``LLMEngine``
Protocol; possibly another model) for the next user message, and returns it,
or ``None`` when the user ends the conversation (the stop token
``###STOP###``), runs out of turns, or the engine fails.

Sampling seeds derive from (task id, conversation so far), so a resumed run
re-plays the same user, while branches that diverge get different users.
"""

from __future__ import annotations

import hashlib

from schemas import Message
from synthesizers.engines.base import LLMEngine, SamplingParams

STOP_TOKEN = "###STOP###"

GUIDELINES = (
    "You are playing a user who contacts a customer-service assistant. Follow the scenario below; "
    "speak in the first person, as the user, in one or two short sentences per message.\n"
    "- Give only the information the current step needs; never invent facts that the scenario does not give.\n"
    "- Do not solve the task yourself and do not pretend to be the assistant.\n"
    f"- When your goal is reached, or the assistant cannot help you, write {STOP_TOKEN} on its own to end the chat.\n\n"
    "Scenario:\n"
)


class LLMUserSimulator:
    def __init__(
        self,
        engine: LLMEngine,
        instructions: str,
        *,
        seed_key: str = "",
        max_turns: int = 8,
        temperature: float = 0.7,
        max_tokens: int = 160,
    ):
        self.engine = engine
        self.instructions = instructions
        self.seed_key = seed_key
        self.max_turns = max_turns
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.turns = 0
        self.last_error: str | None = None

    def sim_messages(self, messages: list[Message]) -> list[Message]:
        """The simulator's own conversation: roles flipped, system and tool turns dropped."""
        out = [Message(role="system", content=GUIDELINES + self.instructions)]
        for m in messages:
            if m.role == "user" and m.content.strip():
                out.append(Message(role="assistant", content=m.content))
            elif m.role == "assistant" and m.content.strip():
                # Only what the agent *said*: its tool calls happen behind the counter.
                out.append(Message(role="user", content=m.content))
        return out

    def _seed(self, messages: list[Message]) -> int:
        last = next((m.content for m in reversed(messages) if m.role == "assistant"), "")
        digest = hashlib.sha256(f"{self.seed_key}|{len(messages)}|{last}".encode()).hexdigest()
        return int(digest[:8], 16) & 0x7FFFFFFF

    async def reply(self, messages: list[Message]) -> Message | None:
        if self.turns >= self.max_turns:
            return None
        convo = self.sim_messages(messages)
        if convo[-1].role != "user":
            return None  # the agent said nothing a user could answer
        params = SamplingParams(temperature=self.temperature, max_tokens=self.max_tokens, seed=self._seed(messages))
        completion = await self.engine.chat(convo, tools=None, params=params)
        if completion.error is not None:
            self.last_error = completion.error
            return None
        text = completion.text.strip()
        if STOP_TOKEN in text or not text:
            return None
        self.turns += 1
        return Message(role="user", content=text)


def tau2_instructions(scenario: dict) -> str:
    """The scenario text of a τ² task's ``user_scenario``."""
    parts = []
    if scenario.get("persona"):
        parts.append(f"Persona: {scenario['persona']}")
    inst = scenario.get("instructions") or {}
    if isinstance(inst, str):
        return "\n".join([*parts, inst])
    for key, label in (("reason_for_call", "Why you are calling"), ("known_info", "What you know"),
                       ("unknown_info", "What you do not know"), ("task_instructions", "How to behave")):
        if inst.get(key):
            parts.append(f"{label}: {inst[key].strip()}")
    return "\n".join(parts)
