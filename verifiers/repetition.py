"""Degenerate repetition in an assistant turn: the Gopher repetition rules.

Small models loop: the embedded 135M model answers "4 times 5" with the same
code block three times and passes the math check (runs/demo). Web-scale
pre-training pipelines drop such text with the repetition rules of Gopher (Rae
et al. 2021, table A1; datatrove's ``GopherRepetitionFilter``); here they judge
each assistant turn of at least ``min_words`` words:

* duplicate lines / paragraphs, as a fraction of lines and of characters;
* the most frequent 2-, 3-, 4-gram, as a fraction of characters;
* characters inside repeated 5- to 10-grams.

Agents also loop in their calls: the same tool call, arguments unchanged, made
again and answered the same way (the state did not change, so neither did the
answer). A failed call repeated unchanged is already a loop (the model did not
read the error); any call is one by its third identical round.

``RepetitionGate`` wraps any domain verifier: a passing trajectory with a
looping turn or call fails with the rule and the turn or call in the reason (and
is re-rolled like any failure). Words are ``\\w+`` runs (datatrove's English word splitter
needs NLTK data that PyPI does not ship).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

from sandboxes.base import Sandbox
from schemas import Message, Task, Verdict
from verifiers.base import Verifier

_WORD = re.compile(r"\w+")
_LINES = re.compile(r"\n+")
_PARAGRAPHS = re.compile(r"\n{2,}")


@dataclass(frozen=True)
class RepetitionRules:
    """Thresholds (a turn breaking any one is repetitive)."""

    min_words: int = 50  # shorter turns are not judged: too little text for the fractions to mean much
    dup_line_frac: float = 0.30
    dup_para_frac: float = 0.30
    dup_line_char_frac: float = 0.20
    dup_para_char_frac: float = 0.20
    repeat_span_words: int = 10
    repeat_span_char_frac: float = 0.20
    # Identical rounds (same tool, same arguments, same observation) allowed before it is a loop.
    same_failed_call_max: int = 1
    same_call_max: int = 2


def _duplicates(items: list[str]) -> tuple[int, int]:
    """(elements seen before, their characters)."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def _repeated_ngram_chars(words: list[str], n: int) -> int:
    """Characters of n-grams seen before, a repeated n-gram consumed whole (no overlap counted twice)."""
    seen: set[str] = set()
    chars, i = 0, 0
    while i < len(words) - n + 1:
        gram = " ".join(words[i:i + n])
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


def repetition_problems(text: str, rules: RepetitionRules = RepetitionRules()) -> list[str]:
    """The rules ``text`` breaks, as ``"name 0.45 > 0.30"``; empty when it reads fine or is too short."""
    words = _WORD.findall(text)
    if len(words) < rules.min_words:
        return []
    size = max(1, len(text))
    problems: list[str] = []

    def check(name: str, value: float, limit: float) -> None:
        if value > limit:
            problems.append(f"{name} {value:.2f} > {limit:.2f}")

    for unit, splitter, frac, char_frac in (("line", _LINES, rules.dup_line_frac, rules.dup_line_char_frac),
                                             ("paragraph", _PARAGRAPHS, rules.dup_para_frac,
                                              rules.dup_para_char_frac)):
        parts = [p.strip() for p in splitter.split(text) if p.strip()]
        count, chars = _duplicates(parts)
        check(f"duplicate {unit}s", count / max(1, len(parts)), frac)
        check(f"characters in duplicate {unit}s", chars / size, char_frac)
    n = rules.repeat_span_words
    repeated = _repeated_ngram_chars([w.lower() for w in words], n)
    check(f"characters in repeated {n}-word spans", repeated / size, rules.repeat_span_char_frac)
    return problems


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), sort_keys=True)
    except ValueError:
        return arguments


def repeated_call(messages: list[Message], rules: RepetitionRules = RepetitionRules()) -> str | None:
    """The first call made more often than the rules allow with the same arguments and the same
    observation, as ``"make_dir({...}) 3 times"``; None when no call loops. A call counts as failed
    by its stored result (``Message.result``); stores without results judge every call as ``same_call``."""
    calls = {c.id: c for m in messages if m.role == "assistant" for c in m.tool_calls}
    rounds: Counter[tuple[str, str, str]] = Counter()
    for message in messages:
        call = calls.get(message.tool_call_id or "") if message.role == "tool" else None
        if call is None:
            continue
        key = (call.function.name, _canonical(call.function.arguments), message.content)
        rounds[key] += 1
        failed = message.result is not None and not message.result.ok
        limit = rules.same_failed_call_max if failed else rules.same_call_max
        if rounds[key] > limit:
            args = key[1] if len(key[1]) <= 80 else key[1][:77] + "..."
            return f"{'the failing call ' if failed else ''}{key[0]}({args}) {rounds[key]} times"
    return None


class RepetitionGate:
    """A verifier that fails, with the reason, a passing trajectory whose assistant turn or tool
    calls loop."""

    def __init__(self, inner: Verifier, rules: RepetitionRules = RepetitionRules()):
        self.inner, self.rules = inner, rules
        self.domain, self.needs_sandbox = inner.domain, inner.needs_sandbox

    def __getattr__(self, name: str):
        # Transparent for the rest (a verifier's judge, its options).
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def verify(self, task: Task, messages: list[Message], sandbox: Sandbox | None = None) -> Verdict:
        verdict = self.inner.verify(task, messages, sandbox)
        if not verdict.passed:
            return verdict
        turns = [m for m in messages if m.role == "assistant"]
        for number, message in enumerate(turns, 1):
            problems = repetition_problems(message.content or "", self.rules)
            if problems:
                where = f"assistant turn {number} of {len(turns)}"
                return Verdict(passed=False, score=0.0,
                               reason=f"{verdict.reason}, but {where} repeats itself: {'; '.join(problems[:2])}")
        looping = repeated_call(messages, self.rules)
        if looping:
            return Verdict(passed=False, score=0.0,
                           reason=f"{verdict.reason}, but it makes the same call with the same answer: {looping}")
        return verdict
