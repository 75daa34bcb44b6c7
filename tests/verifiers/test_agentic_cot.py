"""Agentic-CoT verifier: passes only when the structure passes AND the underlying
task's verifier passes on the answer the summary states."""

from __future__ import annotations

import json

import pytest

from schemas import Message, Task
from schemas.agentic_cot import render_phases
from verifiers.registry import get_verifier

PHASES = [("analysis", "Seven pencils at 3 dollars, paid with 50."), ("plan", "Cost, then change."),
          ("action", "7 * 3 = 21; 50 - 21 = 29."), ("reflection", "21 + 29 = 50, consistent."),
          ("summary", "The change is \\boxed{29} dollars.")]


def task(answer="29", domain="math"):
    inner = {"id": "m1", "domain": domain, "payload": {"question": "Maya's change?", "answer": answer}}
    return Task(id="acot-1", domain="agentic-cot", payload={"mode": "direct", "underlying": inner})


def conversation(text):
    return [Message(role="system", content="s"), Message(role="user", content="q"), Message(role="assistant", content=text)]


@pytest.fixture(scope="module")
def verifier():
    return get_verifier("agentic-cot", "default")


def test_good_structure_and_right_answer_passes(verifier):
    v = verifier.verify(task(), conversation(render_phases(PHASES)))
    assert v.passed and v.score == 1.0, v.reason
    assert v.reason.startswith("structure ok")


def test_right_structure_wrong_answer_fails(verifier):
    phases = PHASES[:-1] + [("summary", "The change is \\boxed{30} dollars.")]
    v = verifier.verify(task(), conversation(render_phases(phases)))
    assert not v.passed and v.reason.startswith("structure ok; math")


def test_rewrite_that_changes_the_answer_fails(verifier):
    rewrite = Task(id="r", domain="agentic-cot", payload={"mode": "rewrite", "source_text": "... 29",
                   "underlying": task().payload["underlying"]})
    phases = PHASES[:-1] + [("summary", "The change is \\boxed{21}.")]
    assert not verifier.verify(rewrite, conversation(render_phases(phases))).passed


def test_right_answer_bad_structure_fails(verifier):
    v = verifier.verify(task(), conversation(render_phases([PHASES[1], PHASES[0]] + PHASES[2:])))
    assert not v.passed and v.reason.startswith("structure:")


def test_answer_outside_the_summary_does_not_count(verifier):
    phases = list(PHASES)
    phases[2] = ("action", "7 * 3 = 21; 50 - 21 = \\boxed{29}.")
    phases[4] = ("summary", "That is the change.")
    v = verifier.verify(task(), conversation(render_phases(phases)))
    assert not v.passed and "does not state the final answer" in v.reason


def test_a_wrong_draft_in_an_action_is_not_judged(verifier):
    phases = list(PHASES)
    phases[2] = ("action", "First guess \\boxed{21}; then 50 - 21 = 29.")
    assert verifier.verify(task(), conversation(render_phases(phases))).passed


def test_wrong_arithmetic_in_a_phase_fails_a_math_trajectory(verifier):
    phases = list(PHASES)
    phases[2] = ("action", "Seven pencils cost 7 * 3 = 24 dollars; 50 - 21 = 29.")
    v = verifier.verify(task(), conversation(render_phases(phases)))
    assert not v.passed and "wrong arithmetic: '7 * 3 = 24' (7 * 3 is 21)" in v.reason


def test_missing_underlying_and_unknown_domain_fail_cleanly(verifier):
    assert not verifier.verify(Task(id="x", domain="agentic-cot"), conversation(render_phases(PHASES))).passed
    v = verifier.verify(task(domain="nope"), conversation(render_phases(PHASES)))
    assert not v.passed and "verifier error" in v.reason


def test_sandboxed_kind_needs_a_sandbox():
    v = get_verifier("agentic-cot", "sandboxed")
    assert v.needs_sandbox


