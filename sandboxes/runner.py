"""PID 1 of every sandbox: reaps orphans and runs commands sent over its stdin.

This file is sent as-is to ``python3 -S -c`` when a box starts (nothing is
baked into the image), so it imports nothing of the project. The host writes
frames to the container's attached stdin and reads frames from its stdout;
only this process holds those two pipes (children get fresh pipes, and the
process is made non-dumpable so the sandbox user can neither open
``/proc/1/fd/*`` nor ptrace it). Output of a command is therefore always data
inside a length-prefixed frame: a command cannot forge the framing.

Frame, both ways: 1 byte type, 4 bytes request id, 4 bytes payload length
(big-endian), payload. Host -> box: ``S`` start (JSON argv/cwd/env/timeout/cap
/stdin), ``I`` stdin bytes, ``E`` stdin end, ``K`` kill, ``P`` ping, ``Z``
reset (kill every other process, empty ``/work`` and ``/tmp``: a box between
users, in about a millisecond instead of a shell, chmod, find and ls).
Box -> host: ``O`` stdout, ``R`` stderr, ``X`` exit (JSON), ``P`` pong.

Each command runs in its own session (so its own process group) with the
container's limits; at its deadline the group is SIGKILLed; if its pipes are
still held open after a grace (a ``setsid`` escapee), every process in the box
but this one is killed, as ``docker exec``'s host-side escalation does. Output
beyond ``cap`` per stream is read and dropped, so a child never blocks on a
full pipe and the channel never carries more than the cap.
"""

import json
import os
import selectors
import signal
import struct
import subprocess
import time

HEADER = struct.Struct(">cII")
_CHUNK = 64 * 1024
_ESCAPE_GRACE_S = 0.5  # after the group is killed, pipes still open mean an escaped process
# Stdin held for children that read slower than the host sends: past this the runner stops reading
# its channel until they catch up, so a large upload never costs the box more memory than this.
_STDIN_HELD_MAX = 4 << 20
# Likewise output not yet taken by the host: past this, children's pipes are not read (they block,
# as on any full pipe) until the host catches up, e.g. while it reads a 64 MB get_file slowly.
_OUT_HELD_MAX = 4 << 20


def _harden():
    # Non-dumpable: /proc/1/{fd,mem,environ} become root-owned and ptrace is refused to the
    # sandbox user, so nothing in the box can read or write this process's channel.
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except Exception:  # noqa: BLE001 - a box without ctypes still runs; the test suite checks this
        pass
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)


