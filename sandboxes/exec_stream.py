"""Run one ``docker exec`` over its raw socket with a host-side deadline and capped output.

The docker SDK's ``exec_run`` reads all output into memory and has no
deadline; here we read the multiplexed stream (8-byte frame header: stream id,
3 zero bytes, big-endian length) ourselves, keep at most ``cap`` bytes per
stream and drop the rest, and escalate when the deadline passes: first
``kill_all()`` (kill every sandbox process), then ``restart()`` the container.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Callable

_RECV = 64 * 1024
_KILL_GRACE_S = 3.0  # after kill -9 -1 the stream should end at once
_RESTART_GRACE_S = 15.0


@dataclass
class RawExec:
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    truncated: bool
    host_timed_out: bool
    duration_s: float


class _FrameReader:
    """Demultiplexes docker's stdout/stderr frames, keeping at most ``cap`` bytes per stream."""

    def __init__(self, sock: socket.socket, cap: int):
        self.sock, self.cap = sock, cap
        self.out = {1: bytearray(), 2: bytearray()}
        self.truncated = False
        self.eof = False
        self._header = bytearray()
        self._stream = 0
        self._left = 0  # payload bytes of the current frame still to come

    def pump(self) -> None:
        data = self.sock.recv(_RECV)
        if not data:
            self.eof = True
            return
        self.feed(data)

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._left == 0:
                take = 8 - len(self._header)
                self._header += view[:take]
                view = view[take:]
                if len(self._header) == 8:
                    self._stream = self._header[0]
                    self._left = int.from_bytes(self._header[4:8], "big")
                    self._header.clear()
                continue
            chunk = view[: self._left]
            view = view[len(chunk):]
            self._left -= len(chunk)
            buf = self.out.get(self._stream)
            if buf is None:  # stdin echo or unknown stream id: not ours to keep
                continue
            room = self.cap - len(buf)
            if room >= len(chunk):
                buf += chunk
            else:
                if room > 0:
                    buf += chunk[:room]
                self.truncated = True


def _drain_http_buffer(fp, sock: socket.socket) -> bytes:
    """Stream bytes the HTTP client already read past the upgrade headers.

    The daemon starts the process right after sending ``101 UPGRADED``; when
    the client is slow (a loaded host), the header read's buffered ``recv``
    also swallows the first frames — a fast command's whole output. Reading the
    raw socket alone would lose them (docker-py #3332). ``fp`` is that
    buffered reader; peeking with the socket non-blocking returns what it holds
    without waiting for more.
    """
    if fp is None or not hasattr(fp, "peek"):
        return b""
    sock.setblocking(False)
    try:
        held = fp.peek(0)
        return fp.read(len(held)) if held else b""
    except (BlockingIOError, ValueError, OSError):
        return b""
    finally:
        sock.setblocking(True)


def _response_buffer(handle):
    """The buffered reader behind docker-py's hijacked exec socket, if it has one."""
    response = getattr(handle, "_response", None)
    return getattr(getattr(getattr(response, "raw", None), "_fp", None), "fp", None)


def _exit_code(api, exec_id: str) -> int | None:
    # The stream can end a moment before the daemon records the exit.
    for _ in range(50):
        info = api.exec_inspect(exec_id)
        if not info.get("Running"):
            return info.get("ExitCode")
        time.sleep(0.01)
    return None


def run_raw(api, container_id: str, cmd: list[str], *, user: str, workdir: str,
            env: dict[str, str] | None, stdin: bytes | None, cap: int, deadline_s: float,
            kill_all: Callable[[], None], restart: Callable[[], None]) -> RawExec:
    started = time.monotonic()
    exec_id = api.exec_create(container_id, cmd, stdin=stdin is not None, user=user,
                              workdir=workdir, environment=env)["Id"]
    handle = api.exec_start(exec_id, socket=True)
    sock = getattr(handle, "_sock", handle)
    reader = _FrameReader(sock, cap)
    reader.feed(_drain_http_buffer(_response_buffer(handle), sock))
    deadline = started + deadline_s
    escalation = 0  # 0: waiting, 1: killed all, 2: restarted
    try:
        if stdin is not None:
            sock.settimeout(max(deadline - time.monotonic(), 0.1))
            sock.sendall(stdin)
            sock.shutdown(socket.SHUT_WR)  # EOF on the process's stdin
        while not reader.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if escalation == 0:
                    kill_all()
                    deadline = time.monotonic() + _KILL_GRACE_S
                elif escalation == 1:
                    restart()
                    deadline = time.monotonic() + _RESTART_GRACE_S
                else:
                    break
                escalation += 1
                continue
            sock.settimeout(remaining)
            try:
                reader.pump()
            except (socket.timeout, TimeoutError):
                continue
    finally:
        try:
            sock.close()
        finally:
            handle.close()
    duration = time.monotonic() - started
    exit_code = None if escalation else _exit_code(api, exec_id)
    return RawExec(exit_code, bytes(reader.out[1]), bytes(reader.out[2]), reader.truncated,
                   bool(escalation), duration)
