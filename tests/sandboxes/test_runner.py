"""The in-box runner's protocol, run on the host over plain pipes (no Docker): framing, caps, stdin,
deadlines, concurrency and bad input. The same runner in a real box is attacked in
``test_runner_attacks.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from sandboxes.runner import HEADER
from sandboxes.runner_client import RUNNER_SOURCE, RunnerChannel, RunnerGone


@pytest.fixture
def runner():
    proc = subprocess.Popen([sys.executable, "-S", "-c", RUNNER_SOURCE], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)

    def send(data: bytes) -> None:
        proc.stdin.write(data)
        proc.stdin.flush()

    channel = RunnerChannel(lambda: os.read(proc.stdout.fileno(), 1 << 16), send, proc.stdin.close,
                            docker_framed=False)
    assert channel.ping(10)
    channel.proc = proc
    yield channel
    proc.kill()
    proc.wait(10)


def run(channel, argv, *, timeout_s=10.0, cap=1 << 16, stdin=None, env=None):
    return channel.run(argv, cwd="/tmp", env=env, timeout_s=timeout_s, cap=cap, stdin=stdin)


def test_output_and_exit_code_arrive_exact(runner):
    r = run(runner, ["sh", "-c", "printf 'no newline'; printf 'err' >&2; exit 3"])
    assert (r.exit_code, r.stdout, r.stderr, r.timed_out, r.truncated) == (3, b"no newline", b"err", False, False)
    assert run(runner, ["sh", "-c", "echo $X"], env={"X": "42"}).stdout == b"42\n"


def test_forged_frames_in_output_are_just_data(runner):
    # A command that prints what the runner would send (an exit frame for every id, then a torn
    # header) gets exactly those bytes back as stdout and its own exit code.
    forged = b"".join(HEADER.pack(b"X", rid, 11) + b'{"code": 0}' for rid in range(1, 64)) + b"X\x00\x00"
    script = f"import sys; sys.stdout.buffer.write({forged!r}); sys.exit(7)"
    r = run(runner, [sys.executable, "-c", script])
    assert r.exit_code == 7 and r.stdout == forged
    assert run(runner, ["true"]).exit_code == 0


def test_output_beyond_the_cap_is_dropped_at_the_source(runner):
    r = run(runner, ["sh", "-c", "head -c 5000000 /dev/zero; head -c 3000 /dev/zero >&2"], cap=1000)
    assert r.truncated and len(r.stdout) == 1000 and len(r.stderr) == 1000 and r.exit_code == 0


def test_stdin_is_delivered_and_a_child_that_never_reads_it_does_not_block(runner):
    blob = os.urandom(3 << 20)
    assert run(runner, ["sha256sum"], stdin=blob).stdout.split()[0].decode() == __import__("hashlib").sha256(blob).hexdigest()
    # Both output pipes full and 8 MB of stdin nobody reads: the runner reads and writes without blocking.
    r = run(runner, ["sh", "-c", "head -c 4000000 /dev/zero >&2; head -c 4000000 /dev/zero; echo done >&2"],
            stdin=b"x" * (8 << 20), cap=100)
    assert r.exit_code == 0 and r.truncated


def test_a_stdin_write_event_for_a_finished_job_is_ignored():
    # select() can return a job's stdin as writable in the same batch whose output event finished
    # the job (and closed that pipe); handling the stale event must not touch the closed pipe.
    import selectors

    from sandboxes.runner import Job

    class Host:
        sel = selectors.DefaultSelector()
        frames: list = []

        def send(self, kind, rid, payload=b""):
            self.frames.append(kind)

        def _set(self, fd, events, data, on):
            pass

        def want_stdin(self, job, fd, on):
            pass

    job = Job(1, {"argv": ["true"], "stdin": True}, Host())
    job.proc.wait(10)
    job.code = 0
    for fd in list(job.pipes):
        job.close_pipe(fd)
    job.stdin_buf += b"late"
    job.finish()
    job.flush_stdin()
    assert Host.frames == [b"X"] and job.stdin is None


def test_the_deadline_kills_the_whole_process_group(runner, tmp_path):
    pidfile = tmp_path / "grandchild"
    r = run(runner, ["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], timeout_s=0.5)
    assert r.timed_out and r.exit_code is None
    grandchild = int(pidfile.read_text())
    # Killed with its group (the runner is not init here, so the zombie may linger: check its state).
    state = open(f"/proc/{grandchild}/stat").read().split()[2] if os.path.exists(f"/proc/{grandchild}") else "gone"
    assert state in ("Z", "X", "gone")


def test_calls_run_concurrently(runner):
    # Each call waits (bounded) until all four have started: serialised calls would report "alone".
    barrier = "touch /tmp/tf-runner-$1-$2; i=0; while [ $(ls /tmp/tf-runner-$1-* | wc -l) -lt 4 ]; do " \
              "i=$((i+1)); [ $i -gt 200 ] && { echo alone; exit 1; }; sleep 0.05; done; echo together"
    tag = os.urandom(4).hex()
    results: list = []
    threads = [threading.Thread(target=lambda n=n: results.append(run(runner, ["sh", "-c", barrier, "sh", tag, str(n)])))
               for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    subprocess.run(f"rm -f /tmp/tf-runner-{tag}-*", shell=True)
    assert sorted(r.stdout for r in results) == [b"together\n"] * 4


def test_failures_to_start_and_bad_requests_leave_the_runner_serving(runner):
    missing = run(runner, ["no-such-binary-xyz"])
    assert missing.exit_code == 127 and b"no-such-binary-xyz" in missing.stderr
    assert run(runner, ["sh", "-c", "kill -9 $$"]).exit_code == 137  # the shell's 128 + signal
    rid, call = runner._open(100)
    runner._frame(b"S", rid, b"{not json")
    assert call.done.wait(10) and call.exit["code"] == 126
    runner._frame(b"S", rid + 1000, json.dumps({"argv": 5}).encode())  # a reply to nobody: dropped
    assert run(runner, ["echo", "still"]).stdout == b"still\n"


def test_a_channel_that_ends_fails_the_calls_in_flight(runner, tmp_path):
    outcome: list = []
    started = tmp_path / "started"

    def call() -> None:
        try:
            outcome.append(run(runner, ["sh", "-c", f"touch {started}; sleep 30"]))
        except RunnerGone as exc:
            outcome.append(exc)

    t = threading.Thread(target=call)
    t.start()
    for _ in range(2000):
        if started.exists():
            break
        threading.Event().wait(0.01)
    assert started.exists()
    runner.proc.kill()  # the runner dies: its stdout ends
    t.join(20)
    assert len(outcome) == 1 and isinstance(outcome[0], RunnerGone)
    with pytest.raises(RunnerGone):
        run(runner, ["true"])


def test_a_large_upload_to_a_slow_reader_is_held_in_bounded_memory(runner):
    def peak_kb() -> int:
        status = open(f"/proc/{runner.proc.pid}/status").read()
        return int(status.split("VmHWM:")[1].split()[0])

    before = peak_kb()
    blob = b"u" * (128 << 20)
    r = run(runner, ["sh", "-c", "sleep 0.5; wc -c"], stdin=blob, timeout_s=60)
    assert r.stdout.strip() == str(len(blob)).encode()
    # The runner paused its channel while the child lagged: it never held the upload (it holds at
    # most 4 MB of it; allocator slack makes its peak grow by some 30 MB, far below 128).
    assert (peak_kb() - before) < 64 * 1024


def test_reset_empties_the_dirs_without_following_links(runner, tmp_path):
    work, other, outside = tmp_path / "work", tmp_path / "tmp", tmp_path / "outside"
    for d in (work / "a" / "b", other, outside):
        d.mkdir(parents=True)
    (outside / "keep.txt").write_text("not the box's")
    (work / "a" / "b" / "f").write_text("x")
    (work / ".hidden").write_text("x")
    (work / "link").symlink_to(outside)
    locked = work / "locked"
    locked.mkdir()
    (locked / "inside").write_text("x")
    locked.chmod(0)
    (other / "t").write_text("x")
    assert runner.reset([str(work), str(other)])
    assert list(work.iterdir()) == [] and list(other.iterdir()) == []
    assert (outside / "keep.txt").read_text() == "not the box's"
    assert not runner.reset([str(tmp_path / "missing")])  # not clean is reported, not raised
    assert run(runner, ["echo", "serving"]).stdout == b"serving\n"


def test_output_the_host_reads_slowly_is_held_in_bounded_memory():
    proc = subprocess.Popen([sys.executable, "-S", "-c", RUNNER_SOURCE], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)

    def slow_recv() -> bytes:
        threading.Event().wait(0.0005)  # a host that takes its time
        return os.read(proc.stdout.fileno(), 1 << 16)

    def send(data: bytes) -> None:
        proc.stdin.write(data)
        proc.stdin.flush()

    channel = RunnerChannel(slow_recv, send, proc.stdin.close, docker_framed=False)
    try:
        before = int(open(f"/proc/{proc.pid}/status").read().split("VmHWM:")[1].split()[0])
        r = run(channel, ["head", "-c", str(96 << 20), "/dev/zero"], cap=128 << 20, timeout_s=120)
        after = int(open(f"/proc/{proc.pid}/status").read().split("VmHWM:")[1].split()[0])
        assert len(r.stdout) == 96 << 20 and not r.truncated
        assert after - before < 48 * 1024  # the child waited on its pipe; the runner never held 96 MB
    finally:
        proc.kill()
        proc.wait(10)
