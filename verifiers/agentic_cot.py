"""Agentic-CoT verifier: the five-phase structure AND the underlying task's verdict.

The structure check is the format's contract (``schemas.agentic_cot``, shared
with the synthesizer that builds the phases). The underlying
task (``payload.underlying``) is judged by its own domain's verifier on the
conversation followed by the summary as one more assistant turn: the answer
must be *stated in the summary*, not somewhere earlier, while the phases stay
in view (the math verifier checks their arithmetic). Tool calls stay in place
(tool-use verifiers judge the calls that were made).

How strict the structure check is comes from the constructor: ``allow_stray``
(text outside the tags) and ``allow_repeats`` (a phase restating another), the
domain's options of those names through ``pipelines.worker.make_verifier``;
``underlying_options`` gives the underlying verifiers their keywords, per
underlying domain (e.g. a deep-research pass mark). A ``structure`` key in the
payload, which older stores and verify rows may carry, is ignored.

``trajforge verify`` rows: ``{"domain": "agentic-cot", "task": {"underlying":
{"domain": "math", "kind": "default", "payload": {"question", "answer"}}},
"messages": [...]}``.
"""

from __future__ import annotations

import re

from typing import Any

from sandboxes.base import Sandbox
from schemas import Message, Task, Verdict, messages_from_openai
from schemas.agentic_cot import check_structure

# What an answer looks like in a summary, per underlying domain (a cheap check
# before the underlying verifier runs; that verifier has the last word).
_ANSWER_MARKERS = {
    "math": re.compile(r"\\(?:boxed|fbox)\s*\{"),
    "code": re.compile(r"```python"),
    "deep-research": re.compile(r"(?im)^\s*final answer\s*:"),
}


class AgenticCoTVerifier:
    domain = "agentic-cot"
    needs_sandbox = False

    def __init__(self, allow_stray: bool = False, allow_repeats: bool = False,
                 underlying_options: dict[str, dict[str, Any]] | None = None):
        for key, value in (("allow_stray", allow_stray), ("allow_repeats", allow_repeats)):
            if not isinstance(value, bool):
                raise ValueError(f"agentic-cot {key} must be true or false, not {value!r}")
        underlying = dict(underlying_options or {})
        if not all(isinstance(k, str) and isinstance(v, dict) for k, v in underlying.items()):
            raise ValueError("agentic-cot underlying_options must map a domain name to its verifier keywords")
        self.allow_stray = allow_stray
        self.allow_repeats = allow_repeats
        self.underlying_options = underlying

    def verify(self, task: Task, messages: list[Message], sandbox: Sandbox | None = None) -> Verdict:
        try:
            return self._verify(task, messages, sandbox)
        except Exception as exc:  # the contract: a verdict, never an exception
            return Verdict(passed=False, score=0.0, reason=f"verifier error: {type(exc).__name__}: {exc}")

    def _verify(self, task: Task, messages: list[Message], sandbox: Sandbox | None) -> Verdict:
        from verifiers.registry import get_verifier

        raw = task.payload.get("underlying")
        if not isinstance(raw, dict):
            return Verdict(passed=False, reason="task has no underlying task to verify against")
        inner = Task.model_validate({"id": f"{task.id}:underlying", **raw})  # verify rows may omit the id
        marker = _ANSWER_MARKERS.get(inner.domain)
        report = check_structure(
            messages,
            answer_check=(lambda s: bool(marker.search(s))) if marker else None,
            allow_stray=self.allow_stray,
            allow_repeats=self.allow_repeats,
        )
        if not report.ok:
            return Verdict(passed=False, score=0.0, reason=f"structure: {report.reason}")
        verifier = get_verifier(inner.domain, inner.kind, options=self.underlying_options.get(inner.domain))
        if verifier.needs_sandbox and sandbox is None:
            return Verdict(passed=False, reason=f"structure ok; {inner.domain} verifier needs a sandbox and got none")
        verdict = verifier.verify(inner, self._judged(task, messages, report.summary or ""), sandbox)
        return Verdict(
            passed=verdict.passed,
            score=verdict.score,
            reason=f"structure ok; {inner.domain}: {verdict.reason}",
        )

    @staticmethod
    def _judged(task: Task, messages: list[Message], summary: str) -> list[Message]:
        """What the underlying verifier reads: the conversation with the summary appended as the
        last word (where the answer must be stated; the phases stay in view as the turn before,
        so the math verifier also checks their arithmetic). A rewrite of a stored trajectory is
        judged on the original conversation (its tool results are the evidence, e.g. the
        documents a deep-research run retrieved), then the phases, then the summary."""
        source = task.payload.get("source_messages")
        if task.payload.get("mode") == "rewrite" and source:
            phases = next((m.content for m in reversed(messages) if m.role == "assistant"), "")
            base = messages_from_openai(source) + [Message(role="assistant", content=phases)]
        else:
            base = [m.model_copy(deep=True) for m in messages]
        return base + [Message(role="assistant", content=summary)]


class SandboxedAgenticCoTVerifier(AgenticCoTVerifier):
    """The same, for underlying verifiers that run code (the runner lends a sandbox)."""

    needs_sandbox = True
