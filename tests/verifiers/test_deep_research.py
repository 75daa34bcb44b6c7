"""Deep-research verifier: answers vs gold + aliases (EM / token F1) and the
evidence-citation check, on good, wrong and adversarial trajectories, and the
`trajforge verify` path for deep-research rows."""

from __future__ import annotations

import json

import pytest

from pipelines.verify_cmd import verify_file
from schemas import Message, Task, ToolCall
from verifiers.deep_research import DeepResearchVerifier, final_answer, token_f1
from verifiers.registry import get_verifier, infer_kind

PAYLOAD = {
    "question": "Which mountain range in Eurasia is mentioned in the summary of the continent named by Yugoslavia?",
    "answer": "Ural Mountains",
    "aliases": ["the Urals"],
    "evidence_doc_ids": ["d09967", "d02954"],
    "answer_doc_ids": ["d02954"],
}
TASK = Task(id="t1", domain="deep-research", payload=PAYLOAD)


def trajectory(answer, citations, seen=("d02954",), as_text=False):
    msgs = [
        Message(role="system", content="s"),
        Message(role="user", content=PAYLOAD["question"]),
        Message(role="assistant", tool_calls=[ToolCall.make("c1", "search", {"query": "Yugoslavia"})]),
        Message(role="tool", tool_call_id="c1", name="search", content="\n".join(f"[{d}] Some title\n    snippet" for d in seen)),
    ]
    if as_text:
        msgs.append(Message(role="assistant", content=f"Final answer: {answer}\nCitations: {', '.join(citations)}"))
    else:
        msgs.append(Message(role="assistant", tool_calls=[ToolCall.make("c2", "answer", {"answer": answer, "citations": citations})]))
    return msgs


V = DeepResearchVerifier()


def test_registered_for_trajforge_verify():
    assert infer_kind("deep-research", PAYLOAD) == "default"
    assert isinstance(get_verifier("deep-research"), DeepResearchVerifier)


@pytest.mark.parametrize("answer", ["Ural Mountains", "the ural mountains.", "The Urals"])
def test_correct_answer_with_evidence_passes(answer):
    verdict = V.verify(TASK, trajectory(answer, ["d02954", "d09967"]))
    assert verdict.passed and verdict.score == 1.0, verdict.reason


def test_text_final_answer_is_accepted_too():
    assert V.verify(TASK, trajectory("Ural Mountains", ["[d02954]"], as_text=True)).passed


def test_right_answer_without_evidence_fails():
    verdict = V.verify(TASK, trajectory("Ural Mountains", ["d09967"]))  # cites only the bridge document
    assert not verdict.passed and verdict.score == 1.0 and "cites none of the evidence" in verdict.reason
    assert not V.verify(TASK, trajectory("Ural Mountains", [])).passed


def test_citing_a_document_never_retrieved_fails():
    verdict = V.verify(TASK, trajectory("Ural Mountains", ["d02954"], seen=("d09967",)))
    assert not verdict.passed and "never retrieved" in verdict.reason
    lax = DeepResearchVerifier(require_retrieved=False)
    assert lax.verify(TASK, trajectory("Ural Mountains", ["d02954"], seen=("d09967",))).passed


def test_wrong_answer_fails_even_with_evidence():
    verdict = V.verify(TASK, trajectory("Alps", ["d02954"]))
    assert not verdict.passed and verdict.score == 0.0 and "wrong answer" in verdict.reason


def test_partial_answers_are_scored_by_f1_against_the_threshold():
    partial = trajectory("Ural", ["d02954"])  # F1 = 2/3
    verdict = V.verify(TASK, partial)
    assert not verdict.passed and verdict.score == pytest.approx(2 / 3)
    assert DeepResearchVerifier(threshold=0.6).verify(TASK, partial).passed  # 0.6 <= 2/3 < 0.8
    assert not DeepResearchVerifier(threshold=0.7).verify(TASK, partial).passed


def test_payload_keys_of_older_stores_are_ignored():
    """Older stores put the domain's judging options in each payload; the constructor decides now."""
    old = Task(id="t4", domain="deep-research", payload={**PAYLOAD, "f1_threshold": 0.6, "require_retrieved": False})
    partial, unseen = trajectory("Ural", ["d02954"]), trajectory("Ural Mountains", ["d02954"], seen=("d09967",))
    assert not V.verify(old, partial).passed and not V.verify(old, unseen).passed
    assert DeepResearchVerifier(threshold=0.6).verify(old, partial).passed


@pytest.mark.parametrize("kwargs, needle", [
    ({"threshold": 80}, "threshold must be a number from 0 to 1"),
    ({"threshold": "high"}, "threshold must be a number"),
    ({"require_retrieved": "no"}, "require_retrieved must be true or false"),
])
def test_bad_constructor_options_are_refused(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        DeepResearchVerifier(**kwargs)


@pytest.mark.parametrize(
    "messages, reason",
    [
        ([Message(role="assistant", content="I think it is the Ural Mountains")], "no final answer"),
        ([Message(role="assistant", tool_calls=[ToolCall(id="x", function={"name": "answer", "arguments": "{not json"})])], "no final answer"),
        (trajectory("Ural Mountains " + "and also the Alps, Andes, Himalayas " * 20, ["d02954"]), "at most"),
        (trajectory("Alps Andes Himalayas Rockies Ural Mountains Atlas Pyrenees", ["d02954"]), "wrong answer"),
    ],
)
def test_adversarial_answers_fail(messages, reason):
    verdict = V.verify(TASK, messages)
    assert not verdict.passed and reason in verdict.reason


def test_answer_in_user_or_tool_text_does_not_count():
    msgs = trajectory("Alps", ["d02954"])
    msgs.insert(2, Message(role="user", content="Final answer: Ural Mountains"))
    assert final_answer(msgs)[0] == "Alps"
    assert not V.verify(TASK, msgs).passed


def test_optional_judge_rescues_paraphrases_but_not_missing_citations():
    judge = lambda q, golds, pred: pred == "mountains between Europe and Asia"  # noqa: E731
    v = DeepResearchVerifier(judge=judge)
    assert v.verify(TASK, trajectory("mountains between Europe and Asia", ["d02954"])).passed
    assert not v.verify(TASK, trajectory("mountains between Europe and Asia", ["d09967"])).passed
    assert not V.verify(TASK, trajectory("mountains between Europe and Asia", ["d02954"])).passed


def test_token_f1():
    assert token_f1("the Ural Mountains", "Ural Mountains") == 1.0
    assert token_f1("", "x") == 0.0 and token_f1("Paris", "London") == 0.0


def test_trajforge_verify_reads_deep_research_rows(tmp_path):
    rows = [
        {"id": "good", "domain": "deep-research", "task": PAYLOAD, "messages": [m.to_openai() for m in trajectory("Ural Mountains", ["d02954"])]},
        {"id": "noev", "domain": "deep-research", "task": PAYLOAD, "messages": [m.to_openai() for m in trajectory("Ural Mountains", ["d1"])]},
        {"id": "wrong", "domain": "deep-research", "task": PAYLOAD, "messages": [m.to_openai() for m in trajectory("Alps", ["d02954"])]},
    ]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    summary = verify_file(src, out)
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in results] == ["good", "noev", "wrong"]
    assert [r["passed"] for r in results] == [True, False, False] and summary.passed == 1
