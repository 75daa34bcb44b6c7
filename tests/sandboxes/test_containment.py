"""Adversarial containment suite: hostile commands in a real container.

Each test runs one attack in a box, asserts the attack was contained, and
then that the pool still hands out a healthy, wiped box and the Docker daemon
still answers. The whole suite runs twice: through the in-box runner (the
default path) and through ``docker exec`` (the fallback); a fixture checks that
every call took the path under test.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import tracemalloc

import pytest

from tests.sandboxes.helpers import assert_pool_healthy

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module", params=["runner", "docker"])
def sandbox_pool(request, sandbox_image):
    from sandboxes.docker_backend import DockerSandboxPool

    pool = DockerSandboxPool(image=sandbox_image, size=2, exec_via=request.param)
    yield pool
    pool.close()


@pytest.fixture
def box_after(sandbox_pool, docker_client):
    """Yields a box for the attack; afterwards checks the path used, and that the pool and daemon survived."""
    with sandbox_pool.acquire() as box:
        yield box
        other = "docker" if sandbox_pool.exec_via == "runner" else "runner"
        assert box.calls[sandbox_pool.exec_via] > 0 and box.calls[other] == 0, box.calls
    assert_pool_healthy(sandbox_pool, docker_client)


def _running(box) -> list[str]:
    """Command names of every process in the box but PID 1 and this probe."""
    names = box.exec("for p in /proc/[0-9]*; do [ ${p#/proc/} = 1 ] || [ ${p#/proc/} = $$ ] || "
                     "cat $p/comm 2>/dev/null; done").stdout.split()
    return [n for n in names if n not in ("cat", "timeout")]  # the probe's own helpers


def test_fork_bomb_is_stopped_by_the_pid_limit(box_after, sandbox_pool):
    counter = ("import os,time\nn=0\ntry:\n while n<5000:\n  if os.fork()==0:\n   time.sleep(30); os._exit(0)\n"
               "  n+=1\nexcept OSError as e: print(n, e.errno)")
    result = box_after.exec(["python3", "-c", counter], timeout_s=30)
    forked, errno = result.stdout.split()
    assert int(forked) < sandbox_pool.limits.pids  # fork() failed before the limit was passed
    assert errno == "11"  # EAGAIN: "Resource temporarily unavailable"
    bomb = box_after.exec("bomb() { bomb | bomb & }; bomb; sleep 2; echo done", timeout_s=4)
    # The shell got to the end despite the bomb, or the pid limit refused its own fork, or the
    # deadline ended it: three contained outcomes, and nothing else.
    finished = bomb.exit_code == 0 and bomb.stdout.endswith("done\n")
    refused = bomb.exit_code not in (0, None) and "Cannot fork" in bomb.stderr
    assert finished or refused or (bomb.timed_out and bomb.exit_code is None), bomb
    assert subprocess.run(["true"]).returncode == 0  # the host can still fork


def test_one_gigabyte_allocation_fails(box_after):
    result = box_after.exec(["python3", "-c", "b = bytearray(1 << 30); print('ALLOCATED', len(b))"], timeout_s=30)
    assert "ALLOCATED" not in result.stdout
    assert result.exit_code not in (0, None)  # OOM-killed (137) or MemoryError (1)


class _Listener:
    """A real TCP server on the host, so a failed connect proves isolation, not absence."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.sendall(b"hello\n")
            conn.close()


def _host_ipv4_addresses() -> set[str]:
    # Every address the host owns: loopback, docker0's gateway, the uplink.
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    return {line.split()[3].split("/")[0] for line in out.splitlines()} | {"127.0.0.1"}


def test_no_network_to_host_or_dns(box_after):
    listener = _Listener()
    try:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=2) as probe:
            assert probe.recv(6) == b"hello\n"  # the host-side server really answers
        host_ips = _host_ipv4_addresses()
        script = (
            "import socket,sys\n"
            f"for ip in {sorted(host_ips)!r}:\n"
            "    try:\n"
            f"        socket.create_connection((ip, {listener.port}), timeout=2); print('CONNECTED', ip)\n"
            "    except OSError as e: print('refused', ip, e.errno)\n"
            "try:\n    print('RESOLVED', socket.getaddrinfo('deb.debian.org', 80)[0][4])\n"
            "except OSError as e: print('no dns', e)\n"
        )
        result = box_after.exec(["python3", "-c", script], timeout_s=20)
    finally:
        listener.sock.close()
    assert result.exit_code == 0, result
    assert "CONNECTED" not in result.stdout
    assert result.stdout.count("refused") == len(host_ips)
    assert "RESOLVED" not in result.stdout and "no dns" in result.stdout
    interfaces = box_after.exec("tail -n +3 /proc/net/dev | cut -d: -f1").stdout.split()
    assert interfaces == ["lo"]


