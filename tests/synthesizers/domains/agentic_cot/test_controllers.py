"""Phase-by-phase Agentic-CoT generation: the loop writes the tags (first-turn prefix,
stop strings, assistant continuations from the PhaseStepper), the model each phase's body.

The fake engine honours ``assistant_prefix`` and ``stop`` the way vLLM does (the prefix
is returned with the text; the text is cut before the first stop string, which is left
out), so these tests check the protocol, not a model."""

from __future__ import annotations

import asyncio

import pytest

from schemas import Message, Task
from schemas.agentic_cot import check_structure
from synthesizers.agent_loop import run_agent
from synthesizers.domains.agentic_cot import AgenticCoTDomain
from synthesizers.domains.agentic_cot.controllers import STOPS, PhaseStepper, open_phase, phase_fields
from synthesizers.domains.base import DomainOptionsError, ToolContext
from synthesizers.engines.base import Completion, SamplingParams
from verifiers.registry import get_verifier

BODIES = {"analysis": "We need 17 + 25.", "plan": "Add, then check.", "action": "17 + 25 = 42.",
          "reflection": "42 - 25 = 17: right.", "summary": "The sum is \\boxed{42}.</summary>"}


class PhaseModel:
    """Writes the body of the phase its prompt ends in, then runs on into the next tag
    (as a model would) — the stop strings must cut it there. ``bodies`` overrides."""

    model_id = "phase-model"

    def __init__(self, bodies=None):
        self.bodies = {**BODIES, **(bodies or {})}
        self.prefixes: list[str] = []

    async def chat(self, messages, *, tools=None, params: SamplingParams = SamplingParams()) -> Completion:
        self.prefixes.append(params.assistant_prefix)
        name, _ = open_phase(params.assistant_prefix)
        generated = (self.bodies[name] + f"\n</{name}>\n<plan>more" if name and name != "summary"
                     else self.bodies.get(name, ""))  # nothing open: end of turn
        cuts = [i for i in (generated.find(s) for s in params.stop) if i >= 0]
        text = generated[: min(cuts)] if cuts else generated
        return Completion(text=params.assistant_prefix + text, finish_reason="stop", prompt_tokens=50, completion_tokens=len(text) // 4)

    async def close(self):
        return None


def phased(**options) -> tuple[AgenticCoTDomain, Task]:
    """A domain built with these options, and its first task."""
    spec = {"sources": [{"mode": "direct", "domain": "math", "options": {"sources": ["generator"]}}], **options}
    domain = AgenticCoTDomain(spec)
    return domain, next(iter(domain.seed_tasks(limit=1, seed=0)))


def roll(domain: AgenticCoTDomain, task: Task, engine) -> list[Message]:
    params = SamplingParams(seed=1)
    result = asyncio.run(run_agent(engine, domain.initial_messages(task), [], ctx=ToolContext(task=task),
                                   params=params, is_final=domain.is_final, controller=domain.controller(task)))
    return result


def test_phased_rollout_builds_one_five_phase_message():
    domain, task = phased()
    assert domain.options.phased and "generation" not in task.payload  # a rollout setting, not task data
    engine = PhaseModel()
    result = roll(domain, task, engine)
    assert result.stop_reason == "final_answer" and result.turns == 5
    assert engine.prefixes[0] == "<analysis>"  # the first turn starts inside the analysis
    (answer,) = [m for m in result.messages if m.role == "assistant"]
    report = check_structure(result.messages)
    assert report.ok, report.reason
    assert report.sequence == ["analysis", "plan", "action", "reflection", "summary"]
    assert [p.content for p in report.phases] == [BODIES[n].replace("</summary>", "") for n in report.sequence]
    assert "more" not in answer.content  # what ran past the next tag was cut by the stop strings


def test_phased_rollout_is_judged_by_the_unchanged_verifier():
    domain, task = phased()
    inner = AgenticCoTDomain.underlying(task)
    right = f"So \\boxed{{{inner.payload['answer']}}}.</summary>"
    verifier = get_verifier("agentic-cot", "default")
    ok = verifier.verify(task, roll(domain, task, PhaseModel({"summary": right})).messages)
    wrong = verifier.verify(task, roll(domain, task, PhaseModel({"summary": "So \\boxed{-1}.</summary>"})).messages)
    unboxed = verifier.verify(task, roll(domain, task, PhaseModel({"summary": "It is done.</summary>"})).messages)
    assert ok.passed, ok.reason
    assert not wrong.passed and wrong.reason.startswith("structure ok; math")
    assert not unboxed.passed and "summary" in unboxed.reason


def test_an_empty_phase_ends_the_rollout_and_fails():
    domain, task = phased()
    result = roll(domain, task, PhaseModel({"plan": ""}))
    assert result.stop_reason == "controller_ended" and result.turns == 3  # one retry with its line break
    assert not check_structure(result.messages).ok


def test_summary_left_open_is_closed_once_and_opener_is_used():
    domain, task = phased(summary_opener="The final answer is \\boxed{")
    engine = PhaseModel({"summary": "42}."})  # stops (EOS) without closing the summary
    result = roll(domain, task, engine)
    assert result.stop_reason == "final_answer" and result.turns == 6
    assert engine.prefixes[4].endswith("</reflection>\n<summary>The final answer is \\boxed{")
    report = check_structure(result.messages)
    assert report.ok and report.summary == "The final answer is \\boxed{42}."


def test_stepper_rules():
    step = PhaseStepper().step
    a = lambda text: [Message(role="user", content="q"), Message(role="assistant", content=text)]  # noqa: E731
    assert step(a("<analysis>\nfacts")).content == "</analysis>\n<plan>"
    assert step(a("<analysis>\n  ")) is None  # empty phase
    assert step(a("<analysis>")).content == "\n"  # cut before a word: its line break back, once
    assert step(a("<analysis>")) is None  # (the loop strips the trailing break: same text again)
    assert step(a("<analysis>x</analysis>\n<plan>\np</plan>\n<action>\nrun")).content == "</action>\n<reflection>"
    assert step(a("")).content == "<analysis>"
    # after a tool call the model may start a fresh message: it continues with the reflection
    call = Message(role="assistant", content="<analysis>a</analysis><plan>p</plan><action>run",
                   tool_calls=[{"id": "c1", "function": {"name": "python", "arguments": "{}"}}])
    after = [Message(role="user", content="q"), call, Message(role="tool", content="4", tool_call_id="c1"),
             Message(role="assistant", content="")]
    assert step(after).content == "<reflection>"
    # text written outside a phase is kept (the structure check will reject it)
    after[-1] = Message(role="assistant", content="It printed 4.")
    assert step(after).content == "\n<reflection>"
    assert step(a("<analysis>a</analysis><summary>x</summary>")) is None
    limited = PhaseStepper(max_steps=1)
    assert limited.step(a("<analysis>x")) is not None and limited.step(a("<analysis>x")) is None


def test_stop_strings_and_unphased_option():
    assert "</summary>" not in STOPS and {"<plan>", "</analysis>", "<summary>"} <= set(STOPS)
    assert phase_fields()["assistant_prefix"] == "<analysis>"
    assert phase_fields(["\n", "<plan>"])["stop"] == STOPS + ("\n",)
    domain, task = phased(phased=False)
    assert domain.controller(task) is None and domain.user_simulator(task, None) is None


def test_generation_options_per_domain_and_bad_values():
    domain, task = phased(summary_opener={"math": "M:", "code": "C:"}, phase_stops=["\n"])
    assert domain.controller(task).fields["stop"][-1] == "\n"
    assert domain.controller(task).summary_opener == "M:"  # the opener of the task's own domain
    with pytest.raises(DomainOptionsError, match="agentic-cot option 'phase_stops'"):
        phased(phase_stops="\n")
    with pytest.raises(DomainOptionsError, match="agentic-cot option 'summary_opener'"):
        phased(summary_opener=["x"])
