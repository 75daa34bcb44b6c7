"""Docker backend of the sandbox Protocol: hardened warm containers, exec with limits, reaping.

Every container runs with no network, a read-only root, tmpfs ``/work`` and
``/tmp``, ``cap_drop=ALL``, no-new-privileges, uid 10001, and memory/pid/CPU
limits. ``exec`` runs the command under ``timeout -s KILL`` inside *and* keeps
its own deadline on the host (a process that escapes the inner timeout is
killed with ``kill -9 -1`` as the sandbox user, and the container restarted if
even that does not end the stream). Output is read frame by frame from the raw
exec socket and cut at ``limits.output_bytes`` per stream, so 100 MB of output
never lands in memory. Files travel as a tar stream on exec stdin because the
daemon cannot ``put_archive`` onto a tmpfs under a read-only root.

Commands go to a persistent runner that is PID 1 of every box
(``sandboxes/runner.py``) over the container's attached stdio: no exec is
created per command, so a call costs milliseconds rather than a daemon round
trip of create + start + inspect. The runner keeps the same semantics (sandbox
user, own process group, timeout, output cap, kill escalation); ``docker
exec`` stays as the fallback (``exec_via="docker"``, or when a box's runner
does not answer).

Containers carry labels (``trajforge.sandbox``, ``trajforge.run``,
``trajforge.owner_pid``, ``trajforge.owner_host``) so ``reap()`` can remove
those whose owning process died, e.g. after a crash or SIGKILL.
"""

from __future__ import annotations

import atexit
import io
import os
import queue
import socket
import tarfile
import threading
import time
import uuid
import weakref
from contextlib import contextmanager
from typing import Iterator

from docker.errors import DockerException, NotFound
from docker.types import LogConfig

from sandboxes.base import ExecResult, SandboxLimits
from sandboxes.daemon import ensure_docker
from sandboxes.exec_stream import RawExec, run_raw
from sandboxes.runner_client import RUNNER_SOURCE, RunnerChannel, RunnerGone, RunnerTimeout, attach

LABEL = "trajforge.sandbox"
SANDBOX_USER = "10001:10001"
WORKDIR = "/work"
MAX_FILE_BYTES = 64 * 1024 * 1024  # get_file refuses larger files rather than filling memory
_HOST = socket.gethostname()
EXEC_VIA = ("runner", "docker")


class SandboxError(RuntimeError):
    """A sandbox operation failed (file missing, container gone, ...)."""


