"""The optional LLM judge: built from a run config's ``verifier.judge``, handed to the
verifiers that take one, never the default; it rescues a paraphrase, not missing evidence."""

from __future__ import annotations

import pytest

from pipelines.config import RunConfig
from pipelines.judge import JudgeError, judge_from_config
from schemas import Message, Task, ToolCall
from synthesizers.engines.base import Completion
from verifiers.registry import UnknownTaskKind, get_verifier

PAYLOAD = {"question": "Which range separates Europe from Asia?", "answer": "Ural Mountains", "aliases": [],
           "answer_doc_ids": ["d02954"]}
TASK = Task(id="t", domain="deep-research", payload=PAYLOAD)


class ParaphraseJudgeEngine:
    """A judge model that says yes only when the proposed answer is the known paraphrase
    (and records every prompt it was asked), or fails every request."""

    prompts: list[str] = []

    def __init__(self, fail: bool = False):
        self.model_id, self.fail = "paraphrase-judge", fail

    async def chat(self, messages, *, tools=None, params=None):
        prompt = messages[-1].content
        ParaphraseJudgeEngine.prompts.append(prompt)
        if self.fail:
            return Completion(finish_reason="error", error="judge server down")
        same = "Proposed answer: the Urals range" in prompt
        return Completion(text=" Yes." if same else "No", finish_reason="stop")

    async def close(self):
        return None


def answered(answer, citations=("d02954",)):
    return [Message(role="user", content=PAYLOAD["question"]),
            Message(role="assistant", tool_calls=[ToolCall.make("c1", "search", {"query": "Urals"})]),
            Message(role="tool", tool_call_id="c1", name="search", content="[d02954] Europe\n    ..."),
            Message(role="assistant", tool_calls=[ToolCall.make("c2", "answer", {"answer": answer, "citations": list(citations)})])]


SPEC = {"model": "python:tests.pipelines.test_judge:ParaphraseJudgeEngine"}


def test_no_judge_by_default():
    assert RunConfig(domain="deep-research").verifier.judge is None
    assert judge_from_config(None) is None
    assert get_verifier("deep-research").judge is None


def test_config_judge_rescues_a_paraphrase_but_never_missing_evidence():
    cfg = RunConfig.model_validate({"domain": "deep-research", "verifier": {"judge": SPEC}})
    judge = judge_from_config(cfg.verifier.judge.model_dump())
    try:
        verifier = get_verifier("deep-research", judge=judge)
        assert not get_verifier("deep-research").verify(TASK, answered("the Urals range")).passed  # F1 alone fails
        v = verifier.verify(TASK, answered("the Urals range"))
        assert v.passed and "judge" in v.reason
        assert "Correct answer: Ural Mountains" in ParaphraseJudgeEngine.prompts[-1]
        assert not verifier.verify(TASK, answered("the Alps")).passed  # the judge says no
        assert not verifier.verify(TASK, answered("the Urals range", citations=["d00001"])).passed  # no evidence
    finally:
        judge.close()


def test_a_failing_judge_is_an_error_not_a_pass():
    judge = judge_from_config({**SPEC, "options": {"fail": True}})
    try:
        with pytest.raises(JudgeError, match="judge server down"):
            get_verifier("deep-research", judge=judge).verify(TASK, answered("the Urals range"))
    finally:
        judge.close()


def test_a_judge_for_a_verifier_that_takes_none_is_refused():
    with pytest.raises(UnknownTaskKind, match="takes no judge"):
        get_verifier("math", judge=lambda q, g, p: True)
    with pytest.raises(ValueError):
        RunConfig.model_validate({"domain": "deep-research", "verifier": {"judge": {"modle": "x"}}})


def test_the_rollout_worker_hands_the_configured_judge_to_its_verifier():
    from pipelines.worker import RolloutWorker

    config = {"domain": "deep-research", "engine": {"model": "python:tests.fakes:ScriptedEngine"},
              "verifier": {"judge": SPEC}}
    worker = RolloutWorker(config, "run-judge")
    try:
        verifier = worker._verifier_for("default")
        assert verifier.judge is worker._judge is not None
        assert verifier.verify(TASK, answered("the Urals range")).passed
    finally:
        import asyncio

        asyncio.run(worker.close())
    assert worker._judge._loop.is_closed()  # closed with the worker