@pytest.mark.parametrize("path", ["/evil", "/usr/evil", "/etc/passwd", "/usr/bin/python3"])
def test_root_file_system_is_not_writable(box_after, path):
    result = box_after.exec(f"echo pwned >> {path} && echo WROTE", timeout_s=5)
    assert "WROTE" not in result.stdout
    assert "Read-only file system" in result.stderr or "Permission denied" in result.stderr
    # Non-root alone would refuse these; the root mount itself must also be read-only.
    root_options = box_after.exec("awk '$2 == \"/\" {print $4}' /proc/mounts").stdout.split(",")
    assert root_options[0] == "ro"


def test_infinite_loop_times_out(box_after):
    result = box_after.exec(["python3", "-c", "while True: pass"], timeout_s=1.5)
    assert result.timed_out and result.exit_code is None
    assert result.duration_s >= 1.4  # ended by the deadline, not before it
    assert "python3" not in _running(box_after)  # and the loop is dead, not left spinning


def test_sleeping_past_the_timeout_and_escaping_the_process_group(box_after):
    plain = box_after.exec("sleep 60", timeout_s=1)
    assert plain.timed_out and plain.exit_code is None
    assert "sleep" not in _running(box_after)
    # A setsid child leaves the process group the deadline kills and keeps stdout open: the
    # escalation (kill every sandbox process) must end it too, not leave it for the next call.
    escaped = box_after.exec("setsid sleep 60 & sleep 60", timeout_s=1)
    assert escaped.timed_out and escaped.exit_code is None
    assert "sleep" not in _running(box_after)


def test_huge_output_is_cut_without_filling_memory(box_after, sandbox_pool):
    # tracemalloc's peak covers this call only (the process's ru_maxrss is a lifetime peak that an
    # earlier test could already have raised), and every thread's allocations, the reader's included.
    tracemalloc.start()
    try:
        result = box_after.exec("head -c 100000000 /dev/zero | tr '\\0' x; echo tail >&2", timeout_s=60)
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0
    assert result.truncated
    assert len(result.stdout) == sandbox_pool.limits.output_bytes and set(result.stdout) == {"x"}
    assert result.stderr == "tail\n"  # the other stream is demultiplexed intact
    assert peak_mb < 16  # 100 MB went by; a few output caps at most were ever held


def test_kill_every_process_leaves_the_box_running(box_after):
    container_id = box_after.id
    result = box_after.exec("kill -9 -1; kill -INT 1; kill -TERM 1; echo survived", timeout_s=5)
    assert "survived" in result.stdout  # the killer itself is spared by kill(-1)
    again = box_after.exec("echo still here", timeout_s=5)
    assert again.stdout == "still here\n"
    box_after.container.reload()
    assert box_after.container.status == "running" and box_after.id == container_id


def test_docker_socket_is_out_of_reach(box_after):
    script = ("import socket\ns = socket.socket(socket.AF_UNIX)\n"
              "try:\n    s.connect('/var/run/docker.sock'); print('CONNECTED')\nexcept OSError as e: print('no', e.errno)")
    result = box_after.exec(["python3", "-c", script], timeout_s=5)
    assert result.stdout.startswith("no ")
    mounts = box_after.exec("cat /proc/mounts").stdout
    assert "docker.sock" not in mounts


def test_process_has_no_privileges(box_after):
    status = dict(line.split(":\t", 1) for line in box_after.exec("cat /proc/self/status").stdout.splitlines()
                  if ":\t" in line)
    assert status["Uid"].split()[0] == "10001"
    assert status["CapEff"].strip() == "0" * 16 and status["CapBnd"].strip() == "0" * 16
    assert status["NoNewPrivs"].strip() == "1"


def test_filling_the_work_dir_is_bounded_and_wiped(sandbox_pool, docker_client):
    with sandbox_pool.acquire() as box:
        result = box.exec("head -c 2000000000 /dev/zero > /work/big; echo $?; du -sm /work", timeout_s=30)
    code, size_mb = result.stdout.split()[0], int(result.stdout.split()[1])
    assert code != "0" and size_mb <= sandbox_pool.limits.workdir_mb  # ENOSPC at the tmpfs size
    assert_pool_healthy(sandbox_pool, docker_client)
