"""An infrastructure failure (engine error, a sandbox that dies under a tool, a verifier crash) is
never the model's: it is retried, never branched, never sharded, and counted apart."""

from __future__ import annotations

import pytest

from pipelines.branching import cut_point
from pipelines.config import RunConfig
from pipelines.report import build_report
from pipelines.rollout import TaskRunner, settings_from_config
from schemas import Manifest, Message, Task, Trajectory, Verdict
from synthesizers.domains.registry import get_domain
from synthesizers.engines.base import Completion
from tests.fakes import FakeEngine

TASK = Task(id="t1", domain="math", payload={"question": "2 + 2?", "answer": "4"})


class Judge:
    domain, needs_sandbox = "math", False

    def __init__(self, crash_first: int = 0):
        self.crash_first, self.calls = crash_first, 0

    def verify(self, task, messages, sandbox=None):
        self.calls += 1
        if self.calls <= self.crash_first:
            raise RuntimeError("verifier sandbox vanished")
        return Verdict(passed="\\boxed{4}" in messages[-1].content, reason="checked")


def runner(engine, judge, retries=2, branches=2):
    cfg = RunConfig(domain="math", agent={"infra_retries": retries, "assist": "none"},
                    branching={"enabled": branches > 0, "k": max(branches, 1)})
    return TaskRunner(engine, get_domain("math"), lambda kind: judge, settings_from_config(cfg))


async def test_an_engine_error_is_retried_and_then_judged_as_usual():
    engine = FakeEngine([Completion(finish_reason="error", error="HTTP 503: overloaded"), "So \\boxed{4}."])
    [t] = await runner(engine, Judge()).run_task(TASK)
    assert t.verdict.passed and t.timings.attempts == 2 and len(engine.seen) == 2


async def test_a_lasting_infrastructure_failure_is_kept_labelled_and_never_branched():
    engine = FakeEngine([Completion(finish_reason="error", error="HTTP 503: overloaded")])
    out = await runner(engine, Judge(), retries=1).run_task(TASK)
    assert len(out) == 1  # not branched
    [t] = out
    assert t.verdict.infrastructure and t.verdict.cause == "infrastructure" and "HTTP 503" in t.verdict.reason
    assert t.timings.attempts == 2 and t.stop_reason == "engine_error"
    assert cut_point(get_domain("math"), t) is None


async def test_a_verifier_crash_is_the_infrastructures_and_retried():
    judge = Judge(crash_first=1)
    [t] = await runner(FakeEngine(["So \\boxed{4}."]), judge).run_task(TASK)
    assert t.verdict.passed and t.timings.attempts == 2 and judge.calls == 2


async def test_a_sandbox_that_dies_under_a_tool_ends_the_rollout_as_infrastructure():
    from sandboxes.docker_backend import SandboxInfrastructureError
    from synthesizers.agent_loop import run_agent
    from synthesizers.domains.base import ToolContext
    from tests.synthesizers.test_agent_loop import FakeTool, call

    def dies(arguments, ctx):
        raise SandboxInfrastructureError("the sandbox runner ended (container stopped or restarted)")

    engine = FakeEngine([f"Let me run it. {call('python')}", "never asked"])
    result = await run_agent(engine, [Message(role="user", content="q")], [FakeTool("python", dies)],
                             ctx=ToolContext(task=TASK))
    assert result.stop_reason == "infrastructure_error" and "container stopped" in result.error
    assert len(engine.seen) == 1 and result.messages[-1].role == "assistant"  # the model never saw the failure


def test_the_report_counts_causes_apart_and_the_pass_rate_ignores_infrastructure():
    def traj(i, verdict, attempts=1, endpoint_retries=0):
        t = Trajectory(id=f"t{i}", task_id=f"k{i}", domain="math", messages=[], verdict=verdict)
        t.timings.attempts, t.timings.endpoint_retries = attempts, endpoint_retries
        return t

    # t1 passed although an endpoint died under one of its turns (the pool sent it elsewhere).
    ts = [traj(1, Verdict(passed=True), endpoint_retries=1), traj(2, Verdict(passed=False)),
          traj(3, Verdict(passed=False, cause="infrastructure"), attempts=3)]
    report = build_report(domain="math", tasks=3, units_total=1, units_run_now=1, trajectories=ts, removed_exact=0,
                          removed_near=0, manifest=Manifest(tokenizer_id="x"), wall_s=1, rollout_s=1,
                          completion_tokens_now=0)
    assert report.failures_by_cause == {"model": 1, "infrastructure": 1}
    assert report.pass_rate == 0.5 and report.infrastructure_retries == 3


