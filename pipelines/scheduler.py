"""Rollout units on Ray actors: one engine per worker, units handed out by free capacity.

Each worker holds up to ``UNITS_IN_FLIGHT`` units; whenever one of its units finishes, it gets the
next pending unit, so a fast worker (a bigger GPU, a closer endpoint) takes more units and a slow
one is never sent work it has no room for. Every finished unit is written by the driver at once
(the store is the only copy), and a worker that crashes loses its unit, not the run.

Each worker reports where it ran and what it did (``WorkerStats``: node, units, trajectories, busy
seconds — time with at least one unit in flight); the run report lists them.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from pipelines.config import RunConfig
from pipelines.store import TrajectoryStore, Unit
from pipelines.worker import RolloutWorker
from schemas import Trajectory, table_to_trajectories

UNITS_IN_FLIGHT = 2  # a second unit keeps the engine busy across the first one's tail


class WorkerStartError(RuntimeError):
    """A rollout worker (engine or sandbox pool) could not start."""


def _node() -> dict[str, str]:
    import ray

    ctx = ray.get_runtime_context()
    return {"node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address()}


class NodeTaggedWorker(RolloutWorker):
    """A rollout worker that says which node it is on, and names that node when it cannot start
    (a model, cache or image missing there)."""

    def __init__(self, *args: Any, **kwargs: Any):
        try:
            super().__init__(*args, **kwargs)
        except Exception as exc:
            node = _node()
            detail = str(exc).strip().splitlines()
            raise RuntimeError(f"on node {node['node_ip']} ({node['node_id'][:12]}): {type(exc).__name__}: "
                               f"{detail[-1] if detail else ''}") from None

    def where(self) -> dict[str, str]:
        return _node()

    def endpoint_stats(self) -> list[dict[str, Any]]:
        """Per served endpoint (a pool of several): requests served and failed, times taken out and
        put back; empty for any other engine."""
        from synthesizers.engines.pool import EndpointPool

        return self.engine.stats() if isinstance(self.engine, EndpointPool) else []


@dataclass
class WorkerStats:
    worker: int
    node_id: str = ""
    node_ip: str = ""
    units: int = 0
    failed_units: int = 0
    trajectories: int = 0
    busy_s: float = 0.0
    endpoints: list = field(default_factory=list)  # EndpointPool stats, when the engine is one
    _in_flight: int = 0
    _since: float = 0.0

    def started(self, now: float) -> None:
        if self._in_flight == 0:
            self._since = now
        self._in_flight += 1

    def ended(self, now: float) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self.busy_s += now - self._since

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items() if not k.startswith("_")}


@dataclass
class RolloutOutcome:
    failed: list[str]
    completion_tokens: int
    workers: list[WorkerStats]


def worker_options(config: RunConfig) -> dict[str, Any]:
    options: dict[str, Any] = dict(num_cpus=config.ray.num_cpus_per_worker, num_gpus=config.ray.num_gpus_per_worker,
                                   max_concurrency=64)
    if not config.ray.num_gpus_per_worker:
        # Ray pins OMP_NUM_THREADS to the actor's CPU count (1); a CPU engine needs every core.
        options["runtime_env"] = {"env_vars": {"OMP_NUM_THREADS": str(os.cpu_count() or 1)}}
    return options


def rollout_units(config: RunConfig, units: list[Unit], store: TrajectoryStore, run_id: str, *,
                  on_done: Callable[[Unit, list[Trajectory]], None],
                  on_failed: Callable[[Unit, str], None]) -> RolloutOutcome:
    """Run ``units`` on ``config.ray.num_workers`` actors; write each as it finishes."""
    import ray

    actor_cls = ray.remote(NodeTaggedWorker).options(**worker_options(config))
    workers = [actor_cls.remote(config.model_dump(), run_id) for _ in range(max(1, config.ray.num_workers))]
    stats = [WorkerStats(worker=i) for i in range(len(workers))]
    failed: list[str] = []
    completion_tokens = 0
    try:
        try:
            ray.get([w.ready.remote() for w in workers])
            for s, where in zip(stats, ray.get([w.where.remote() for w in workers])):
                s.node_id, s.node_ip = where["node_id"], where["node_ip"]
        except Exception as exc:
            cause = str(getattr(exc, "cause", None) or exc).strip().splitlines()
            raise WorkerStartError(f"rollout worker failed to start: {cause[-1] if cause else exc}") from None
        queue = list(units)
        inflight: dict[Any, tuple[Unit, int]] = {}
        dead: set[int] = set()

        def submit(i: int) -> None:
            if queue and i not in dead:
                unit = queue.pop(0)
                inflight[workers[i].run_unit.remote([t.model_dump() for t in unit.tasks])] = (unit, i)
                stats[i].started(time.monotonic())

        for _ in range(UNITS_IN_FLIGHT):  # breadth first: every worker has a unit before any has two
            for i in range(len(workers)):
                submit(i)
        while inflight:
            done, _ = ray.wait(list(inflight), num_returns=1)
            unit, i = inflight.pop(done[0])
            stats[i].ended(time.monotonic())
            try:
                trajectories = table_to_trajectories(ray.get(done[0]))
            except Exception as exc:  # a crashed worker loses its unit, not the run
                failed.append(unit.id)
                stats[i].failed_units += 1
                if isinstance(exc, ray.exceptions.RayActorError):
                    dead.add(i)  # its other units fail too; the live workers take the queue
                on_failed(unit, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            else:
                store.write_unit(unit.id, trajectories)
                completion_tokens += sum(t.tokens.completion for t in trajectories)
                stats[i].units += 1
                stats[i].trajectories += len(trajectories)
                on_done(unit, trajectories)
            submit(i)  # the worker that just freed a slot gets the next unit
        for unit in queue:  # every worker died: what is left is failed, and a re-run resumes it
            failed.append(unit.id)
            on_failed(unit, "no live rollout worker")
    finally:
        for s, worker in zip(stats, workers):
            try:
                s.endpoints = ray.get(worker.endpoint_stats.remote(), timeout=10)
            except Exception:
                pass
            try:
                ray.get(worker.close.remote(), timeout=60)
            except Exception:
                pass
            ray.kill(worker)
    return RolloutOutcome(failed=failed, completion_tokens=completion_tokens, workers=stats)
