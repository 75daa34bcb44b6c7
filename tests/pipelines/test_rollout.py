"""TaskRunner: the run's sampling settings reach the engine, seeded; each rollout's boxes come from
the pool of its spec's image."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from pipelines.config import RunConfig
from pipelines.rollout import TaskRunner, settings_from_config
from schemas import Message, Task, Verdict
from synthesizers.domains.base import Domain
from synthesizers.domains.registry import get_domain
from tests.fakes import FakeEngine


class Passes:
    domain, needs_sandbox = "math", False

    def verify(self, task, messages, sandbox=None):
        return Verdict(passed=True, score=1.0, reason="ok")


def test_sampling_settings_and_the_seed_reach_the_engine():
    cfg = RunConfig(domain="math", sampling={"temperature": 0.3, "max_tokens": 77, "stop": ["\n\n"],
                                             "presence_penalty": 0.4, "repetition_penalty": 1.2})
    engine = FakeEngine(["The answer is \\boxed{4}."])
    runner = TaskRunner(engine, get_domain("math"), lambda kind: Passes(), settings_from_config(cfg))
    task = Task(id="t1", domain="math", payload={"question": "2 + 2?", "answer": "4"})
    [trajectory] = asyncio.run(runner.run_task(task))
    assert trajectory.verdict.passed
    [(_, params)] = engine.seen
    assert (params.temperature, params.max_tokens, params.stop) == (0.3, 77, ("\n\n",))
    assert (params.presence_penalty, params.frequency_penalty, params.repetition_penalty) == (0.4, 0.0, 1.2)
    assert params.seed is not None  # the agent loop derives each turn's seed from the rollout's


async def test_blocking_work_runs_on_the_runners_own_threads():
    import threading

    cfg = RunConfig(domain="math")
    runner = TaskRunner(FakeEngine(["x"]), get_domain("math"), lambda kind: Passes(), settings_from_config(cfg),
                        concurrency=40)
    assert runner._threads._max_workers >= 40  # more than asyncio's default cpu+4
    assert (await runner._in_thread(lambda: threading.current_thread().name)).startswith("trajforge-rollout")


class _BoxPool:
    """A pool whose boxes say which image they are of."""

    def __init__(self, image: str):
        self.image, self.handed = image, 0

    @contextlib.contextmanager
    def acquire(self):
        self.handed += 1
        yield f"box-of-{self.image}"

    def close(self):
        pass


class _WhereTool:
    name, needs_sandbox = "where", True
    schema = {"type": "function", "function": {"name": "where", "parameters": {"type": "object", "properties": {}}}}

    def run(self, arguments, ctx):
        return f"in {ctx.sandbox}"


def _image_domain(scope: str):
    """Tasks name their own image (``payload["image"]``, None: the base image)."""

    class Images(Domain):
        name, needs_sandbox, sandbox_scope = "images", True, scope

        def seed_tasks(self, *, limit, seed):
            return iter(())

        def initial_messages(self, task):
            return [Message(role="user", content="Where are you?")]

        def tools(self, task):
            return [_WhereTool()]

        def sandbox_image(self, task):
            return task.payload["image"]

        def is_final(self, message):
            return message.role == "assistant" and not message.tool_calls

    return Images()


class _BoxVerifier:
    """Fails every rollout (so each branches) and records the box it judged in."""

    domain, needs_sandbox = "images", True

    def __init__(self):
        self.boxes: dict[str, list[str]] = {}

    def verify(self, task, messages, sandbox=None):
        self.boxes.setdefault(task.id, []).append(sandbox)
        return Verdict(passed=False, reason="never")


@pytest.mark.parametrize("scope", ["rollout", "call"])
async def test_each_tasks_tools_and_verifier_get_boxes_from_its_own_images_pool(scope):
    from pipelines.worker import ImagePools

    made: dict[str, _BoxPool] = {}
    pools = ImagePools(lambda: "base", lambda image: made.setdefault(image, _BoxPool(image)))

    def script(messages):
        if not any(m.role == "tool" for m in messages):
            return '<tool_call>{"name": "where", "arguments": {}}</tool_call>'
        return "Done."

    cfg = RunConfig(domain="math", branching={"enabled": True, "k": 1})
    verifier = _BoxVerifier()
    runner = TaskRunner(FakeEngine(script), _image_domain(scope), lambda kind: verifier, settings_from_config(cfg),
                        pools=pools.pool_for)
    tasks = [Task(id=i, domain="images", payload={"image": image})
             for i, image in (("a", "img-a"), ("b", "img-b"), ("base", None))]
    results = await asyncio.gather(*(runner.run_task(t) for t in tasks))
    expected = {"a": "img-a", "b": "img-b", "base": "base"}
    for task, trajectories in zip(tasks, results):
        assert len(trajectories) == 2  # the original and its branch
        for traj in trajectories:
            observations = [m.content for m in traj.messages if m.role == "tool"]
            assert observations == [f"in box-of-{expected[task.id]}"], (task.id, traj.messages)
        assert verifier.boxes[task.id] == [f"box-of-{expected[task.id]}"] * 2
    assert sorted(made) == ["base", "img-a", "img-b"]


async def test_a_run_without_pools_rolls_out_with_no_sandbox():
    cfg = RunConfig(domain="math", branching={"enabled": False})

    class NoBox(_BoxVerifier):
        needs_sandbox = False

    verifier = NoBox()
    engine = FakeEngine(['<tool_call>{"name": "where", "arguments": {}}</tool_call>', "Done."])
    runner = TaskRunner(engine, _image_domain("rollout"), lambda kind: verifier, settings_from_config(cfg))
    [traj] = await runner.run_task(Task(id="a", domain="images", payload={"image": "img-a"}))
    assert [m.content for m in traj.messages if m.role == "tool"] == ["in None"]
    assert verifier.boxes == {"a": [None]}


async def test_a_pass_the_budget_cut_short_fails_and_branches_and_a_finished_one_passes():
    # The verifier passes everything; this agent calls a tool every turn and never answers, so the
    # turn budget ends each of its rollouts: none may pass, and each failure branches as any does.
    cfg = RunConfig(domain="math", agent={"max_turns": 2}, branching={"enabled": True, "k": 1})
    looping = FakeEngine(lambda messages: '<tool_call>{"name": "where", "arguments": {}}</tool_call>')
    runner = TaskRunner(looping, _image_domain("rollout"), lambda kind: Passes(), settings_from_config(cfg))
    trajectories = await runner.run_task(Task(id="a", domain="images", payload={"image": None}))
    assert len(trajectories) == 2 and trajectories[1].parent_id == trajectories[0].id
    for traj in trajectories:
        assert traj.stop_reason == "max_turns" and not traj.verdict.passed and traj.verdict.cause == "model"
        assert traj.verdict.reason == "ok, but the rollout did not finish (stopped by max_turns)"
    answering = FakeEngine(['<tool_call>{"name": "where", "arguments": {}}</tool_call>', "Done."])
    runner = TaskRunner(answering, _image_domain("rollout"), lambda kind: Passes(), settings_from_config(cfg))
    [finished] = await runner.run_task(Task(id="a", domain="images", payload={"image": None}))
    assert finished.stop_reason == "final_answer" and finished.verdict.passed
