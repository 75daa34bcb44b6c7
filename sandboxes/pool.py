"""A pool of warm hardened boxes with back-pressure: bounded per pool and per host, a queue, retried starts.

``size`` boxes start with the pool (warm: a hand-out is a queue pop); under
demand it grows one box at a time up to ``max_size`` as long as the host has a
free slot (``sandboxes.slots``), otherwise callers queue for a released box.
A container start that the daemon refuses (overload, a transient error) is
retried with exponential backoff; starts are serialised per pool so a burst of
callers never fires a burst of ``create`` calls at the daemon. A box is reset
on release (every process killed, ``/work`` and ``/tmp`` emptied); one that
fails its reset is removed and its place freed.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import uuid
import weakref
from collections import deque
from contextlib import contextmanager
from typing import Iterator

from docker.errors import DockerException, ImageNotFound
from docker.types import LogConfig

from sandboxes.base import SandboxLimits
from sandboxes.daemon import ensure_docker
from sandboxes.docker_backend import (_HOST, EXEC_VIA, LABEL, SANDBOX_USER, WORKDIR, DockerSandbox, SandboxError,
                                      SandboxInfrastructureError, _proc_start, _remove_all, _remove_quietly, reap)
from sandboxes.gvisor import RUNTIMES, require_runtime
from sandboxes.runner_client import RUNNER_SOURCE
from sandboxes.slots import HostSlots

START_ATTEMPTS = 5
START_BACKOFF_S = 0.25  # doubled after each refused start
SLOT_WAIT_S = 300.0  # how long the pool's first boxes wait for a host slot


class DockerSandboxPool:
    """Warm sandboxes; ``acquire()`` hands out a clean one, or waits (up to ``timeout_s``) for one."""

    def __init__(self, image: str, size: int = 2, limits: SandboxLimits = SandboxLimits(),
                 run_id: str | None = None, exec_via: str | None = None, max_size: int | None = None,
                 host_slots: HostSlots | None = None, runtime: str | None = None):
        self.image, self.size, self.limits = image, size, limits
        self.max_size = max(size, max_size or size)
        self.exec_via = exec_via or os.environ.get("TRAJFORGE_SANDBOX_EXEC") or "runner"
        if self.exec_via not in EXEC_VIA:
            raise ValueError(f"exec_via must be one of {EXEC_VIA}, not {self.exec_via!r}")
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.slots = host_slots or HostSlots()
        self.stats = {"started": 0, "start_retries": 0, "replaced": 0, "waited": 0, "peak_boxes": 0}
        self._client = ensure_docker()
        # "runc" (Docker's default) or "runsc" (gVisor, where the host registered it: sandboxes.gvisor).
        self.runtime = runtime or os.environ.get("TRAJFORGE_SANDBOX_RUNTIME") or "runc"
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, not {self.runtime!r}")
        require_runtime(self._client, self.runtime)
        if self.runtime == "runsc" and self.exec_via == "runner":
            # Under runsc 20221219 the sandbox user can open PID 1's stdin and stdout through
            # /proc/1/fd, so code in the box could forge the runner's replies (sandboxes.gvisor).
            raise SandboxError("sandbox.runtime 'runsc' needs sandbox.exec_via 'docker': under gVisor the "
                               "runner's channel is reachable from inside the box (see sandboxes/gvisor.py)")
        self._idle: deque[DockerSandbox] = deque()
        self._boxes = 0  # live boxes plus those starting: never above max_size
        self._cond = threading.Condition()
        self._start_lock = threading.Lock()
        self._slot_of: dict[str, object] = {}
        self._live_ids: set[str] = set()  # shared with the finalizer, so it must not reference self
        self._closed = False
        reap(client=self._client)
        self._finalizer = weakref.finalize(self, _remove_all, self._client, self._live_ids)
        atexit.register(self._finalizer)
        for _ in range(size):
            self._boxes += 1
            slot = self.slots.take(SLOT_WAIT_S)
            if slot is None:
                self.close()
                raise SandboxInfrastructureError(f"no free sandbox slot on this host (cap {self.slots.cap}) within {SLOT_WAIT_S:.0f}s")
            self._idle.append(self._start(slot))
        self.stats["peak_boxes"] = self._boxes

    # ---- starting and removing boxes ------------------------------------------

    def _run_container(self, name: str):
        lim = self.limits
        return self._client.containers.run(
            # stdin open (never closed on detach) is the runner's channel; no log driver, so
            # command output never lands in the daemon's log files.
            self.image, command=["python3", "-S", "-c", RUNNER_SOURCE], detach=True,
            name=name, runtime=self.runtime,
            stdin_open=True, log_config=LogConfig(type=LogConfig.types.NONE),
            network_disabled=True, network_mode="none", read_only=True,
            tmpfs={WORKDIR: f"size={lim.workdir_mb}m,uid=10001,gid=10001,mode=0755,nosuid,nodev",
                   "/tmp": "size=64m,mode=1777,nosuid,nodev"},
            cap_drop=["ALL"], security_opt=["no-new-privileges"], user=SANDBOX_USER,
            mem_limit=f"{lim.memory_mb}m", memswap_limit=f"{lim.memory_mb}m", pids_limit=lim.pids,
            nano_cpus=int(lim.cpus * 1e9), working_dir=WORKDIR,
            labels={LABEL: "1", "trajforge.run": self.run_id, "trajforge.owner_pid": str(os.getpid()),
                    "trajforge.owner_start": _proc_start(os.getpid()), "trajforge.owner_host": _HOST, "trajforge.created": str(int(time.time()))},
        )

    def _start(self, slot) -> DockerSandbox:
        """Start one box holding ``slot``; retried with backoff; the slot is released on failure."""
        delay = START_BACKOFF_S
        try:
            with self._start_lock:
                for attempt in range(START_ATTEMPTS):
                    name = f"trajforge-{self.run_id}-{uuid.uuid4().hex[:8]}"
                    try:
                        container = self._run_container(name)
                        break
                    except ImageNotFound:
                        raise
                    except DockerException:
                        _remove_quietly(self._client, name)  # created but not started: do not leak it
                        if attempt == START_ATTEMPTS - 1:
                            raise
                        self.stats["start_retries"] += 1
                        time.sleep(delay)
                        delay *= 2
        except BaseException:
            slot.release()
            raise
        with self._cond:
            self._live_ids.add(container.id)
            self._slot_of[container.id] = slot
            self.stats["started"] += 1
        return DockerSandbox(self._client, container, self.limits, self.exec_via)

    def _remove(self, box: DockerSandbox) -> None:
        box.close()
        _remove_quietly(self._client, box.id)
        with self._cond:
            self._live_ids.discard(box.id)
            slot = self._slot_of.pop(box.id, None)
            self._boxes -= 1
            self._cond.notify()
        if slot is not None:
            slot.release()

    # ---- hand-out ------------------------------------------------------------------

    def _take(self, timeout_s: float | None) -> DockerSandbox:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        waited = False
        while True:
            with self._cond:
                if self._closed:
                    raise SandboxError("sandbox pool is closed")
                if self._idle:
                    return self._idle.popleft()
                slot = self.slots.try_take() if self._boxes < self.max_size else None
                if slot is not None:
                    self._boxes += 1
                    self.stats["peak_boxes"] = max(self.stats["peak_boxes"], self._boxes)
                else:
                    if not waited:
                        self.stats["waited"] += 1
                        waited = True
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise SandboxInfrastructureError(f"no sandbox free within {timeout_s:.1f}s ({self._boxes} boxes busy)")
                    # A release notifies; the timeout also re-checks the host's slots now and then.
                    self._cond.wait(min(remaining, 1.0) if remaining is not None else 1.0)
                    continue
            try:
                return self._start(slot)
            except BaseException:
                with self._cond:
                    self._boxes -= 1
                    self._cond.notify()
                raise

    @contextmanager
    def acquire(self, timeout_s: float | None = None) -> Iterator[DockerSandbox]:
        box = self._take(timeout_s)
        try:
            yield box
        finally:
            # Clean on release so every idle box is ready the moment someone asks.
            if self._closed:
                self._remove(box)
            elif box.reset():
                with self._cond:
                    self._idle.append(box)
                    self._cond.notify()
            else:
                self.stats["replaced"] += 1
                self._remove(box)  # frees its place: the next caller starts a fresh one

    # ---- sweeping and closing ----------------------------------------------------------

    def reap(self, older_than_s: float | None = None, all_dead_owners: bool = True) -> int:
        """Age sweeps here cover only this pool's run; dead owners are swept everywhere."""
        removed = reap(older_than_s=older_than_s, client=self._client, run_id=self.run_id)
        return removed + (reap(client=self._client) if all_dead_owners else 0)

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = list(self._idle), deque()
            self._cond.notify_all()
        for box in idle:
            box.close()
        self._finalizer()
        atexit.unregister(self._finalizer)
        with self._cond:
            slots, self._slot_of = list(self._slot_of.values()), {}
        for slot in slots:
            slot.release()
        reap(client=self._client)

    def __enter__(self) -> "DockerSandboxPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
