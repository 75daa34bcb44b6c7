"""Math verifier: the last ``\\boxed{}`` of the last assistant message against the
task's gold answer, compared with math-verify (``parse`` + ``verify``).

Only the final assistant message counts: a box in the user prompt, a tool
output or an earlier assistant turn is never judged. Inside that message the
*last* outermost box counts (models often box a draft first). Comparisons run
in a killable worker process (see ``math_pool``) so a pathological answer
cannot hang the pipeline, from any thread. Never raises on model output.

The work must hold too (``arithmetic="reject"``, the default): a right box after
a wrong step such as ``72 / 9 = 9`` in any assistant turn fails the trajectory
(see ``verifiers.arithmetic``); ``"flag"`` only notes the wrong steps in the
reason, ``"off"`` skips the check. Run configs set it as
``verifier: {options: {arithmetic: flag}}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sandboxes.base import Sandbox
from schemas import Message, Task, Verdict
from verifiers.arithmetic import wrong_claims
from verifiers.base import last_assistant_text
from verifiers.math_pool import MathVerifyPool, VerifyTimeout, VerifyWorkerError, shared_pool

# Real answers are short; anything longer is noise (or an attempt to make sympy
# chew on something huge) and is failed without parsing.
MAX_ANSWER_CHARS = 500
ARITHMETIC_MODES = ("reject", "flag", "off")
_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)\s*\{")


@dataclass(frozen=True)
class BoxedAnswer:
    content: str | None  # None when the last box never closes
    start: int
    end: int  # index just past the closing brace (len(text) when unbalanced)


def find_boxed(text: str) -> list[BoxedAnswer]:
    """Outermost ``\\boxed{...}`` / ``\\fbox{...}`` groups in order, with nested braces.

    Escaped braces (``\\{``, ``\\}``) do not count toward balance. A box whose
    braces never close ends the scan with ``content=None``.
    """
    boxes: list[BoxedAnswer] = []
    pos = 0
    while (match := _BOX_COMMAND.search(text, pos)) is not None:
        depth, i = 1, match.end()
        while i < len(text) and depth:
            char = text[i]
            if char == "\\":
                i += 2  # skip the escaped character, e.g. \{ or \}
                continue
            depth += {"{": 1, "}": -1}.get(char, 0)
            i += 1
        if depth:
            boxes.append(BoxedAnswer(None, match.start(), len(text)))
            break
        boxes.append(BoxedAnswer(text[match.end() : i - 1], match.start(), i))
        pos = i  # continue after this box: boxes nested inside it are not "outermost"
    return boxes


def last_boxed(text: str) -> BoxedAnswer | None:
    boxes = find_boxed(text)
    return boxes[-1] if boxes else None


def clean_answer(content: str) -> str:
    """Strip what wraps an answer without changing it: ``$...$`` and boxes that span it all."""
    while True:
        stripped = content.strip().strip("$").strip()
        boxes = find_boxed(stripped)
        # \boxed{\boxed{42}} -> 42, but only when one box is the whole content
        whole = len(boxes) == 1 and (boxes[0].start, boxes[0].end) == (0, len(stripped))
        if whole and boxes[0].content is not None:
            stripped = boxes[0].content.strip()
        if stripped == content:
            return content
        content = stripped


def _show(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


class MathVerifier:
    domain = "math"
    needs_sandbox = False

    def __init__(self, timeout_s: float = 5.0, pool: MathVerifyPool | None = None,
                 arithmetic: Literal["reject", "flag", "off"] = "reject"):
        if arithmetic not in ARITHMETIC_MODES:
            raise ValueError(f"math verifier: arithmetic must be one of {', '.join(ARITHMETIC_MODES)}, "
                             f"not {arithmetic!r}")
        self.timeout_s = timeout_s
        self._pool = pool
        self.arithmetic = arithmetic

    def verify(self, task: Task, messages: list[Message], sandbox: Sandbox | None = None) -> Verdict:
        verdict = self._verify_answer(task, messages)
        if self.arithmetic == "off":
            return verdict
        try:
            wrong = [c for m in messages if m.role == "assistant" for c in wrong_claims(m.content or "")]
        except Exception as exc:  # the contract: a verdict, never an exception
            return _failed(f"verifier error in the arithmetic check: {type(exc).__name__}: {exc}")
        if not wrong:
            return verdict
        shown = "; ".join(c.explain() for c in wrong[:2]) + (f" and {len(wrong) - 2} more" if len(wrong) > 2 else "")
        reason = f"{verdict.reason}{', but' if verdict.passed else ';'} wrong arithmetic: {shown}"
        if self.arithmetic == "reject":
            return _failed(reason)
        return verdict.model_copy(update={"reason": reason})

    def _verify_answer(self, task: Task, messages: list[Message]) -> Verdict:
        try:
            return self._verify(task, messages)
        except Exception as exc:  # the contract: a verdict, never an exception
            return _failed(f"verifier error: {type(exc).__name__}: {exc}")

    def _verify(self, task: Task, messages: list[Message]) -> Verdict:
        gold_raw = task.payload.get("answer")
        if gold_raw is None or not str(gold_raw).strip():
            return _failed("task has no gold answer")
        gold = clean_answer(str(gold_raw))
        if not any(m.role == "assistant" for m in messages):
            return _failed("no assistant message")
        box = last_boxed(last_assistant_text(messages))
        if box is None:
            return _failed("no \\boxed{} answer")
        if box.content is None:
            return _failed("unbalanced braces in the last \\boxed{}")
        answer = clean_answer(box.content)
        if not answer:
            return _failed("empty \\boxed{}")
        if len(answer) > MAX_ANSWER_CHARS:
            return _failed(f"boxed answer too long ({len(answer)} chars > {MAX_ANSWER_CHARS})")
        pool = self._pool or shared_pool()
        try:
            result = pool.compare(gold, answer, self.timeout_s)
        except VerifyTimeout:
            return _failed("verify timeout")
        except VerifyWorkerError as exc:
            return _failed(f"verify worker error: {exc}")
        except ValueError as exc:
            return _failed(f"could not compare boxed {_show(answer)} with gold {_show(gold)}: {exc}")
        relation = "==" if result.passed else "!="
        reason = f"boxed {_show(answer)} {relation} gold {_show(gold)}"
        return Verdict(passed=result.passed, score=1.0 if result.passed else 0.0, reason=reason)


def _failed(reason: str) -> Verdict:
    return Verdict(passed=False, score=0.0, reason=reason)
