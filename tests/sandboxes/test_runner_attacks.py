"""Attacks on the in-box runner itself, in a real box: kill it, reach its channel, flood it, forge its
framing, fill its pipes, end output without a newline. After each, the same runner (no docker exec,
same container) must still serve the next call correctly."""

from __future__ import annotations

import threading
import tracemalloc

import pytest

from sandboxes.runner import HEADER
from tests.sandboxes.helpers import assert_pool_healthy

pytestmark = pytest.mark.docker


@pytest.fixture
def box(sandbox_pool, docker_client):
    with sandbox_pool.acquire() as box:
        assert box.exec_via == "runner"
        before = dict(box.calls)
        pid1_start = box.exec("cut -d' ' -f22 /proc/1/stat").stdout
        yield box
        # Still the same runner: same PID 1 start time, and nothing went through docker exec.
        assert box.exec("cut -d' ' -f22 /proc/1/stat").stdout == pid1_start
        assert box.calls["docker"] == before["docker"]
    assert_pool_healthy(sandbox_pool, docker_client)


def test_signals_from_inside_cannot_end_or_stop_it(box):
    result = box.exec("for s in KILL STOP SEGV TERM INT HUP QUIT ABRT; do kill -$s 1; done; kill -9 -1; "
                      "echo survived", timeout_s=5)
    assert "survived" in result.stdout
    assert box.exec("echo still here").stdout == "still here\n"


def test_its_channel_and_memory_are_out_of_reach(box):
    script = ("import ctypes, os\n"
              "for path, mode in (('/proc/1/fd/0', os.O_RDONLY), ('/proc/1/fd/1', os.O_WRONLY), ('/proc/1/mem', os.O_RDWR)):\n"
              "    try: os.open(path, mode); print('OPENED', path)\n"
              "    except OSError as e: print('refused', path, e.errno)\n"
              "libc = ctypes.CDLL(None, use_errno=True)\n"
              "print('ptrace', libc.ptrace(16, 1, 0, 0), ctypes.get_errno())\n")  # PTRACE_ATTACH
    result = box.exec(["python3", "-c", script])
    assert "OPENED" not in result.stdout and result.stdout.count("refused") == 3, result
    assert "ptrace -1 1\n" in result.stdout  # EPERM
    assert box.exec("ls /proc/1/fd").exit_code != 0


def test_forged_framing_in_output_is_returned_as_data(box):
    # Exit frames for every plausible request id and docker stream headers, then a torn header.
    forged = b"".join(HEADER.pack(b"X", rid, 11) + b'{"code": 0}' for rid in range(1, 120))
    forged += b"\x01\x00\x00\x00\x00\x00\x00\x05hello" + b"X\x00\x00\x00"
    script = f"import sys, time; sys.stdout.buffer.write({forged!r}); sys.stdout.flush(); time.sleep(0.2); sys.exit(7)"
    victim: list = []
    neighbour = threading.Thread(target=lambda: victim.append(box.exec("sleep 1; exit 5", timeout_s=20)))
    neighbour.start()
    result = box.exec(["python3", "-c", script], timeout_s=20)
    neighbour.join(30)
    assert result.exit_code == 7 and result.stdout.encode() == forged
    assert victim[0].exit_code == 5  # a concurrent call's result was not spoofed either


def test_flooding_the_channel_is_capped_per_call(box):
    cap = box.limits.output_bytes
    results: list = []
    flood = "yes AAAA | head -c 30000000 & yes BBBB | head -c 30000000 >&2; wait"
    tracemalloc.start()
    try:
        threads = [threading.Thread(target=lambda: results.append(box.exec(flood, timeout_s=60))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(results) == 4
    for r in results:
        assert r.exit_code == 0 and r.truncated and len(r.stdout) == cap and len(r.stderr) == cap
    assert peak < 16 * cap + (4 << 20)  # 240 MB went by; the host held about the caps
    assert box.exec("echo ok").stdout == "ok\n"


def test_full_pipes_and_unread_stdin_do_not_wedge_it(box):
    # Internal call: the Protocol's exec has no stdin; put_files uses the same path.
    raw = box._raw(["sh", "-c", "head -c 5000000 /dev/zero >&2; head -c 5000000 /dev/zero; echo done >&2"],
                   timeout_s=30, cap=1000, stdin=b"z" * (16 << 20))
    assert raw.exit_code == 0 and raw.truncated and not raw.host_timed_out
    box.put_files({"big.bin": b"q" * (8 << 20)})
    assert box.exec("wc -c < big.bin").stdout.strip() == str(8 << 20)


def test_output_without_a_newline_and_partial_headers(box):
    assert box.exec("printf 'no newline'").stdout == "no newline"
    assert box.exec(["python3", "-c", "import sys; sys.stdout.buffer.write(b'O\\x00\\x00\\x00\\x01')"]).stdout \
        == "O\x00\x00\x00\x01"
    assert box.exec("printf x; exit 3").exit_code == 3


def test_a_box_killed_from_the_host_is_an_error_and_is_replaced(make_pool):
    from sandboxes.docker_backend import SandboxError

    pool = make_pool(size=1)
    with pool.acquire() as box:
        first = box.id
        assert box.exec("true").ok
        box.container.kill()  # the host (or OOM of PID 1) ends the box: PID 1 and its channel go
        with pytest.raises(SandboxError):
            box.exec("echo never", timeout_s=5)
    with pool.acquire() as box:  # release found it unhealthy and started a fresh one
        assert box.id != first and box.exec("echo fresh").stdout == "fresh\n"


@pytest.mark.parametrize("exec_via", ["runner", "docker"])
def test_reset_leaves_nothing_for_the_next_user_of_the_box(make_pool, exec_via):
    pool = make_pool(size=1, exec_via=exec_via)
    with pool.acquire() as box:
        first = box.id
        assert box.exec("echo left > /dev/shm/note && echo w > /work/w && echo t > /tmp/t && ls /dev/shm").stdout \
            == "note\n"
    with pool.acquire() as box:
        assert box.id == first  # the same box, reset
        assert box.exec("ls -A /dev/shm /work /tmp | grep -v ':$' | grep -c . || true").stdout.strip() == "0"
