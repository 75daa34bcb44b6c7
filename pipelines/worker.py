"""The Ray rollout actor: one engine, sandbox pools, many concurrent rollouts.

A worker receives whole units and returns their trajectories as an Arrow
table; the driver writes them. Keeping writes on the driver means the same DAG
works on a cluster whose nodes share no file system.

Sandboxes: one pool per image, each of ``sandbox.pool_size`` boxes, created on
first use and closed with the worker. Each rollout's spec names its image
(``RolloutSpec.sandbox.image``; code: the project's image) and the runner takes
its boxes, for tools and verification, from that image's pool; ``None`` means
the base image.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any, Callable

import pyarrow as pa

from schemas import Task, trajectories_to_table

log = logging.getLogger(__name__)


class ImagePools:
    """Sandbox pools by image, each made on first use (``pool_for(image)``; None: the base image)
    and all closed together. ``TaskRunner`` takes each rollout's boxes from the pool of its
    spec's image."""

    def __init__(self, default_image: Callable[[], str], make_pool: Callable[[str], Any]):
        self._default_image = default_image
        self._make_pool = make_pool
        self._pools: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._closed = False

    def pool_for(self, image: str | None) -> Any:
        with self._lock:
            if self._closed:
                raise RuntimeError("sandbox pools are closed")
            image = image or self._default_image()
            if image not in self._pools:
                self._pools[image] = self._make_pool(image)
            return self._pools[image]

    @property
    def images(self) -> list[str]:
        return list(self._pools)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


def make_verifier(domain_name: str, kind: str, *, domain: Any = None, judge=None,
                  options: dict[str, Any] | None = None, repetition: bool | None = None):
    """``verifiers.registry.get_verifier`` as the run judges: the keywords the domain's options imply
    (``domain.verifier_options()``, e.g. deep research's pass mark) with the run config's
    ``verifier.options`` overriding them key by key; behind the repetition gate unless
    ``repetition`` is False (None: the domain's ``repetition_check``)."""
    from verifiers.registry import get_verifier

    if repetition is None:
        repetition = domain.repetition_check if domain is not None else True
    merged = {**(domain.verifier_options() if domain is not None else {}), **(options or {})}
    return get_verifier(domain_name, kind, judge=judge, options=merged, repetition=repetition)


def _check_token_mode(engine: Any) -> None:
    """A token engine whose chat template cannot be extended message by message runs text mode."""
    from synthesizers.engines.base import supports_tokens
    from synthesizers.token_conversation import probe_template

    if supports_tokens(engine):
        problem = probe_template(engine.tokenizer)
        if problem is not None:
            engine.token_exact = False
            log.warning("token-exact rollouts off (%s): text mode", problem)


class RolloutWorker:
    """Plain class; ``pipelines.run`` wraps it with ``ray.remote``."""

    def __init__(self, config: dict[str, Any], run_id: str):
        from pipelines.config import RunConfig
        from pipelines.judge import judge_from_config
        from pipelines.rollout import TaskRunner, settings_from_config
        from synthesizers.domains.registry import get_domain, import_plugins
        from synthesizers.engines.factory import make_engine
        from synthesizers.engines.spec import parse_model_spec
        self.config = RunConfig.model_validate(config)
        cfg = self.config
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(int(max(1, cfg.engine.kv_cache_gb))))
        import_plugins(cfg.plugins)
        self.domain = get_domain(cfg.domain, cfg.domain_options)
        engine_opts = dict(cfg.engine.options)
        model = parse_model_spec(cfg.engine.model)
        if model.kind in ("embedded", "path"):
            engine_opts.setdefault("max_model_len", cfg.engine.max_model_len)
        elif model.kind == "url" and cfg.engine.tokenizer:
            # Established against the server by the driver (pipelines.run.resolve_tokenizer):
            # the HTTP engine runs token-in/token-out with it (text mode if options.token_exact is False).
            engine_opts.setdefault("tokenizer", cfg.engine.tokenizer)
        self.engine = make_engine(cfg.engine.model, **engine_opts)
        _check_token_mode(self.engine)
        self.pool: ImagePools | None = None
        if self.domain.needs_sandbox:
            from pipelines.sandbox_pool import make_pool
            from sandboxes.image import ensure_image

            self.pool = ImagePools(ensure_image, lambda image: make_pool(cfg.sandbox, image, run_id=run_id))
        self._verifiers: dict[str, Any] = {}
        self._judge = judge_from_config(cfg.verifier.judge.model_dump() if cfg.verifier.judge else None)
        self.runner = TaskRunner(
            self.engine,
            self.domain,
            self._verifier_for,
            settings_from_config(cfg),
            pools=self.pool.pool_for if self.pool is not None else None,
            concurrency=cfg.agent.concurrency,
        )

    def _verifier_for(self, kind: str):
        if kind not in self._verifiers:
            cfg = self.config
            self._verifiers[kind] = make_verifier(cfg.domain, kind, domain=self.domain, judge=self._judge,
                                                  options=cfg.verifier.options, repetition=cfg.verifier.repetition)
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
        if self._judge is not None:
            await asyncio.to_thread(self._judge.close)
        if self.pool is not None:
            self.pool.close()
