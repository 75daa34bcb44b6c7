"""The Ray rollout actor: one engine, one sandbox pool, many concurrent rollouts.

A worker receives whole units and returns their trajectories as an Arrow
table; the driver writes them. Keeping writes on the driver means the same DAG
works on a cluster whose nodes share no file system.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pyarrow as pa

from schemas import Task, trajectories_to_table


class RolloutWorker:
    """Plain class; ``pipelines.run`` wraps it with ``ray.remote``."""

    def __init__(self, config: dict[str, Any], run_id: str):
        from pipelines.config import RunConfig
        from pipelines.rollout import TaskRunner, settings_from_config
        from synthesizers.domains.registry import get_domain
        from synthesizers.engines.factory import make_engine
        from verifiers.registry import get_verifier

        self.config = RunConfig.model_validate(config)
        cfg = self.config
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(int(max(1, cfg.engine.kv_cache_gb))))
        self.domain = get_domain(cfg.domain)
        engine_opts = dict(cfg.engine.options)
        if not cfg.engine.model.startswith(("http://", "https://", "python:")):
            engine_opts.setdefault("max_model_len", cfg.engine.max_model_len)
        self.engine = make_engine(cfg.engine.model, **engine_opts)
        self.pool = None
        if self.domain.needs_sandbox:
            from sandboxes.base import SandboxLimits
            from sandboxes.docker_backend import DockerSandboxPool
            from sandboxes.image import ensure_image

            limits = SandboxLimits(memory_mb=cfg.sandbox.memory_mb, timeout_s=cfg.sandbox.timeout_s)
            self.pool = DockerSandboxPool(image=ensure_image(), size=cfg.sandbox.pool_size, limits=limits, run_id=run_id)
        self._verifiers: dict[str, Any] = {}
        self._get_verifier = get_verifier
        self.runner = TaskRunner(
            self.engine,
            self.domain,
            self._verifier_for,
            settings_from_config(cfg),
            pool=self.pool,
            concurrency=cfg.agent.concurrency,
        )

    def _verifier_for(self, kind: str):
        if kind not in self._verifiers:
            self._verifiers[kind] = self._get_verifier(self.config.domain, kind)
        return self._verifiers[kind]

    async def run_unit(self, tasks: list[dict[str, Any]]) -> pa.Table:
        parsed = [Task.model_validate(t) for t in tasks]
        results = await asyncio.gather(*(self.runner.run_task(t) for t in parsed))
        return trajectories_to_table([traj for group in results for traj in group])

    async def ready(self) -> str:
        """Start the engine now, so a model that cannot load fails the run up front."""
        start = getattr(self.engine, "astart", None)
        if start is not None:
            await start()
        return getattr(self.engine, "model_id", "")

    async def close(self) -> None:
        await self.engine.close()
        if self.pool is not None:
            self.pool.close()
