"""The sandbox Protocol: run commands and move files inside an isolated box.

Synchronous on purpose: callers in async code wrap calls in
``asyncio.to_thread`` so a slow tool never blocks generation.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SandboxLimits:
    memory_mb: int = 512
    pids: int = 128
    cpus: float = 1.0
    timeout_s: float = 10.0  # default per exec
    output_bytes: int = 64 * 1024  # per stream; longer output is cut and flagged
    workdir_mb: int = 256  # tmpfs size of the writable work dir


@dataclass
class ExecResult:
    exit_code: int | None  # None when killed by the timeout
    stdout: str
    stderr: str
    timed_out: bool = False
    truncated: bool = False
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@runtime_checkable
class Sandbox(Protocol):
    workdir: str  # writable directory inside the box

    def exec(
        self,
        cmd: str | list[str],
        *,
        timeout_s: float | None = None,
        workdir: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ExecResult: ...

    def put_files(self, files: dict[str, bytes | str]) -> None:
        """Write files; relative paths land under ``workdir``."""

    def get_file(self, path: str) -> bytes: ...


@runtime_checkable
class SandboxPool(Protocol):
    def acquire(self) -> AbstractContextManager[Sandbox]:
        """A clean sandbox for the duration of the ``with`` block."""

    def close(self) -> None: ...


def is_infrastructure_error(exc: BaseException) -> bool:
    """A failure of the sandbox machinery (daemon, container, runner), not of the code run in it:
    an exception class that says ``infrastructure = True``, or the Docker SDK's own errors."""
    return bool(getattr(exc, "infrastructure", False)) or type(exc).__module__.startswith("docker.")
