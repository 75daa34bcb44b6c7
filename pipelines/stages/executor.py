"""Where batch work runs: Ray tasks across the cluster, or in this process.

Both executors take the same functions (``pipelines/stages/passes.py``), so a run on a cluster and
a run in one process produce the same shards. Ray is used whenever it is initialised.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol


class Executor(Protocol):
    def put(self, value: Any) -> Any: ...

    def submit(self, fn: Callable, *args: Any, num_returns: int = 1) -> Any: ...

    def get(self, refs: Any) -> Any: ...


class LocalExecutor:
    """Runs each call at once; ``put`` and ``get`` are the identity."""

    def put(self, value: Any) -> Any:
        return value

    def submit(self, fn: Callable, *args: Any, num_returns: int = 1) -> Any:
        return fn(*args)

    def get(self, refs: Any) -> Any:
        return refs


class RayExecutor:
    """One Ray task per call (a CPU each); results stay in the object store until fetched."""

    def __init__(self) -> None:
        import ray

        self._ray = ray
        self._remote: dict[tuple[Callable, int], Any] = {}

    def put(self, value: Any) -> Any:
        return self._ray.put(value)

    def submit(self, fn: Callable, *args: Any, num_returns: int = 1) -> Any:
        key = (fn, num_returns)
        if key not in self._remote:
            self._remote[key] = self._ray.remote(fn).options(num_cpus=1, num_returns=num_returns)
        return self._remote[key].remote(*args)

    def get(self, refs: Any) -> Any:
        return self._ray.get(refs)


def default_executor() -> Executor:
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency
        return LocalExecutor()
    return RayExecutor() if ray.is_initialized() else LocalExecutor()
