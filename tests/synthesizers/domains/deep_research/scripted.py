"""A scripted research agent for pipeline tests: it knows the gold answers (from a
JSON file the test writes) and walks search -> open -> answer with real tool
calls in Hermes text, so the real tools, service and verifier do the rest.

Deterministically, some (question, seed) pairs answer wrongly so the branching
stage has failures to re-roll; a re-roll has another seed and may succeed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from schemas import Message
from synthesizers.engines.base import Completion, SamplingParams


def _call(name: str, arguments: dict[str, Any]) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


class ResearchEngine:
    def __init__(self, answers: str, wrong_every: int = 3, cite_evidence: bool = True, **_: Any):
        self.model_id = "scripted-research"
        self.answers = json.loads(Path(answers).read_text())
        self.wrong_every = int(wrong_every)
        self.cite_evidence = bool(cite_evidence)  # False: the right answer, citing no document

    async def chat(self, messages: list[Message], *, tools=None, params: SamplingParams = SamplingParams()) -> Completion:
        question = next(m.content for m in messages if m.role == "user")
        gold = self.answers.get(question)
        turn = sum(m.role == "assistant" for m in messages)
        if gold is None:
            text = "Final answer: unknown"
        elif turn == 0:
            text = "I will search for the answer document.\n" + _call("search", {"query": gold["titles"][0], "k": 3})
        elif turn == 1:
            text = "Let me read it.\n" + _call("open", {"doc_id": gold["doc_ids"][0]})
        else:
            roll = int(hashlib.sha256(f"{question}|{params.seed}".encode()).hexdigest()[:8], 16)
            wrong = self.wrong_every and roll % self.wrong_every == 0
            answer = "no idea" if wrong else gold["answer"]
            cites = gold["doc_ids"] if self.cite_evidence else []
            text = "Done.\n" + _call("answer", {"answer": answer, "citations": cites})
        return Completion(text=text, finish_reason="stop", prompt_tokens=20 * len(messages), completion_tokens=len(text) // 4)

    async def close(self) -> None:
        return None


def answers_for(tasks) -> dict[str, Any]:
    """question -> what the scripted agent needs, from seed tasks."""
    out = {}
    for t in tasks:
        hops = {h["doc_id"]: h["title"] for h in json.loads(t.payload["hops"])}
        ids = list(t.payload["answer_doc_ids"])
        out[t.payload["question"]] = {"answer": t.payload["answer"], "doc_ids": ids, "titles": [hops[i] for i in ids]}
    return out