class DockerSandbox:
    """One hardened container. Not shared between users while acquired."""

    workdir = WORKDIR

    def __init__(self, client, container, limits: SandboxLimits, exec_via: str = "runner"):
        self._client = client
        self.container = container
        self.limits = limits
        self.exec_via = exec_via
        self._channel: RunnerChannel | None = None
        self._channel_lock = threading.Lock()
        self.calls = {"runner": 0, "docker": 0}  # which path served each call (tests and benches read it)

    @property
    def id(self) -> str:
        return self.container.id

    def _raw(self, cmd: list[str], *, timeout_s: float, cap: int, stdin: bytes | None = None,
             workdir: str | None = None, env: dict[str, str] | None = None, inner_timeout: bool = True
             ) -> RawExec:
        channel = self._runner()
        if channel is not None:
            return self._via_runner(channel, cmd, timeout_s=timeout_s, cap=cap, stdin=stdin,
                                    workdir=workdir, env=env)
        self.calls["docker"] += 1
        inner = ["timeout", "-s", "KILL", f"{timeout_s:.3f}", *cmd] if inner_timeout else cmd
        return run_raw(self._client.api, self.container.id, inner, user=SANDBOX_USER,
                       workdir=workdir or self.workdir, env=env, stdin=stdin, cap=cap,
                       deadline_s=timeout_s + 2.0, kill_all=self._kill_all, restart=self._restart)

    def _runner(self) -> RunnerChannel | None:
        """The live channel to this box's runner, attaching on first use; None means docker exec."""
        if self.exec_via != "runner":
            return None
        with self._channel_lock:
            if self._channel is None or not self._channel.alive:
                if self._channel is not None:  # the runner ended: say so rather than run elsewhere
                    raise SandboxError("the sandbox runner ended (container stopped or restarted)")
                try:
                    self._channel = attach(self._client.api, self.container.id)
                except DockerException:
                    self._channel = None
                if self._channel is None:
                    self.exec_via = "docker"  # this box's PID 1 does not answer: fall back for good
            return self._channel

    def _via_runner(self, channel: RunnerChannel, cmd: list[str], *, timeout_s: float, cap: int,
                    stdin: bytes | None, workdir: str | None, env: dict[str, str] | None) -> RawExec:
        self.calls["runner"] += 1
        try:
            r = channel.run(cmd, cwd=workdir or self.workdir, env=env, timeout_s=timeout_s, cap=cap, stdin=stdin)
        except RunnerTimeout as late:
            self._restart()  # the runner itself is stuck: only a fresh PID 1 helps
            return RawExec(None, late.stdout[:cap], late.stderr[:cap], False, True, timeout_s)
        except RunnerGone as exc:
            raise SandboxError(str(exc)) from exc
        return RawExec(r.exit_code, r.stdout, r.stderr, r.truncated, r.timed_out, r.duration_s)

    def _kill_all(self) -> None:
        # As the sandbox user, `kill -1` reaches every sandbox process but not init (pid 1).
        eid = self._client.api.exec_create(self.container.id, ["sh", "-c", "kill -9 -1"], user=SANDBOX_USER)
        self._client.api.exec_start(eid)

    def _restart(self) -> None:
        self.container.restart(timeout=0)
        with self._channel_lock:  # a fresh PID 1 is a fresh runner: attach again on next use
            if self._channel is not None:
                self._channel.close()
            self._channel = None

    def exec(self, cmd: str | list[str], *, timeout_s: float | None = None, workdir: str | None = None,
             env: dict[str, str] | None = None) -> ExecResult:
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        limit = float(timeout_s if timeout_s is not None else self.limits.timeout_s)
        raw = self._raw(argv, timeout_s=limit, cap=self.limits.output_bytes, workdir=workdir, env=env)
        # `timeout -s KILL` kills its own process group, itself included, hence 137 rather than 124.
        timed_out = raw.host_timed_out or (raw.exit_code == 137 and raw.duration_s >= limit * 0.98)
        return ExecResult(
            exit_code=None if timed_out else raw.exit_code,
            stdout=raw.stdout.decode("utf-8", errors="replace"),
            stderr=raw.stderr.decode("utf-8", errors="replace"),
            timed_out=timed_out, truncated=raw.truncated, duration_s=raw.duration_s,
        )

    def _abs(self, path: str) -> str:
        return path if path.startswith("/") else f"{self.workdir}/{path}"

    def put_files(self, files: dict[str, bytes | str]) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for path, content in files.items():
                data = content.encode() if isinstance(content, str) else bytes(content)
                info = tarfile.TarInfo(self._abs(path).lstrip("/"))
                info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
                tar.addfile(info, io.BytesIO(data))
        raw = self._raw(["tar", "-x", "-m", "--no-same-owner", "-C", "/", "-f", "-"],
                        timeout_s=max(self.limits.timeout_s, 30.0), cap=16 * 1024, stdin=buf.getvalue(),
                        workdir="/")
        if raw.exit_code != 0:
            raise SandboxError(f"put_files failed: {raw.stderr.decode(errors='replace').strip()}")

    def get_file(self, path: str) -> bytes:
        raw = self._raw(["cat", "--", self._abs(path)], timeout_s=max(self.limits.timeout_s, 30.0),
                        cap=MAX_FILE_BYTES)
        if raw.exit_code != 0:
            raise FileNotFoundError(f"{path}: {raw.stderr.decode(errors='replace').strip()}")
        if raw.truncated:
            raise SandboxError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
        return raw.stdout

    def reset(self) -> bool:
        """Kill every sandbox process and empty /work and /tmp; False if the box is not healthy."""
        # No inner `timeout` here: `kill -1` would take it down too (only the calling shell is spared).
        script = ("kill -9 -1 2>/dev/null; chmod -R u+rwx /work /tmp 2>/dev/null; "
                  "find /work /tmp -mindepth 1 -delete 2>/dev/null; "
                  "[ -z \"$(ls -A /work)\" ] && [ -z \"$(ls -A /tmp)\" ] && touch /work/.probe && rm /work/.probe")
        try:
            return self._raw(["sh", "-c", script], timeout_s=10.0, cap=4096, workdir="/",
                             inner_timeout=False).exit_code == 0
        except (DockerException, OSError, SandboxError):
            return False

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()


