"""Host side of the in-box runner (``sandboxes/runner.py``): one channel per box, many calls at once.

A reader thread owns the receiving end and hands each frame to the call it
belongs to (by request id), so concurrent ``exec``s on one box share the
channel. Over ``docker attach`` the bytes arrive inside docker's own
stdout/stderr frames; ``DockerDemux`` strips those first (the runner's stderr
only ever carries its own crash traces, kept for the error message).
The host trusts the runner no further than the box: it keeps at most ``cap``
bytes per stream whatever arrives, and keeps its own deadline.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sandboxes.runner import HEADER

RUNNER_SOURCE = (Path(__file__).with_name("runner.py")).read_text()
_STDIN_CHUNK = 256 * 1024
_KILL_GRACE_S = 3.0  # after a kill frame the exit frame should follow at once


class RunnerGone(RuntimeError):
    """The channel ended (runner or container died, or the box was restarted)."""


class RunnerTimeout(RuntimeError):
    """The runner did not answer by the host's deadline, even after a kill frame."""

    def __init__(self, stdout: bytes, stderr: bytes):
        super().__init__("sandbox runner missed the host deadline")
        self.stdout, self.stderr = stdout, stderr


@dataclass
class RunnerResult:
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    truncated: bool
    duration_s: float


@dataclass
class _Call:
    cap: int
    out: dict = field(default_factory=lambda: {b"O": bytearray(), b"R": bytearray()})
    truncated: bool = False
    exit: dict | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def add(self, kind: bytes, data: bytes) -> None:
        buf = self.out[kind]
        room = self.cap - len(buf)
        if len(data) > room:
            self.truncated = True
            data = data[:max(room, 0)]
        buf += data


class DockerDemux:
    """Splits docker's multiplexed attach stream (8-byte header: stream, 0, 0, 0, length)."""

    def __init__(self, on_stdout: Callable[[bytes], None], on_stderr: Callable[[bytes], None]):
        self._sinks = {1: on_stdout, 2: on_stderr}
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= 8:
            size = int.from_bytes(self._buf[4:8], "big")
            if len(self._buf) < 8 + size:
                return
            sink = self._sinks.get(self._buf[0])
            if sink is not None:
                sink(bytes(self._buf[8:8 + size]))
            del self._buf[:8 + size]


