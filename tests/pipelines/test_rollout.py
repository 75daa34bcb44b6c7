"""TaskRunner: the run's sampling settings reach the engine, seeded."""

from __future__ import annotations

import asyncio

from pipelines.config import RunConfig
from pipelines.rollout import TaskRunner, settings_from_config
from schemas import Task, Verdict
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


async def test_blocking_work_runs_on_the_runners_own_threads_in_the_tasks_context():
    import threading

    from pipelines.worker import _current_image

    cfg = RunConfig(domain="math")
    runner = TaskRunner(FakeEngine(["x"]), get_domain("math"), lambda kind: Passes(), settings_from_config(cfg),
                        concurrency=40)
    assert runner._threads._max_workers >= 40  # more than asyncio's default cpu+4
    _current_image.set("project-image")
    seen = await runner._in_thread(lambda: (_current_image.get(), threading.current_thread().name))
    assert seen[0] == "project-image" and seen[1].startswith("trajforge-rollout")