class Job:
    def __init__(self, rid, spec, runner):
        self.rid, self.runner = rid, runner
        self.cap = int(spec.get("cap", 65536))
        self.sent = {b"O": 0, b"R": 0}
        self.truncated = self.timed_out = False
        self.code = None
        self.stdin_buf = bytearray()
        self.stdin_end = False
        self.started = time.monotonic()
        self.deadline = self.started + float(spec.get("timeout", 10.0))
        self.escape_deadline = None
        self.stdin, self.pipes = None, {}
        env = dict(os.environ)
        env.update(spec.get("env") or {})
        try:
            self.proc = subprocess.Popen(
                spec["argv"], cwd=spec.get("cwd") or None, env=env, start_new_session=True, close_fds=True,
                stdin=subprocess.PIPE if spec.get("stdin") else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            # The shell's convention: 127 not found, 126 found but not runnable.
            self.proc = None
            self.code = 127 if isinstance(exc, FileNotFoundError) else 126
            runner.send(b"R", rid, f"{exc.strerror or exc}: {spec['argv'][0]!r}\n".encode())
            return
        self.pid = self.proc.pid
        self.pipes = {self.proc.stdout.fileno(): (b"O", self.proc.stdout),
                      self.proc.stderr.fileno(): (b"R", self.proc.stderr)}
        for fd in self.pipes:
            os.set_blocking(fd, False)
            runner.sel.register(fd, selectors.EVENT_READ, ("out", self))
        self.stdin = self.proc.stdin
        if self.stdin is not None:
            os.set_blocking(self.stdin.fileno(), False)

    def on_output(self, fd):
        kind, pipe = self.pipes[fd]
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close_pipe(fd)
            return
        room = self.cap - self.sent[kind]
        if len(data) > room:
            self.truncated = True
            data = data[:max(room, 0)]
        if data:
            self.sent[kind] += len(data)
            self.runner.send(kind, self.rid, data)

    def close_pipe(self, fd):
        self.runner._set(fd, selectors.EVENT_READ, None, False)
        self.pipes.pop(fd)[1].close()

    def feed(self, data, end):
        if self.stdin is None:
            return
        self.stdin_buf += data
        self.stdin_end = self.stdin_end or end
        self.flush_stdin()

    def flush_stdin(self):
        if self.stdin is None:
            return
        fd = self.stdin.fileno()
        try:
            while self.stdin_buf:
                n = os.write(fd, self.stdin_buf[:_CHUNK])
                del self.stdin_buf[:n]
        except BlockingIOError:
            self.runner.want_stdin(self, fd, True)
            return
        except OSError:  # the child closed its stdin: the rest is dropped, as a pipe would
            self.stdin_buf.clear()
            self.stdin_end = True
        self.runner.want_stdin(self, fd, False)
        if self.stdin_end:
            self.stdin.close()
            self.stdin = None

    def kill(self, timed_out):
        self.timed_out = self.timed_out or timed_out
        if self.proc is not None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass
        if self.escape_deadline is None:
            self.escape_deadline = time.monotonic() + _ESCAPE_GRACE_S

    def tick(self, now):
        if self.escape_deadline is None and now >= self.deadline:
            self.kill(True)
        elif self.escape_deadline is not None and now >= self.escape_deadline and self.pipes:
            # Something outside the group holds the pipes: end everything but init.
            if os.getpid() == 1:
                try:
                    os.kill(-1, signal.SIGKILL)
                except OSError:
                    pass
            for fd in list(self.pipes):
                self.close_pipe(fd)

    def done(self):
        return self.code is not None and not self.pipes

    def finish(self):
        self.stdin_buf.clear()
        if self.stdin is not None:
            self.runner.want_stdin(self, self.stdin.fileno(), False)
            self.stdin.close()
            # select() may already have returned this pipe as writable in the batch being handled.
            self.stdin = None
        code = None if self.timed_out else self.code
        self.runner.send(b"X", self.rid, json.dumps(
            {"code": code, "timed_out": self.timed_out, "truncated": self.truncated,
             "duration": time.monotonic() - self.started}).encode())


def _wipe(path):
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            os.chmod(entry.path, 0o700)  # a mode-000 directory of the last user must still go
            _wipe(entry.path)
            os.rmdir(entry.path)
        else:
            os.unlink(entry.path)


class Runner:
    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.jobs = {}  # rid -> Job
        self.by_pid = {}
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.stdin_open = True
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd is written
        os.set_blocking(0, False)
        os.set_blocking(1, False)
        self.sel.register(0, selectors.EVENT_READ, ("in", None))
        self.sel.register(self.wake_r, selectors.EVENT_READ, ("wake", None))

    def send(self, kind, rid, payload=b""):
        self.outbuf += HEADER.pack(kind, rid, len(payload)) + payload
        self.flush_out()

    def flush_out(self):
        try:
            while self.outbuf:
                del self.outbuf[:os.write(1, self.outbuf[:1 << 20])]
        except BlockingIOError:
            pass
        except OSError:  # the host side is gone; keep reaping, drop output
            self.outbuf.clear()
        self._set(1, selectors.EVENT_WRITE, ("outw", None), bool(self.outbuf))

    def want_stdin(self, job, fd, on):
        self._set(fd, selectors.EVENT_WRITE, ("stdinw", job), on)

    def _set(self, fd, events, data, on):
        try:
            self.sel.get_key(fd)
            registered = True
        except KeyError:
            registered = False
        if on and not registered:
            self.sel.register(fd, events, data)
        elif not on and registered:
            self.sel.unregister(fd)

    def on_input(self):
        try:
            data = os.read(0, 256 * 1024)
        except BlockingIOError:
            return
        if not data:  # host closed stdin for good: stay alive as the reaper
            self.sel.unregister(0)
            self.stdin_open = False
            return
        self.inbuf += data
        while len(self.inbuf) >= HEADER.size:
            kind, rid, size = HEADER.unpack_from(self.inbuf)
            if len(self.inbuf) < HEADER.size + size:
                break
            payload = bytes(self.inbuf[HEADER.size:HEADER.size + size])
            del self.inbuf[:HEADER.size + size]
            self.on_frame(kind, rid, payload)

    def on_frame(self, kind, rid, payload):
        job = self.jobs.get(rid)
        if kind == b"P":
            self.send(b"P", rid, payload)
        elif kind == b"S" and job is None:
            try:
                job = Job(rid, json.loads(payload), self)
            except Exception as exc:  # noqa: BLE001 - a bad request must never end PID 1
                self.send(b"R", rid, f"runner: bad request: {exc!r}\n".encode())
                self.send(b"X", rid, json.dumps({"code": 126, "timed_out": False, "truncated": False,
                                                 "duration": 0.0}).encode())
                return
            self.jobs[rid] = job
            if job.proc is not None:
                self.by_pid[job.pid] = job
            self.check(job)
        elif kind in (b"I", b"E") and job is not None:
            job.feed(payload, kind == b"E")
        elif kind == b"K" and job is not None:
            job.kill(True)
        elif kind == b"Z":
            ok = self.reset(json.loads(payload or b"{}").get("dirs", ["/work", "/tmp"]))
            self.send(b"X", rid, json.dumps({"code": 0 if ok else 1, "timed_out": False, "truncated": False,
                                             "duration": 0.0}).encode())

    def reset(self, dirs):
        """Kill every process but this one, wait until they are gone, then empty ``dirs``."""
        if os.getpid() == 1:
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
            deadline = time.monotonic() + 5.0
            while self.reap() and time.monotonic() < deadline:
                time.sleep(0.002)
        for job in list(self.jobs.values()):  # their processes are gone: report them ended
            for fd in list(job.pipes):
                job.close_pipe(fd)
            self.check(job)
        try:
            for root in dirs:
                _wipe(root)
                if os.listdir(root):
                    return False
            probe = os.path.join(dirs[0], ".probe")
            with open(probe, "w"):
                pass
            os.unlink(probe)
            return True
        except Exception:  # noqa: BLE001 - anything odd (a 10k-deep tree, a vanished dir): not clean
            return False

    def reap(self):
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False  # no child left
            if pid == 0:
                return True
            job = self.by_pid.pop(pid, None)
            if job is not None:
                code = os.waitstatus_to_exitcode(status)
                job.code = 128 - code if code < 0 else code  # killed by a signal: the shell's 128+n
                job.proc.returncode = code  # so Popen never waits on a reaped pid
                self.check(job)

    def check(self, job):
        if job.done() and self.jobs.pop(job.rid, None) is job:
            job.finish()

    def serve(self):
        while True:
            held = sum(len(j.stdin_buf) for j in self.jobs.values())
            self._set(0, selectors.EVENT_READ, ("in", None), self.stdin_open and held < _STDIN_HELD_MAX)
            reading = len(self.outbuf) < _OUT_HELD_MAX
            for job in self.jobs.values():
                for fd in job.pipes:
                    self._set(fd, selectors.EVENT_READ, ("out", job), reading)
            now = time.monotonic()
            for job in list(self.jobs.values()):
                job.tick(now)
                self.check(job)
            waits = [j.escape_deadline if j.escape_deadline is not None else j.deadline for j in self.jobs.values()]
            timeout = max(0.0, min(waits) - time.monotonic()) + 0.001 if waits else None
            for key, _ in self.sel.select(timeout):
                what, job = key.data
                if what == "in":
                    self.on_input()
                elif what == "wake":
                    self.reap()
                elif what == "outw":
                    self.flush_out()
                elif what == "stdinw":
                    job.flush_stdin()
                elif what == "out" and key.fd in job.pipes:
                    job.on_output(key.fd)
                    self.check(job)
            self.reap()  # a SIGCHLD may land between select() and here; never lose it


if __name__ == "__main__":
    _harden()
    Runner().serve()
