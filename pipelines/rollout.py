"""Rollout of one task: agent loop -> verify -> (if failed) branch and re-roll.

``TaskRunner`` is generic over domains: the domain plug-in supplies prompts,
tools and the critical-action rule; the verifier judges. Nothing here raises
on a bad task or a failing tool: problems become failed trajectories with an
``error``, so one bad row never kills a run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import time
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator, Callable

from sandboxes.base import Sandbox, SandboxPool, is_infrastructure_error
from schemas import Message, Task, Timings, TokenCounts, Trajectory, Verdict
from schemas.tokens import TokenTrace
from synthesizers.agent_loop import AgentResult, Budget, run_agent
from synthesizers.domains.base import Domain, Tool, ToolContext
from synthesizers.engines.base import LLMEngine, SamplingParams
from verifiers.base import Verifier

from pipelines.branching import branch_prefix, branch_seed, branch_trajectory_id, cut_point, root_trajectory_id


# Rollouts that ended for the infrastructure's reasons: an engine error (HTTP 5xx, timeout, a crashed
# engine), a sandbox that failed under a tool or could not be had, the loop itself failing.
INFRASTRUCTURE_STOPS = ("engine_error", "infrastructure_error", "loop_error")


@dataclass
class RolloutSettings:
    sampling: SamplingParams
    budget: Budget
    branches: int  # re-rolls per failed trajectory (0 disables branching)
    seed: int
    # The domain's small-model assists (its controller); off, the model writes every turn itself.
    assists: bool = True
    infra_retries: int = 2  # tries again of a rollout that failed for the infrastructure's reasons


class PooledTool:
    """Wraps a stateless sandbox tool so it borrows a pooled box for one call only.

    Holding a box for a whole rollout would cap concurrent rollouts at the pool
    size; a stateless tool (math's ``python``) needs one only while it runs.
    The agent loop runs tools in worker threads, so waiting here for a free box
    never blocks generation.
    """

    def __init__(self, tool: Tool, pool: SandboxPool):
        self._tool = tool
        self._pool = pool
        self.name = tool.name
        self.schema = tool.schema
        self.needs_sandbox = True

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        with self._pool.acquire() as box:
            return self._tool.run(arguments, ToolContext(task=ctx.task, sandbox=box, state=ctx.state))


class TaskRunner:
    def __init__(
        self,
        engine: LLMEngine,
        domain: Domain,
        verifier_for: Callable[[str], Verifier],
        settings: RolloutSettings,
        pool: SandboxPool | None = None,
        concurrency: int = 16,
    ):
        self.engine = engine
        self.domain = domain
        self.verifier_for = verifier_for  # task kind -> verifier
        self.settings = settings
        self.pool = pool
        self._slots = asyncio.Semaphore(max(1, concurrency))
        # Box hand-outs and verification block; asyncio's default executor has only cpu+4 threads,
        # which would cap them below the rollouts in flight.
        self._threads = concurrent.futures.ThreadPoolExecutor(max_workers=max(8, 2 * concurrency),
                                                              thread_name_prefix="trajforge-rollout")

    async def run_task(self, task: Task) -> list[Trajectory]:
        """The task's original rollout plus, if it failed, its branches."""
        try:
            messages = self.domain.initial_messages(task)
        except Exception as exc:  # a malformed task is recorded, not fatal
            return [self._broken(task, f"bad task: {type(exc).__name__}: {exc}")]
        root_id = root_trajectory_id(task.id, self.settings.seed)
        root = await self._rollout(task, messages, root_id, self.settings.seed, None, None)
        out = [root]
        cut = cut_point(self.domain, root) if self.settings.branches > 0 else None
        if cut is not None:
            prefix = branch_prefix(root, cut)
            # A branch goes on from its parent's own tokens, not from a re-rendering of them.
            trace = root.token_trace.before_message(cut) if root.token_trace is not None else None
            jobs = [
                self._rollout(
                    task,
                    prefix,
                    branch_trajectory_id(root.id, cut, i),
                    branch_seed(root.seed, cut, i),
                    root.id,
                    cut,
                    trace,
                )
                for i in range(self.settings.branches)
            ]
            out.extend(await asyncio.gather(*jobs))
        return out

    async def _rollout(self, task: Task, messages: list[Message], traj_id: str, seed: int, parent_id: str | None,
                       cut: int | None, trace: TokenTrace | None = None) -> Trajectory:
        """One rollout, tried again (same id, same seed) while it fails for the infrastructure's
        reasons, at most ``settings.infra_retries`` more times; the last try is kept either way."""
        for attempt in range(1 + max(0, self.settings.infra_retries)):
            traj = await self._rollout_once(task, messages, traj_id, seed, parent_id, cut, trace)
            traj.timings.attempts = attempt + 1
            if traj.verdict is None or not traj.verdict.infrastructure:
                break
        return traj

    async def _rollout_once(
        self,
        task: Task,
        messages: list[Message],
        traj_id: str,
        seed: int,
        parent_id: str | None,
        cut: int | None,
        trace: TokenTrace | None = None,
    ) -> Trajectory:
        started = time.time()
        tools = self._tools(task)
        params = replace(self.settings.sampling, seed=seed)
        async with self._slots:
            try:
                result = await self._agent(task, messages, tools, params, trace)
            except Exception as exc:  # no sandbox could be had, or the loop itself failed: keep what we know
                result = AgentResult(
                    messages=list(messages),
                    stop_reason="infrastructure_error" if is_infrastructure_error(exc) else "loop_error",
                    tokens=TokenCounts(),
                    timings=Timings(),
                    error=f"{type(exc).__name__}: {exc}",
                )
        traj = Trajectory(
            id=traj_id,
            task_id=task.id,
            domain=task.domain,
            messages=result.messages,
            tools=[tool.schema for tool in tools],
            parent_id=parent_id,
            branch_step=cut,
            stop_reason=result.stop_reason,
            error=result.error,
            tokens=result.tokens,
            timings=result.timings,
            model_id=getattr(self.engine, "model_id", ""),
            seed=seed,
            task=task,
            token_trace=result.trace,
        )
        verify_started = time.monotonic()
        if result.stop_reason in INFRASTRUCTURE_STOPS:  # nothing the model did is judged
            traj.verdict = Verdict(passed=False, reason=f"infrastructure: {result.error}", cause="infrastructure")
        else:
            traj.verdict = await self._verify(task, traj.messages)
        traj.timings.verify_s = time.monotonic() - verify_started
        traj.timings.started_at = started
        traj.timings.total_s = time.time() - started
        return traj

    async def _agent(self, task: Task, messages: list[Message], tools: list[Tool], params: SamplingParams,
                     trace: TokenTrace | None) -> AgentResult:
        async with self._rollout_sandbox() as sandbox:
            simulator = self.domain.user_simulator(task, self.engine)
            return await run_agent(
                self.engine,
                messages,
                tools,
                ctx=ToolContext(task=task, sandbox=sandbox, state={}),
                params=params,
                budget=self.settings.budget,
                is_final=self.domain.is_final,
                user_turn=simulator.reply if simulator is not None else None,
                # The domain's assists steer through its controller, one per rollout (it may count).
                controller=self.domain.controller(task) if self.settings.assists else None,
                trace=trace,
            )

    async def _in_thread(self, fn, *args):
        """``fn(*args)`` on the runner's threads, in this task's context (the worker's sandbox
        image travels in a context variable, as with ``asyncio.to_thread``)."""
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._threads, context.run, fn, *args)

    @property
    def _per_call_sandbox(self) -> bool:
        return self.domain.sandbox_scope == "call"

    def _tools(self, task: Task) -> list[Tool]:
        tools = self.domain.tools(task)
        if self.pool is not None and self._per_call_sandbox:
            return [PooledTool(t, self.pool) if t.needs_sandbox else t for t in tools]
        return tools

    @contextlib.asynccontextmanager
    async def _rollout_sandbox(self) -> AsyncIterator[Sandbox | None]:
        if self.pool is None or not self.domain.needs_sandbox:
            yield None
            return
        if self._per_call_sandbox:
            yield None  # tools borrow a box per call (PooledTool)
            return
        manager = self.pool.acquire()
        box = await self._in_thread(manager.__enter__)
        try:
            yield box
        finally:
            await self._in_thread(manager.__exit__, None, None, None)

    async def _verify(self, task: Task, messages: list[Message]) -> Verdict:
        def verify() -> Verdict:
            verifier = self.verifier_for(task.kind)
            if verifier.needs_sandbox and self.pool is not None:
                with self.pool.acquire() as box:
                    return verifier.verify(task, messages, box)
            return verifier.verify(task, messages, None)

        try:
            return await self._in_thread(verify)
        except Exception as exc:  # the verifier (or its sandbox) failed, not the model
            return Verdict(passed=False, score=0.0, reason=f"verifier error: {type(exc).__name__}: {exc}",
                           cause="infrastructure")

    def _broken(self, task: Task, error: str) -> Trajectory:
        return Trajectory(
            id=root_trajectory_id(task.id, self.settings.seed),
            task_id=task.id,
            domain=task.domain,
            messages=[],
            verdict=Verdict(passed=False, reason=error),
            stop_reason="bad_task",
            error=error,
            seed=self.settings.seed,
            task=task,
        )


def settings_from_config(config: Any) -> RolloutSettings:
    """RolloutSettings from a ``RunConfig`` (kept here so workers and tests agree)."""
    from pipelines.config import assists_on

    return RolloutSettings(
        sampling=SamplingParams(
            temperature=config.sampling.temperature,
            top_p=config.sampling.top_p,
            max_tokens=config.sampling.max_tokens,
            stop=tuple(config.sampling.stop),
            presence_penalty=config.sampling.presence_penalty,
            frequency_penalty=config.sampling.frequency_penalty,
            repetition_penalty=config.sampling.repetition_penalty,
        ),
        budget=Budget(
            max_turns=config.agent.max_turns,
            max_total_tokens=config.agent.max_total_tokens,
            max_tool_output_chars=config.agent.max_tool_output_chars,
        ),
        branches=config.branching.k if config.branching.enabled else 0,
        seed=config.seed,
        assists=assists_on(config),
        infra_retries=config.agent.infra_retries,
    )
