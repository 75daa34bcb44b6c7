"""Deep-research verifier: the final answer against gold + aliases, and its citations.

The answer is read from the last assistant message that calls ``answer``
({"answer", "citations"}); a plain-text "Final answer: ..." line with a
"Citations: d00012, d00345" line is accepted too. Score = best token F1 over
gold and aliases (SQuAD normalisation); the trajectory passes when exact match
holds or F1 reaches ``threshold`` (default 0.8), **and** the citations include
a gold document that contains the answer (``answer_doc_ids``) and — unless
``require_retrieved`` is False — that document's id appeared in a tool result
of this trajectory (a model cannot cite a document it never saw).
``threshold`` and ``require_retrieved`` are constructor keywords (the domain's
``f1_threshold`` / ``require_retrieved`` options, through
``pipelines.worker.make_verifier``); payload keys of those names, which older
stores and verify rows may carry, are ignored.
An optional judge (a callable, never the default; an LLM judge comes from a run
config's ``verifier.judge``, see ``pipelines/judge.py``) may rescue a correct
answer phrased differently; it never overrides the citation check.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from typing import Callable

from sandboxes.base import Sandbox
from schemas import Message, Task, Verdict

DEFAULT_THRESHOLD = 0.8
MAX_ANSWER_CHARS = 300  # a paragraph "answer" is a hedge, not an answer
_TEXT_ANSWER = re.compile(r"(?im)^\s*final answer\s*:\s*(.+)$")
_TEXT_CITES = re.compile(r"(?im)^\s*(?:citations|sources)\s*:\s*(.+)$")
Judge = Callable[[str, list[str], str], bool]  # (question, golds, predicted) -> equivalent?


def normalize(text: str) -> str:
    """SQuAD-style: lowercase, drop punctuation and articles, squeeze spaces. (Kept in
    step with ``synthesizers.domains.deep_research.questions.normalize``; verifiers
    may not import synthesizers.)"""
    text = text.lower().replace("’", "'")
    text = "".join(ch if ch not in string.punctuation else " " for ch in text)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize(prediction).split(), normalize(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str) -> bool:
    return normalize(prediction) == normalize(gold) and bool(normalize(gold))


def final_answer(messages: list[Message]) -> tuple[str, list[str]] | None:
    """(answer, citations) from the last assistant message that gives one."""
    for message in reversed(messages):
        if message.role != "assistant":
            continue
        for call in reversed(message.tool_calls):
            if call.function.name != "answer":
                continue
            try:
                args = json.loads(call.function.arguments or "{}")
            except ValueError:
                return None
            if not isinstance(args, dict) or not isinstance(args.get("answer"), str):
                return None
            cites = args.get("citations") or []
            cites = [cites] if isinstance(cites, str) else cites
            return args["answer"], [str(c).strip().strip("[]") for c in cites if isinstance(c, (str, int))]
        text = _TEXT_ANSWER.search(message.content)
        if text and not message.tool_calls:
            found = _TEXT_CITES.search(message.content)
            cites = re.split(r"[\s,;]+", found.group(1)) if found else []
            return text.group(1).strip(), [c.strip("[]()'\"") for c in cites if c.strip("[]()'\"")]
    return None


def retrieved_ids(messages: list[Message]) -> str:
    return "\n".join(m.content for m in messages if m.role == "tool")


class DeepResearchVerifier:
    domain = "deep-research"
    needs_sandbox = False

    def __init__(self, judge: Judge | None = None, threshold: float = DEFAULT_THRESHOLD,
                 require_retrieved: bool = True):
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise ValueError(f"deep-research threshold must be a number from 0 to 1, not {threshold!r}")
        if not isinstance(require_retrieved, bool):
            raise ValueError(f"deep-research require_retrieved must be true or false, not {require_retrieved!r}")
        self.judge = judge
        self.threshold = float(threshold)
        self.require_retrieved = require_retrieved

    def verify(self, task: Task, messages: list[Message], sandbox: Sandbox | None = None) -> Verdict:
        p = task.payload
        gold = p.get("answer")
        if not isinstance(gold, str) or not gold.strip():
            return Verdict(passed=False, score=0.0, reason="task has no gold answer")
        golds = [gold, *[a for a in p.get("aliases") or [] if isinstance(a, str) and a.strip()]]
        got = final_answer(messages)
        if got is None:
            return Verdict(passed=False, score=0.0, reason="no final answer (no answer call or 'Final answer:' line)")
        answer, citations = got
        if len(answer) > MAX_ANSWER_CHARS:
            return Verdict(passed=False, score=0.0, reason=f"answer is {len(answer)} chars; at most {MAX_ANSWER_CHARS}")
        f1 = max(token_f1(answer, g) for g in golds)
        em = any(exact_match(answer, g) for g in golds)
        threshold = self.threshold
        correct, how = em or f1 >= threshold, ("exact match" if em else f"F1 {f1:.2f}")
        if not correct and self.judge is not None and self.judge(str(p.get("question", "")), golds, answer):
            correct, how = True, f"judge (F1 {f1:.2f})"
        if not correct:
            return Verdict(passed=False, score=f1, reason=f"wrong answer {answer[:80]!r} (F1 {f1:.2f} < {threshold:g}; gold {gold!r})")
        return self._check_citations(p, citations, messages, f1, how)

    def _check_citations(self, p: dict, citations: list[str], messages: list[Message], f1: float, how: str) -> Verdict:
        needed = [str(d) for d in p.get("answer_doc_ids") or p.get("evidence_doc_ids") or []]
        if not needed:
            return Verdict(passed=True, score=f1, reason=f"correct ({how}); task lists no evidence to cite")
        cited = [d for d in needed if d in set(citations)]
        if not cited:
            return Verdict(passed=False, score=f1, reason=f"correct ({how}) but cites none of the evidence {needed} (cited {citations[:5]})")
        if self.require_retrieved:
            seen = retrieved_ids(messages)
            if not any(re.search(rf"\b{re.escape(d)}\b", seen) for d in cited):
                return Verdict(passed=False, score=f1, reason=f"cites {cited} but no tool result ever showed it (never retrieved)")
        return Verdict(passed=True, score=f1, reason=f"correct ({how}), cites evidence {cited}")
