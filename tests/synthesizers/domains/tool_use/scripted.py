"""A scripted engine that plays both the agent and the simulated user of the
tool-use domain, through the real hooks (no model).

As the *user* (its system prompt is the simulator's), it first names its task
by a key (a hash of the scenario it was given), then ends with ``###STOP###``.
As the *agent*, it greets until the user named a task, then calls the task's
expected actions one per turn through Hermes ``<tool_call>`` text, then reports
the ``communicate_info``; single-turn tasks get all expected calls at once.
A roll on (conversation, seed) makes some rollouts wrong (a write skipped, a
call dropped) so branching has work; ``malformed`` first sends a call with bad
arguments, which must come back as an observation. Replies are pure functions
of the messages and the seed, as the resume logic needs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from schemas import Message
from synthesizers.domains.tool_use import prompts
from synthesizers.domains.tool_use.domain import WRITE_TOOLS, ToolUseDomain
from synthesizers.domains.tool_use.user_sim import GUIDELINES, STOP_TOKEN
from synthesizers.engines.base import Completion, SamplingParams


def key_of(instructions: str) -> str:
    return hashlib.sha256(instructions.encode()).hexdigest()[:12]


def _roll(*parts: object) -> int:
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16)


def call_text(name: str, arguments: dict[str, Any]) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


class ScriptedToolEngine:
    def __init__(self, seed: int = 0, limit: int | None = None, options: dict[str, Any] | None = None,
                 wrong_every: int = 3, malformed: bool = False, delay_s: float = 0.0, tasks: list | None = None, **_: Any):
        self.model_id = "scripted-tool-use"
        if tasks is None:  # regenerate the run's tasks: the engine knows the answers, not the model
            tasks = list(ToolUseDomain(options or {}).seed_tasks(limit=limit, seed=seed))
        # Two generated file tasks can share a request (and so a scenario) but differ in their
        # trees; such a scripted user could not say which one it plays.
        keys = [key_of(t.payload["instructions"]) for t in tasks if t.kind == "stateful"]
        if len(keys) != len(set(keys)):
            raise ValueError("scripted engine: two stateful tasks share a scenario; pass tasks= one at a time")
        self.stateful = {key_of(t.payload["instructions"]): t for t in tasks if t.kind == "stateful"}
        self.calls = {t.payload["question"]: t for t in tasks if t.kind == "calls"}
        self.wrong_every = wrong_every  # 0: never wrong
        self.malformed = malformed
        self.delay_s = delay_s
        self.requests = {"agent": 0, "user": 0}

    async def chat(self, messages: list[Message], *, tools=None, params: SamplingParams = SamplingParams()) -> Completion:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        system = messages[0].content if messages and messages[0].role == "system" else ""
        role = "user" if system.startswith(GUIDELINES) else "agent"
        self.requests[role] += 1
        text = self._user(messages, system) if role == "user" else self._agent(messages, params.seed)
        return Completion(text=text, finish_reason="stop", prompt_tokens=10 * len(messages), completion_tokens=len(text) // 4)

    def _wrong(self, *parts: object) -> bool:
        return bool(self.wrong_every) and _roll(*parts) % self.wrong_every == 0

    def _user(self, messages: list[Message], system: str) -> str:
        key = key_of(system[len(GUIDELINES):])
        if not any(m.role == "assistant" and m.content.startswith("TASK") for m in messages):
            return f"TASK {key}"
        return f"Thanks, that is all. {STOP_TOKEN}"

    def _agent(self, messages: list[Message], seed: int | None) -> str:
        if messages[0].content == prompts.CALLS_SYSTEM:
            task = self.calls[messages[1].content]
            calls = [(c["name"], {k: v[0] for k, v in c["arguments"].items() if v[0] is not None})
                     for c in task.payload["expected_calls"]]
            if self._wrong(messages[1].content, seed):
                calls = calls[:-1] if len(calls) > 1 else calls + calls  # a missing or a duplicate call
            return "\n".join(call_text(n, a) for n, a in calls)
        named = [i for i, m in enumerate(messages) if m.role == "user" and m.content.startswith("TASK ")]
        if not named:
            return "Hello! How can I help you today?"
        task = self.stateful[messages[named[-1]].content.split()[1]]
        after = messages[named[-1]:]
        actions = task.payload["expected_actions"]
        # Expected actions may fail on purpose (a wrong id the user gave): count calls made, not successes.
        done = sum(1 for m in after if m.role == "assistant" and m.tool_calls) - (1 if self.malformed and actions else 0)
        if self.malformed and not any(m.role == "tool" for m in after) and actions:
            return call_text(actions[0]["name"], {**actions[0]["arguments"], "bogus_argument": [1, 2]})
        if done < len(actions):
            action = actions[done]
            is_last_write = action["name"] in WRITE_TOOLS and not any(a["name"] in WRITE_TOOLS for a in actions[done + 1:])
            if not (is_last_write and self._wrong(task.id, seed)):
                return "Let me do that.\n" + call_text(action["name"], action["arguments"])
        info = " ".join(task.payload["communicate_info"])
        return f"All done. {info}".strip()

    async def close(self) -> None:
        return None