class DockerSandboxPool:
    """A fixed number of warm sandboxes; ``acquire()`` blocks until one is free."""

    def __init__(self, image: str, size: int = 2, limits: SandboxLimits = SandboxLimits(),
                 run_id: str | None = None, exec_via: str | None = None):
        self.image, self.size, self.limits = image, size, limits
        self.exec_via = exec_via or os.environ.get("TRAJFORGE_SANDBOX_EXEC") or "runner"
        if self.exec_via not in EXEC_VIA:
            raise ValueError(f"exec_via must be one of {EXEC_VIA}, not {self.exec_via!r}")
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self._client = ensure_docker()
        self._idle: queue.Queue[DockerSandbox] = queue.Queue()
        self._live_ids: set[str] = set()  # shared with the finalizer, so it must not reference self
        self._lock = threading.Lock()
        self._closed = False
        reap(client=self._client)
        self._finalizer = weakref.finalize(self, _remove_all, self._client, self._live_ids)
        atexit.register(self._finalizer)
        for _ in range(size):
            self._idle.put(self._start())

    def _start(self) -> DockerSandbox:
        lim = self.limits
        container = self._client.containers.run(
            # stdin open (never closed on detach) is the runner's channel; no log driver, so
            # command output never lands in the daemon's log files.
            self.image, command=["python3", "-S", "-c", RUNNER_SOURCE], detach=True,
            stdin_open=True, log_config=LogConfig(type=LogConfig.types.NONE),
            network_disabled=True, network_mode="none", read_only=True,
            tmpfs={WORKDIR: f"size={lim.workdir_mb}m,uid=10001,gid=10001,mode=0755,nosuid,nodev",
                   "/tmp": "size=64m,mode=1777,nosuid,nodev"},
            cap_drop=["ALL"], security_opt=["no-new-privileges"], user=SANDBOX_USER,
            mem_limit=f"{lim.memory_mb}m", memswap_limit=f"{lim.memory_mb}m", pids_limit=lim.pids,
            nano_cpus=int(lim.cpus * 1e9), working_dir=WORKDIR,
            labels={LABEL: "1", "trajforge.run": self.run_id, "trajforge.owner_pid": str(os.getpid()),
                    "trajforge.owner_host": _HOST, "trajforge.created": str(int(time.time()))},
        )
        with self._lock:
            self._live_ids.add(container.id)
        return DockerSandbox(self._client, container, lim, self.exec_via)

    def _replace(self, box: DockerSandbox) -> DockerSandbox:
        box.close()
        with self._lock:
            self._live_ids.discard(box.id)
        _remove_quietly(self._client, box.id)
        return self._start()

    @contextmanager
    def acquire(self) -> Iterator[DockerSandbox]:
        if self._closed:
            raise SandboxError("sandbox pool is closed")
        box = self._idle.get()
        try:
            yield box
        finally:
            # Clean on release so every idle box is ready the moment someone asks.
            if self._closed:
                box.close()
                _remove_quietly(self._client, box.id)
            else:
                try:
                    if not box.reset():
                        box = self._replace(box)
                finally:
                    self._idle.put(box)

    def reap(self, older_than_s: float | None = None, all_dead_owners: bool = True) -> int:
        """Age sweeps here cover only this pool's run; dead owners are swept everywhere."""
        removed = reap(older_than_s=older_than_s, client=self._client, run_id=self.run_id)
        return removed + (reap(client=self._client) if all_dead_owners else 0)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        while not self._idle.empty():
            self._idle.get_nowait().close()
        self._finalizer()
        atexit.unregister(self._finalizer)
        reap(client=self._client)

    def __enter__(self) -> "DockerSandboxPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _remove_quietly(client, container_id: str) -> None:
    try:
        client.api.remove_container(container_id, force=True)
    except NotFound:
        pass
    except DockerException:
        pass  # the next reap() retries


def _remove_all(client, ids: set[str]) -> None:
    for cid in list(ids):
        _remove_quietly(client, cid)
        ids.discard(cid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap(older_than_s: float | None = None, all_dead_owners: bool = True, client=None,
         run_id: str | None = None) -> int:
    """Remove labelled containers whose owner process (on this host) is dead, or older than a limit.

    ``run_id`` narrows the sweep to one run's containers (an age sweep otherwise hits every run's).
    """
    client = client or ensure_docker()
    removed = 0
    now = time.time()
    labels_wanted = [f"{LABEL}=1"] + ([f"trajforge.run={run_id}"] if run_id else [])
    for info in client.api.containers(all=True, filters={"label": labels_wanted}):
        labels = info.get("Labels") or {}
        dead_owner = (all_dead_owners and labels.get("trajforge.owner_host") == _HOST
                      and labels.get("trajforge.owner_pid", "").isdigit()
                      and not _pid_alive(int(labels["trajforge.owner_pid"])))
        too_old = older_than_s is not None and now - float(info.get("Created", now)) > older_than_s
        if dead_owner or too_old:
            _remove_quietly(client, info["Id"])
            removed += 1
    return removed
