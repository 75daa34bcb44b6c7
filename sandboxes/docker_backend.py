"""Docker backend of the sandbox Protocol: one hardened box, exec with limits, reaping.

Every container (started by ``sandboxes.pool``) runs with no network, a
read-only root, tmpfs ``/work`` and ``/tmp``, ``cap_drop=ALL``,
no-new-privileges, uid 10001, and memory/pid/CPU limits. Through ``docker
exec``, a command runs under ``timeout -s KILL`` inside *and* the host keeps
its own deadline (a process that escapes the inner timeout is
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
``trajforge.owner_pid``, ``trajforge.owner_start``, ``trajforge.owner_host``) so
``reap()`` can remove those whose owning process died, e.g. after a crash or SIGKILL: every pool
start on the host sweeps them (a run started again after ``kill -9`` finds none of its old boxes),
and a pid the kernel has since given to another process does not keep a dead owner's boxes alive
(the owner's start time is labelled beside its pid).
"""

from __future__ import annotations

import io
import os
import socket
import tarfile
import threading
import time

from docker.errors import DockerException, NotFound

from sandboxes.base import ExecResult, SandboxLimits
from sandboxes.daemon import ensure_docker
from sandboxes.exec_stream import RawExec, run_raw
from sandboxes.runner_client import RunnerChannel, RunnerGone, RunnerTimeout, attach

LABEL = "trajforge.sandbox"
SANDBOX_USER = "10001:10001"
WORKDIR = "/work"
RESET_DIRS = [WORKDIR, "/tmp", "/dev/shm"]  # every place a box's user can write
MAX_FILE_BYTES = 64 * 1024 * 1024  # get_file refuses larger files rather than filling memory
_HOST = socket.gethostname()
EXEC_VIA = ("runner", "docker")


class SandboxError(RuntimeError):
    """A sandbox operation failed (file missing, container gone, ...)."""


class SandboxInfrastructureError(SandboxError):
    """The sandbox itself failed (its runner or container ended, no box could be had): not the
    fault of the code run in it. Rollouts that meet one are retried, never scored (``infrastructure``)."""

    infrastructure = True


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
                    raise SandboxInfrastructureError("the sandbox runner ended (container stopped or restarted)")
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
            raise SandboxInfrastructureError(str(exc)) from exc
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
        """Kill every sandbox process and empty /work, /tmp and /dev/shm (a writable tmpfs in every
        container: left alone, it carries files from one user of a pooled box to the next); False if
        the box is not healthy."""
        try:
            channel = self._runner()
        except SandboxError:
            return False
        if channel is not None:
            self.calls["runner"] += 1
            return channel.reset(RESET_DIRS)
        # No inner `timeout` here: `kill -1` would take it down too (only the calling shell is spared).
        dirs = " ".join(RESET_DIRS)
        script = (f"kill -9 -1 2>/dev/null; chmod -R u+rwx {dirs} 2>/dev/null; "
                  f"find {dirs} -mindepth 1 -delete 2>/dev/null; "
                  + " && ".join(f'[ -z "$(ls -A {d})" ]' for d in RESET_DIRS)
                  + " && touch /work/.probe && rm /work/.probe")
        try:
            return self._raw(["sh", "-c", script], timeout_s=10.0, cap=4096, workdir="/",
                             inner_timeout=False).exit_code == 0
        except (DockerException, OSError, SandboxError):
            return False

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()


def __getattr__(name: str):
    # The pool lives in sandboxes.pool (it imports this module); callers keep importing it from here.
    if name == "DockerSandboxPool":
        from sandboxes.pool import DockerSandboxPool

        return DockerSandboxPool
    raise AttributeError(name)


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


def _proc_start(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, /proc/PID/stat field 22); "" if unknown.
    With the pid it names one process for the life of the host: a reused pid has another start."""
    try:
        stat = open(f"/proc/{pid}/stat", "rb").read().decode()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2:].split()[19]


def _owner_alive(labels: dict) -> bool:
    """Whether the process that started a container (its owner labels, this host) still runs."""
    pid = labels.get("trajforge.owner_pid", "")
    if not pid.isdigit() or not _pid_alive(int(pid)):
        return False
    start = labels.get("trajforge.owner_start", "")
    current = _proc_start(int(pid))
    return not (start and current and start != current)  # the pid now names another process


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
                      and labels.get("trajforge.owner_pid", "").isdigit() and not _owner_alive(labels))
        too_old = older_than_s is not None and now - float(info.get("Created", now)) > older_than_s
        if dead_owner or too_old:
            _remove_quietly(client, info["Id"])
            removed += 1
    return removed