class RunnerChannel:
    """Calls into one runner over a byte transport (``recv``/``send``/``close`` callables)."""

    def __init__(self, recv: Callable[[], bytes], send: Callable[[bytes], None], close: Callable[[], None],
                 *, docker_framed: bool):
        self._recv, self._send, self._close = recv, send, close
        self._calls: dict[int, _Call] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._buf = bytearray()
        self.alive = True
        self.runner_stderr: deque[bytes] = deque(maxlen=32)
        self._demux = DockerDemux(self._on_bytes, self.runner_stderr.append) if docker_framed else None
        threading.Thread(target=self._read_loop, name="sandbox-runner-reader", daemon=True).start()

    # ---- receiving ---------------------------------------------------------

    def _read_loop(self) -> None:
        try:
            while True:
                data = self._recv()
                if not data:
                    break
                (self._demux.feed if self._demux else self._on_bytes)(data)
        except (OSError, ValueError):
            pass
        finally:
            self._fail_all()

    def _on_bytes(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= HEADER.size:
            kind, rid, size = HEADER.unpack_from(self._buf)
            if len(self._buf) < HEADER.size + size:
                return
            payload = bytes(self._buf[HEADER.size:HEADER.size + size])
            del self._buf[:HEADER.size + size]
            with self._lock:
                call = self._calls.get(rid)
            if call is None:
                continue  # a call the host already gave up on
            if kind in (b"O", b"R"):
                call.add(kind, payload)
            elif kind in (b"X", b"P"):
                call.exit = json.loads(payload) if kind == b"X" else {}
                call.done.set()

    def _fail_all(self) -> None:
        self.alive = False
        with self._lock:
            calls = list(self._calls.values())
        for call in calls:
            call.done.set()  # exit stays None: the waiter raises RunnerGone

    # ---- calling -----------------------------------------------------------

    def _frame(self, kind: bytes, rid: int, payload: bytes = b"") -> None:
        if not self.alive:
            raise RunnerGone("sandbox runner channel is closed")
        try:
            with self._send_lock:
                self._send(HEADER.pack(kind, rid, len(payload)) + payload)
        except OSError as exc:
            self.alive = False
            raise RunnerGone(f"sandbox runner channel failed: {exc}") from exc

    def _open(self, cap: int) -> tuple[int, _Call]:
        rid = next(self._ids) & 0xFFFFFFFF
        call = _Call(cap)
        with self._lock:
            self._calls[rid] = call
        return rid, call

    def _close_call(self, rid: int) -> None:
        with self._lock:
            self._calls.pop(rid, None)

    def ping(self, timeout_s: float) -> bool:
        rid, call = self._open(0)
        try:
            self._frame(b"P", rid)
            return call.done.wait(timeout_s) and call.exit is not None
        except RunnerGone:
            return False
        finally:
            self._close_call(rid)

    def reset(self, dirs: list[str], timeout_s: float = 10.0) -> bool:
        """Kill every process in the box but the runner and empty ``dirs``; True when clean."""
        rid, call = self._open(0)
        try:
            self._frame(b"Z", rid, json.dumps({"dirs": dirs}).encode())
            return call.done.wait(timeout_s) and call.exit is not None and call.exit.get("code") == 0
        except RunnerGone:
            return False
        finally:
            self._close_call(rid)

    def run(self, argv: list[str], *, cwd: str, env: dict[str, str] | None, timeout_s: float, cap: int,
            stdin: bytes | None = None, host_grace_s: float = 2.0) -> RunnerResult:
        rid, call = self._open(cap)
        try:
            spec = {"argv": argv, "cwd": cwd, "env": env or {}, "timeout": timeout_s, "cap": cap,
                    "stdin": stdin is not None}
            self._frame(b"S", rid, json.dumps(spec).encode())
            if stdin is not None:
                for at in range(0, len(stdin), _STDIN_CHUNK):
                    self._frame(b"I", rid, stdin[at:at + _STDIN_CHUNK])
                self._frame(b"E", rid)
            if not call.done.wait(timeout_s + host_grace_s):
                self._frame(b"K", rid)
                if not call.done.wait(_KILL_GRACE_S):
                    raise RunnerTimeout(bytes(call.out[b"O"]), bytes(call.out[b"R"]))
            if call.exit is None:
                trace = b"".join(self.runner_stderr).decode(errors="replace").strip()[-500:]
                raise RunnerGone("sandbox runner ended mid-command" + (f": {trace}" if trace else ""))
        finally:
            self._close_call(rid)
        x = call.exit
        return RunnerResult(x.get("code"), bytes(call.out[b"O"]), bytes(call.out[b"R"]),
                            bool(x.get("timed_out")), bool(x.get("truncated")) or call.truncated,
                            float(x.get("duration", 0.0)))

    def close(self) -> None:
        self.alive = False
        try:
            self._close()
        except OSError:
            pass


def attach(api, container_id: str, ping_timeout_s: float = 5.0) -> RunnerChannel | None:
    """A live channel to the box's runner over ``docker attach``, or None (then use ``docker exec``)."""
    handle = api.attach_socket(container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    sock = getattr(handle, "_sock", handle)
    sock.settimeout(None)
    channel = RunnerChannel(lambda: sock.recv(256 * 1024), sock.sendall,
                            lambda: (sock.close(), handle.close()), docker_framed=True)
    if channel.ping(ping_timeout_s):
        return channel
    channel.close()  # PID 1 is not a runner (or is wedged)
    return None
