"""Rollout of one task: agent loop -> verify -> (if failed) branch and re-roll.

``TaskRunner`` is generic over domains: the domain plug-in supplies each
rollout's spec (``Domain.rollout_spec``: messages, tools, sandbox, controller,
user) and the critical-action rule; the verifier judges. Nothing here raises
on a bad task or a failing tool: problems become failed trajectories with an
``error``, so one bad row never kills a run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import time
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator, Callable

from sandboxes.base import Sandbox, SandboxPool, is_infrastructure_error
from schemas import Message, Task, Timings, TokenCounts, Trajectory, Verdict
from schemas.tokens import TokenTrace
from synthesizers.agent_loop import AgentResult, Budget, run_agent
from synthesizers.domains.base import Domain, Tool, ToolContext
from synthesizers.engines.base import LLMEngine, SamplingParams
from synthesizers.rollout_spec import RolloutSpec, SandboxSpec, image_of
from verifiers.base import Verifier, judge_finish

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


# The run's sandbox pools by image (None: the base image), e.g. ``pipelines.worker.ImagePools.pool_for``.
PoolFor = Callable[[str | None], SandboxPool]


class TaskRunner:
    """Rolls tasks out as their domain's ``rollout_spec`` says: one spec per rollout (the
    original, each branch with its parent's prefix as messages, each try again), since a spec's
    controller and user may keep count. Boxes come from ``pools(spec.sandbox.image)``."""

    def __init__(
        self,
        engine: LLMEngine,
        domain: Domain,
        verifier_for: Callable[[str], Verifier],
        settings: RolloutSettings,
        pools: PoolFor | None = None,
        concurrency: int = 16,
    ):
        self.engine = engine
        self.domain = domain
        self.verifier_for = verifier_for  # task kind -> verifier
        self.settings = settings
        self.pools = pools  # None: no sandboxes (tools that need one get none)
        self._slots = asyncio.Semaphore(max(1, concurrency))
        # Specs, box hand-outs and verification block; asyncio's default executor has only cpu+4
        # threads, which would cap them below the rollouts in flight.
        self._threads = concurrent.futures.ThreadPoolExecutor(max_workers=max(8, 2 * concurrency),
                                                              thread_name_prefix="trajforge-rollout")

    async def run_task(self, task: Task) -> list[Trajectory]:
        """The task's original rollout plus, if it failed, its branches."""
        try:
            spec = await self._spec(task)
        except Exception as exc:  # a malformed task is recorded, not fatal
            return [self._broken(task, f"bad task: {type(exc).__name__}: {exc}")]
        root_id = root_trajectory_id(task.id, self.settings.seed)
        root = await self._rollout(task, spec, root_id, self.settings.seed, None, None)
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

    async def _spec(self, task: Task) -> RolloutSpec:
        return await self._in_thread(functools.partial(self.domain.rollout_spec, task,
                                                       assists=self.settings.assists, engine=self.engine))

    async def _rollout(self, task: Task, start: RolloutSpec | list[Message], traj_id: str, seed: int,
                       parent_id: str | None, cut: int | None, trace: TokenTrace | None = None) -> Trajectory:
        """One rollout, from ``start`` (the root's spec, or a branch's prefix), tried again (same
        id, same seed, a fresh spec) while it fails for the infrastructure's reasons, at most
        ``settings.infra_retries`` more times; the last try is kept either way."""
        for attempt in range(1 + max(0, self.settings.infra_retries)):
            given = start if isinstance(start, RolloutSpec) and attempt == 0 else None
            messages = None if isinstance(start, RolloutSpec) else start
            traj = await self._rollout_once(task, given, messages, traj_id, seed, parent_id, cut, trace)
            traj.timings.attempts = attempt + 1
            if traj.verdict is None or not traj.verdict.infrastructure:
                break
        return traj

    async def _rollout_once(
        self,
        task: Task,
        spec: RolloutSpec | None,
        messages: list[Message] | None,
        traj_id: str,
        seed: int,
        parent_id: str | None,
        cut: int | None,
        trace: TokenTrace | None = None,
    ) -> Trajectory:
        """One try; ``spec`` None: asked of the domain now, started from ``messages`` if given."""
        started = time.time()
        params = replace(self.settings.sampling, seed=seed)
        tools: list[Tool] = []
        async with self._slots:
            try:
                if spec is None:
                    spec = await self._spec(task)
                if messages is not None:
                    spec = spec.with_messages(messages)
                tools = await self._tools(spec)
                result = await self._agent(task, spec, tools, params, trace)
            except Exception as exc:  # no sandbox could be had, or the loop itself failed: keep what we know
                result = AgentResult(
                    messages=list(spec.messages if spec is not None else messages or []),
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
            verdict = await self._verify(task, traj.messages, spec.sandbox if spec is not None else None)
            traj.verdict = judge_finish(verdict, result.stop_reason)
        traj.timings.verify_s = time.monotonic() - verify_started
        traj.timings.started_at = started
        traj.timings.total_s = time.time() - started
        return traj

    async def _agent(self, task: Task, spec: RolloutSpec, tools: list[Tool], params: SamplingParams,
                     trace: TokenTrace | None) -> AgentResult:
        async with self._rollout_sandbox(spec.sandbox) as sandbox:
            return await run_agent(
                self.engine,
                list(spec.messages),
                tools,
                ctx=ToolContext(task=task, sandbox=sandbox, state={}),
                params=params,
                budget=self.settings.budget,
                is_final=spec.is_final,
                user_turn=spec.user.reply if spec.user is not None else None,
                controller=spec.controller,
                trace=trace,
            )

    async def _in_thread(self, fn, *args):
        """``fn(*args)`` on the runner's threads."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    async def _pool(self, sandbox: SandboxSpec | None) -> SandboxPool | None:
        """The pool of the sandbox's image (made on first use, so on a thread); None without one."""
        if self.pools is None or sandbox is None:
            return None
        return await self._in_thread(self.pools, sandbox.image)

    async def _tools(self, spec: RolloutSpec) -> list[Tool]:
        tools = list(spec.tools)
        if spec.sandbox is not None and spec.sandbox.scope == "call":
            pool = await self._pool(spec.sandbox)
            if pool is not None:
                return [PooledTool(t, pool) if t.needs_sandbox else t for t in tools]
        return tools

    @contextlib.asynccontextmanager
    async def _rollout_sandbox(self, sandbox: SandboxSpec | None) -> AsyncIterator[Sandbox | None]:
        if sandbox is None or sandbox.scope == "call":  # none, or tools borrow a box per call (PooledTool)
            yield None
            return
        pool = await self._pool(sandbox)
        if pool is None:
            yield None
            return
        manager = pool.acquire()
        box = await self._in_thread(manager.__enter__)
        try:
            yield box
        finally:
            await self._in_thread(manager.__exit__, None, None, None)

    async def _verify(self, task: Task, messages: list[Message], sandbox: SandboxSpec | None) -> Verdict:
        def verify() -> Verdict:
            verifier = self.verifier_for(task.kind)
            if verifier.needs_sandbox and self.pools is not None:
                # The rollout's image, else the base image (a domain without tool sandboxes).
                with self.pools(image_of(sandbox)).acquire() as box:
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
