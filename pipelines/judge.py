"""An optional LLM judge for the verifiers that take one (deep research), from the run config.

Never the default: a run config opts in with

    verifier:
      judge: {model: http://judge-host:8000/v1, options: {}, max_tokens: 4}

(``model`` is any engine spec: an OpenAI-compatible URL, a model folder,
``embedded``, ``python:module:Class``). The judge only decides whether a
predicted answer means the same as a gold answer when the string match
failed; the verifier's other checks (the cited evidence) still apply.
Verifiers are synchronous and run on worker threads, so the judge keeps its
engine on one private event loop thread (an HTTP client is bound to the loop
it was made on) and waits for each answer there.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from schemas import Message
from synthesizers.engines.base import LLMEngine, SamplingParams
from synthesizers.engines.factory import make_engine

PROMPT = (
    "Question: {question}\n"
    "Correct answer: {golds}\n"
    "Proposed answer: {predicted}\n\n"
    "Does the proposed answer name the same thing as the correct answer? Reply with one word: yes or no."
)
TIMEOUT_S = 120.0


class JudgeError(RuntimeError):
    """The judge's engine failed to answer; the verification fails with this reason."""


class LLMJudge:
    """``verifiers.deep_research.Judge``: (question, golds, predicted) -> the same answer?"""

    def __init__(self, engine: LLMEngine, max_tokens: int = 4):
        self.engine = engine
        self.max_tokens = max_tokens
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="llm-judge", daemon=True)
        self._thread.start()

    def __call__(self, question: str, golds: list[str], predicted: str) -> bool:
        prompt = PROMPT.format(question=question, golds=" / ".join(golds), predicted=predicted)
        params = SamplingParams(temperature=0.0, max_tokens=self.max_tokens)
        future = asyncio.run_coroutine_threadsafe(
            self.engine.chat([Message(role="user", content=prompt)], params=params), self._loop)
        completion = future.result(timeout=TIMEOUT_S)
        if completion.error:
            raise JudgeError(f"judge engine failed: {completion.error}")
        return completion.text.strip().lower().startswith("yes")

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.engine.close(), self._loop).result(timeout=TIMEOUT_S)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()


def judge_from_config(spec: dict[str, Any] | None) -> LLMJudge | None:
    """The judge a run config's ``verifier.judge`` asks for, or None (the default)."""
    if not spec:
        return None
    return LLMJudge(make_engine(spec["model"], **dict(spec.get("options") or {})), int(spec.get("max_tokens", 4)))
