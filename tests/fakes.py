"""Small deterministic stand-ins for unit and pipeline-logic tests.

``ScriptedEngine`` satisfies the ``LLMEngine`` Protocol without a model: its
reply is a pure function of (conversation length, seed), so two runs with the
same seeds produce identical trajectories — what the resume test needs to
compare a killed-and-resumed run with an uninterrupted one. Pipelines load it
through the engine factory's ``python:tests.fakes:ScriptedEngine`` extension point.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from schemas import Message
from synthesizers.engines.base import Completion, SamplingParams


def _h(*parts: object) -> int:
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16)


class ScriptedEngine:
    def __init__(self, delay_s: float = 0.0, closed_marker: str | None = None, **_: Any):
        self.model_id = "scripted"
        self.delay_s = float(delay_s)
        self.closed_marker = closed_marker  # a file written by close(): the engine was shut down cleanly
        self.calls = 0

    async def chat(self, messages: list[Message], *, tools=None, params: SamplingParams = SamplingParams()) -> Completion:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        question = next((m.content for m in messages if m.role == "user"), "")
        numbers = [int(n) for n in re.findall(r"-?\d+", question)][:2]
        roll = _h(len(messages), params.seed, question)
        used_tool = any(m.role == "tool" for m in messages)
        if tools and not used_tool and roll % 2 == 0:
            code = f"print({numbers[0] if numbers else 1} + {numbers[1] if len(numbers) > 1 else 1})"
            text = 'Let me compute.\n<tool_call>{"name": "python", "arguments": ' + json.dumps({"code": code}) + "}</tool_call>"
        else:
            guess = sum(numbers) if roll % 3 == 0 else roll % 97
            text = f"The result is \\boxed{{{guess}}}."
        return Completion(text=text, finish_reason="stop", prompt_tokens=10 * len(messages), completion_tokens=len(text) // 4)

    async def close(self) -> None:
        if self.closed_marker:
            Path(self.closed_marker).write_text("closed")


@dataclass
class FakeEngine:
    """Replies from a script: a list of texts/Completions (the last repeats), or a function of the
    conversation; ``seen`` records each request's (messages, params)."""

    script: list[Any] | Callable[[list[Message]], Any]
    delay_s: float = 0.0
    model_id: str = "fake"
    prompt_tokens: int = 10
    completion_tokens: int = 5
    seen: list[tuple[list[Message], SamplingParams]] = field(default_factory=list)
    call_times: list[float] = field(default_factory=list)

    async def chat(self, messages, *, tools=None, params=SamplingParams()):
        self.seen.append((list(messages), params))
        self.call_times.append(time.perf_counter())
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if callable(self.script):
            reply = self.script(messages)
        else:
            reply = self.script[min(len(self.seen) - 1, len(self.script) - 1)]
        if isinstance(reply, Completion):
            return reply
        return Completion(text=reply, finish_reason="stop", prompt_tokens=self.prompt_tokens,
                          completion_tokens=self.completion_tokens)

    async def close(self):
        return None


class TokenFakeEngine:
    """A ``TokenEngine`` without a model: ``script`` gives each turn's text (a list, the last
    repeating, or a function of the decoded prompt); the "sampled" ids are the text's
    encoding plus the end-of-turn token (``end=False`` leaves it out, as a length cut
    would), each with logprob ``-0.25``. ``prompts`` records every prompt's ids."""

    def __init__(self, tokenizer: Any, script: list[str] | Callable[[str], str], end: bool = True,
                 finish_reason: str = "stop"):
        self.model_id = "token-fake"
        self.tokenizer = tokenizer
        self.token_exact = True
        self.script = script
        self.end = end
        self.finish_reason = finish_reason
        self.prompts: list[list[int]] = []
        self.params: list[SamplingParams] = []

    async def generate(self, prompt_ids: list[int], params: SamplingParams = SamplingParams()) -> Completion:
        self.prompts.append(list(prompt_ids))
        self.params.append(params)
        if callable(self.script):
            text = self.script(self.tokenizer.decode(prompt_ids, skip_special_tokens=False))
        else:
            text = self.script[min(len(self.prompts) - 1, len(self.script) - 1)]
        ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        if self.end:
            ids.append(self.tokenizer.eos_token_id)
        return Completion(text=text, finish_reason=self.finish_reason, prompt_tokens=len(prompt_ids),
                          completion_tokens=len(ids), prompt_ids=list(prompt_ids), output_ids=ids,
                          output_logprobs=[-0.25] * len(ids))

    async def chat(self, messages, *, tools=None, params=SamplingParams()):
        raise AssertionError("a token engine's rollout must not call chat")

    async def close(self):
        return None


class ScriptedTokenEngine(TokenFakeEngine):
    """``ScriptedEngine``'s replies, token-in/token-out, with the embedded model's tokenizer (for
    pipeline tests through ``python:tests.fakes:ScriptedTokenEngine``)."""

    def __init__(self, **_: Any):
        from synthesizers.engines.model_store import ensure_embedded_model
        from transformers import AutoTokenizer

        super().__init__(AutoTokenizer.from_pretrained(str(ensure_embedded_model())), self._reply)
        self.model_id = "scripted-tokens"
        self._seed: int | None = None

    async def generate(self, prompt_ids: list[int], params: SamplingParams = SamplingParams()) -> Completion:
        self._seed = params.seed
        return await super().generate(prompt_ids, params)

    def _reply(self, prompt: str) -> str:
        turns = prompt.count("<|im_start|>") - 1  # the conversation's messages, as ScriptedEngine counts them
        users = re.findall(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", prompt, re.DOTALL)
        question = next((u for u in users if not u.startswith("<tool_response>")), "")
        numbers = [int(n) for n in re.findall(r"-?\d+", question)][:2]
        roll = _h(turns, self._seed, question)
        guess = sum(numbers) if roll % 3 == 0 else roll % 97
        if prompt.endswith("\\boxed{"):  # answer forcing opened the box: the model fills it in
            return f"{guess}}}$."
        if roll % 4 == 1:  # a turn that boxes nothing: the math domain forces an answer after it
            return "Let me think about it."
        if "<tools>" in prompt and "<tool_response>" not in prompt and roll % 2 == 0:
            code = f"print({numbers[0] if numbers else 1} + {numbers[1] if len(numbers) > 1 else 1})"
            return 'Let me compute.\n<tool_call>{"name": "python", "arguments": ' + json.dumps({"code": code}) + "}</tool_call>"
        return f"The result is \\boxed{{{guess}}}."


class FlakyScriptedEngine(ScriptedEngine):
    """``ScriptedEngine`` behind an overloaded server: the first time it sees a request (the same
    conversation length, seed and question) it answers HTTP 503; asked again, as the scripted
    engine. Same seeds, so a run that retries what failed ends as a run that never failed."""

    def __init__(self, **opts: Any):
        super().__init__(**opts)
        self.model_id = "scripted"
        self._seen: set[tuple] = set()
        self.failures = 0

    async def chat(self, messages: list[Message], *, tools=None, params: SamplingParams = SamplingParams()) -> Completion:
        key = (len(messages), params.seed, next((m.content for m in messages if m.role == "user"), ""))
        if key not in self._seen:
            self._seen.add(key)
            self.failures += 1
            return Completion(finish_reason="error", error="HTTP 503: server overloaded")
        return await super().chat(messages, tools=tools, params=params)