def test_trajforge_verify_rows(tmp_path):
    from pipelines.verify_cmd import verify_file

    rows = [
        {"id": "good", "domain": "agentic-cot", "task": {"underlying": {"domain": "math", "payload": {"question": "q", "answer": "29"}}},
         "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": render_phases(PHASES)}]},
        {"id": "plain", "domain": "agentic-cot", "task": {"underlying": {"domain": "math", "payload": {"question": "q", "answer": "29"}}},
         "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "It is \\boxed{29}."}]},
    ]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    verify_file(src, out)
    verdicts = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert verdicts["good"]["passed"] and not verdicts["plain"]["passed"]


def test_rewrite_of_a_stored_trajectory_is_judged_on_the_original_evidence_plus_the_summary(verifier):
    inner = task().payload["underlying"]
    original = [{"role": "user", "content": "Maya's change?"},
                {"role": "assistant", "content": "", "tool_calls": [{"id": "c0", "function": {"name": "python", "arguments": {"code": "print(50-21)"}}}]},
                {"role": "tool", "content": "29", "tool_call_id": "c0"},
                {"role": "assistant", "content": "\\boxed{29}"}]
    rewrite = Task(id="r", domain="agentic-cot", payload={"mode": "rewrite", "source_text": "...", "underlying": inner, "source_messages": original})
    convo = [Message(role="system", content="rewrite"), Message(role="user", content="...")]
    judged = verifier._judged(rewrite, convo + [Message(role="assistant", content=render_phases(PHASES))], "S")
    assert [m.role for m in judged] == ["user", "assistant", "tool", "assistant", "assistant", "assistant"]
    assert judged[-2].content == render_phases(PHASES) and judged[-1].content == "S"  # original, phases, summary
    assert verifier.verify(rewrite, convo + [Message(role="assistant", content=render_phases(PHASES))]).passed
    wrong = PHASES[:-1] + [("summary", "\\boxed{28}")]
    # the original's correct \boxed{29} is not the last word: the summary's answer is judged
    assert not verifier.verify(rewrite, convo + [Message(role="assistant", content=render_phases(wrong))]).passed


def test_structure_rules_are_constructor_options_and_payload_keys_are_ignored():
    from verifiers.agentic_cot import AgenticCoTVerifier

    stray = conversation("Sure! " + render_phases(PHASES))
    refused = AgenticCoTVerifier().verify(task(), stray)
    assert not refused.passed and "outside the phase tags" in refused.reason
    assert AgenticCoTVerifier(allow_stray=True).verify(task(), stray).passed
    # an older store's task carries the rule in its payload: ignored, the constructor decides
    old = Task(id="acot-old", domain="agentic-cot", payload={**task().payload, "structure": {"allow_stray": True}})
    assert not AgenticCoTVerifier().verify(old, stray).passed

    repeated = list(PHASES)
    repeated[3] = ("reflection", PHASES[2][1])
    assert "word for word" in AgenticCoTVerifier().verify(task(), conversation(render_phases(repeated))).reason
    assert AgenticCoTVerifier(allow_repeats=True).verify(task(), conversation(render_phases(repeated))).passed


def test_underlying_options_reach_the_underlying_verifier():
    from verifiers.agentic_cot import AgenticCoTVerifier

    inner = {"id": "dr1", "domain": "deep-research",
             "payload": {"question": "Which range?", "answer": "Ural Mountains", "answer_doc_ids": ["d02954"]}}
    dr = Task(id="acot-dr", domain="agentic-cot", payload={"mode": "direct", "underlying": inner})
    phases = PHASES[:-1] + [("summary", "Final answer: Ural\nCitations: d02954")]  # F1 2/3, never retrieved
    convo = conversation(render_phases(phases))
    default = AgenticCoTVerifier().verify(dr, convo)
    assert not default.passed and "F1 0.67 < 0.8" in default.reason
    loose = AgenticCoTVerifier(underlying_options={"deep-research": {"threshold": 0.6, "require_retrieved": False}})
    assert loose.verify(dr, convo).passed, loose.verify(dr, convo).reason


@pytest.mark.parametrize("kwargs", [{"allow_stray": "yes"}, {"allow_repeats": 1}, {"underlying_options": {"math": 3}}])
def test_bad_constructor_options_are_refused(kwargs):
    from verifiers.agentic_cot import AgenticCoTVerifier

    with pytest.raises(ValueError, match="agentic-cot"):
        AgenticCoTVerifier(**kwargs)
