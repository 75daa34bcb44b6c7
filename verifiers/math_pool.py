"""Run math-verify comparisons in killable worker processes, with a timeout that
works from any thread.

Why: sympy can hang for minutes on model output such as ``9^{9^{9^{9}}}``, and
math-verify's own timeout uses ``signal.alarm``, which only works on the main
thread — but the pipeline verifies from worker threads. So every comparison
runs in a small pool of long-lived worker processes (fresh interpreters, not
forks: the parent may hold vLLM/CUDA/threads). A call that overruns its timeout kills
that worker and a fresh one replaces it on next use; the caller gets
``VerifyTimeout`` after at most ``timeout_s``.

Workers exit on their own when the parent dies (their pipe reads EOF).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import select
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

_PROJECT_ROOT = str(Path(__file__).resolve().parents[1])

# A fresh worker imports sympy + math-verify before it is ready; on a busy
# 2-core machine that can take several seconds, and it must not eat into the
# per-comparison timeout.
WORKER_START_TIMEOUT_S = 120.0


class VerifyTimeout(Exception):
    """The comparison overran its timeout; the worker was killed."""


class VerifyWorkerError(Exception):
    """The worker died or could not be started (not the model's fault)."""


@dataclass(frozen=True)
class Comparison:
    passed: bool
    gold_parsed: str  # what math-verify made of each side, for the verdict reason
    answer_parsed: str


def compare_in_process(gold: str, answer: str) -> Comparison:
    """Parse both sides as LaTeX math and compare them with math-verify.

    No internal timeouts (they need signals); callers bound the time.
    """
    from math_verify import parse, verify

    gold_parsed = parse(f"${gold}$", parsing_timeout=None)
    answer_parsed = parse(f"${answer}$", parsing_timeout=None)
    if not gold_parsed:
        raise ValueError(f"gold answer {gold!r} could not be parsed")
    passed = bool(answer_parsed) and bool(verify(gold_parsed, answer_parsed, timeout_seconds=None))
    return Comparison(passed, _first(gold_parsed), _first(answer_parsed))


def _first(parsed: list) -> str:
    return str(parsed[0]) if parsed else ""


def _worker_main() -> None:
    """Serve JSON-line requests on stdin until EOF (which is also what the parent's death looks like)."""
    # The protocol owns the original stdout; anything a library prints goes to stderr instead.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    # math-verify warns once that its timeout is off; we time it ourselves.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    import math_verify  # noqa: F401  (pay the import before saying ready)

    protocol.write('"ready"\n')
    for line in sys.stdin:
        job = json.loads(line)
        try:
            result = compare_in_process(job["gold"], job["answer"])
            reply = {"status": "ok", **asdict(result)}
        except Exception as exc:  # a parse failure is an answer, not a crash
            reply = {"status": "error", "message": f"{type(exc).__name__}: {exc}"}
        protocol.write(json.dumps(reply) + "\n")


class _Worker:
    """One ``python -m verifiers.math_pool`` child. A plain subprocess rather than
    multiprocessing, so the caller's ``__main__`` is never re-imported (spawn does
    that, and scripts without a main guard would then run twice)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self._stderr = None

    def ensure_started(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.kill()
        self._stderr = tempfile.TemporaryFile()
        env = dict(os.environ)
        # Importable even when the project is not pip-installed.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PROJECT_ROOT, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "verifiers.math_pool"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            text=True,
            bufsize=1,
        )
        if self.read_line(WORKER_START_TIMEOUT_S) != "ready":
            detail = self._stderr_tail()
            self.kill()
            raise VerifyWorkerError(f"math-verify worker did not start: {detail or 'no output'}")

    def send(self, job: dict) -> None:
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()

    def read_line(self, timeout_s: float):
        """The next reply, or None on timeout. The worker writes each reply in one line."""
        # poll, not select: select fails on descriptors >= 1024, common in a vLLM/Ray process
        poller = select.poll()
        poller.register(self.process.stdout.fileno(), select.POLLIN)
        if not poller.poll(max(0, int(timeout_s * 1000))):
            return None
        line = self.process.stdout.readline()
        if not line:
            raise EOFError(f"worker exited ({self._stderr_tail() or 'no stderr'})")
        return json.loads(line)

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-300:].decode(errors="replace").strip()

    def kill(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(timeout=5)
            for stream in (self.process.stdin, self.process.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        if self._stderr is not None:
            self._stderr.close()
        self.process, self._stderr = None, None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.stdin.close()  # EOF: the worker leaves its loop
                self.process.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()


class MathVerifyPool:
    """A fixed number of lazily started workers; ``compare`` is thread-safe."""

    def __init__(self, workers: int | None = None):
        count = workers or min(2, os.cpu_count() or 1)
        # LIFO: reuse the warm worker first, so a single caller keeps one process.
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._all = [_Worker() for _ in range(count)]
        for worker in self._all:
            self._idle.put(worker)

    def compare(self, gold: str, answer: str, timeout_s: float) -> Comparison:
        worker = self._idle.get()
        try:
            try:
                worker.ensure_started()
                worker.send({"gold": gold, "answer": answer})
                reply = worker.read_line(timeout_s)
            except (EOFError, OSError, ValueError) as exc:
                worker.kill()
                raise VerifyWorkerError(f"math-verify worker died: {exc or type(exc).__name__}") from exc
            if reply is None:
                worker.kill()  # a stuck sympy call cannot be interrupted; replace the process
                raise VerifyTimeout(f"no result within {timeout_s:g} s")
        finally:
            self._idle.put(worker)
        if reply.get("status") != "ok":
            raise ValueError(reply.get("message", "unknown worker error"))
        return Comparison(bool(reply["passed"]), reply["gold_parsed"], reply["answer_parsed"])

    def close(self) -> None:
        for worker in self._all:
            worker.stop()


_shared: MathVerifyPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> MathVerifyPool:
    """One pool per process, closed at interpreter exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = MathVerifyPool()
            atexit.register(_shared.close)
        return _shared


if __name__ == "__main__":
    _worker_main()