def test_the_cause_survives_the_store(tmp_path):
    from pipelines.store import TrajectoryStore

    store = TrajectoryStore(tmp_path)
    store.write_unit("u", [Trajectory(id="a", task_id="k", domain="math", messages=[],
                                      verdict=Verdict(passed=False, reason="infrastructure: HTTP 503",
                                                      cause="infrastructure"))])
    [back] = store.read_unit("u")
    assert back.verdict.infrastructure


@pytest.mark.ray
@pytest.mark.docker
@pytest.mark.slow
def test_an_engine_failing_mid_run_moves_no_pass_rate(tmp_path):
    """The same run against a healthy engine and one that fails every request once: the retried
    run has the same trajectories, verdicts and shards; its report counts the retries."""
    from pipelines.config import load_config
    from pipelines.run import run_pipeline
    from tests.pipelines.test_run import read_store, scripted_config

    reports, stores = {}, {}
    for name, engine in (("healthy", "ScriptedEngine"), ("flaky", "FlakyScriptedEngine")):
        folder = tmp_path / name
        folder.mkdir()
        cfg = load_config(scripted_config(folder, limit=6), **{"engine.model": f"python:tests.fakes:{engine}",
                                                                 "agent.infra_retries": 3})
        reports[name] = run_pipeline(cfg, folder / "out").report
        stores[name] = {t.id: t for t in read_store(folder / "out")}
    healthy, flaky = reports["healthy"], reports["flaky"]
    assert flaky.pass_rate == healthy.pass_rate and flaky.passed == healthy.passed
    assert flaky.shard_rows == healthy.shard_rows and flaky.trajectories == healthy.trajectories
    assert flaky.infrastructure_retries > 0 and healthy.infrastructure_retries == 0
    assert flaky.failures_by_cause.get("infrastructure", 0) == 0
    stages = {s["stage"]: s["count"] for s in healthy.funnel["stages"]}
    assert stages["seed tasks"] == 6 and stages["sharded"] == healthy.shard_rows > 0
    assert healthy.funnel["per_accepted_trajectory"]["completion_tokens"] > 0
    assert {k: (t.verdict.passed, [m.content for m in t.messages]) for k, t in stores["flaky"].items()} == \
        {k: (t.verdict.passed, [m.content for m in t.messages]) for k, t in stores["healthy"].items()}


@pytest.mark.docker
async def test_a_container_killed_under_a_tool_is_retried_and_the_rollout_judged_as_usual(sandbox_image):
    """The host kills the sandbox container just as the model's code is about to run in it: the
    rollout ends as the infrastructure's failure, is tried again in a fresh box, and passes."""
    import contextlib

    from sandboxes.docker_backend import DockerSandboxPool

    pool = DockerSandboxPool(image=sandbox_image, size=1)
    killed = []
    original_acquire = pool.acquire

    @contextlib.contextmanager
    def acquire(*args, **kwargs):
        with original_acquire(*args, **kwargs) as box:
            if not killed:
                box.container.kill()  # as the host's OOM killer or an operator would
                killed.append(box.container.id)
            yield box

    pool.acquire = acquire

    def script(messages):
        if not any(m.role == "tool" for m in messages):
            return '<tool_call>{"name": "python", "arguments": {"code": "print(2 + 2)"}}</tool_call>'
        return "So \\boxed{4}."

    cfg = RunConfig(domain="math", agent={"infra_retries": 2, "assist": "none"}, branching={"enabled": False})
    engine = FakeEngine(script)
    runner = TaskRunner(engine, get_domain("math"), lambda kind: Judge(), settings_from_config(cfg), pools=lambda image: pool)
    try:
        [t] = await runner.run_task(TASK)
    finally:
        pool.close()
    assert killed and t.verdict.passed and t.timings.attempts == 2
    [observation] = [m.content for m in t.messages if m.role == "tool"]  # only the retry's: the model saw no failure
    assert "exit code: 0" in observation and observation.rstrip().endswith("4")
