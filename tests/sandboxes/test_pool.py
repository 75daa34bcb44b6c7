"""The Docker pool: hardening flags, file transfer, wiping, concurrency, labels and reaping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

from sandboxes.base import Sandbox, SandboxLimits, SandboxPool
from tests.sandboxes.helpers import labelled

pytestmark = pytest.mark.docker


def test_pool_and_box_satisfy_the_protocols(sandbox_pool):
    assert isinstance(sandbox_pool, SandboxPool)
    with sandbox_pool.acquire() as box:
        assert isinstance(box, Sandbox)


def test_containers_are_started_hardened(make_pool, docker_client):
    limits = SandboxLimits(memory_mb=256, pids=64, cpus=0.5, workdir_mb=32)
    pool = make_pool(size=1, limits=limits, run_id=f"t-{uuid.uuid4().hex[:8]}")
    with pool.acquire() as box:
        attrs = docker_client.api.inspect_container(box.id)
    host, config = attrs["HostConfig"], attrs["Config"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["NetworkMode"] == "none" and config["NetworkDisabled"] is True
    assert host["Memory"] == 256 * 2**20 and host["MemorySwap"] == 256 * 2**20
    assert host["PidsLimit"] == 64 and host["NanoCpus"] == 500_000_000
    assert "size=32m" in host["Tmpfs"]["/work"] and "uid=10001" in host["Tmpfs"]["/work"]
    assert config["User"] == "10001:10001"
    assert config["Labels"]["trajforge.sandbox"] == "1"
    assert config["Labels"]["trajforge.run"] == pool.run_id
    assert config["Labels"]["trajforge.owner_pid"] == str(os.getpid())


def test_put_and_get_round_trip(sandbox_pool):
    blob = bytes(range(256)) * 1000
    with sandbox_pool.acquire() as box:
        box.put_files({"a.txt": "héllo\n", "deep/er/b.bin": blob, "/tmp/abs.txt": "absolute"})
        assert box.get_file("a.txt") == "héllo\n".encode()
        assert box.get_file("/work/deep/er/b.bin") == blob
        assert box.get_file("/tmp/abs.txt") == b"absolute"
        listing = box.exec("stat -c '%u %n' a.txt deep/er/b.bin").stdout.split("\n")
        assert all(line.startswith("10001 ") for line in listing if line)
        with pytest.raises(FileNotFoundError):
            box.get_file("missing.txt")


def test_acquire_returns_a_wiped_work_dir_and_no_leftover_processes(make_pool):
    pool = make_pool(size=1)
    with pool.acquire() as box:
        first_id = box.id
        box.put_files({"secret.txt": "from the previous user"})
        box.exec("mkdir -p d/e && touch .hidden /tmp/t d/e/f && chmod 000 d; (sleep 300 >/dev/null 2>&1 &)")
    with pool.acquire() as box:
        assert box.id == first_id  # wiped in place, not replaced
        assert box.exec("ls -A /work /tmp | grep -v ':$' | grep -v '^$' | wc -l").stdout.strip() == "0"
        assert "sleep" not in box.exec("cat /proc/[0-9]*/comm").stdout


def test_timeout_and_output_cap_per_exec(make_pool):
    pool = make_pool(size=1, limits=SandboxLimits(timeout_s=1.0, output_bytes=1000))
    with pool.acquire() as box:
        slow = box.exec("sleep 5")  # the pool's default timeout applies
        assert slow.timed_out and slow.exit_code is None
        assert "sleep" not in box.exec("cat /proc/[0-9]*/comm").stdout  # killed, not left running
        loud = box.exec("yes | head -c 5000; yes e | head -c 3000 >&2")
        assert loud.truncated and len(loud.stdout) == 1000 and len(loud.stderr) == 1000
        quiet = box.exec(["printf", "%s", "a b"], env={"X": "1"}, workdir="/tmp")
        assert quiet.stdout == "a b" and not quiet.truncated and quiet.ok
        assert box.exec("echo $X $PWD", env={"X": "42"}, workdir="/tmp").stdout == "42 /tmp\n"


def test_four_threads_at_once(sandbox_pool):
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with sandbox_pool.acquire() as box:
                box.put_files({f"mine-{n}.txt": f"thread {n}"})
                out = box.exec(f"sleep 0.3; cat mine-{n}.txt; ls /work | wc -l")
                results[n] = out.stdout
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    # Every thread saw only its own file: boxes are never shared while acquired.
    assert results == {n: f"thread {n}1\n" for n in range(4)}


@pytest.mark.parametrize("exec_via", ["runner", "docker"])
def test_concurrent_execs_on_one_box_run_in_parallel(make_pool, exec_via):
    # Each call waits (bounded) until all four are running at once; calls served one after the
    # other would see fewer and say "alone". No clock involved, so a loaded host cannot flake it.
    barrier = ("touch /tmp/started-$1; i=0; while [ $(ls /tmp/started-* | wc -l) -lt 4 ]; do "
               "i=$((i+1)); [ $i -gt 300 ] && { echo $1 alone; exit 1; }; sleep 0.05; done; echo $1 together")
    pool = make_pool(size=1, exec_via=exec_via)
    with pool.acquire() as box:
        outputs: list[str] = []
        threads = [threading.Thread(target=lambda n=n: outputs.append(
            box.exec(["sh", "-c", barrier, "sh", str(n)], timeout_s=60).stdout)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert box.calls[exec_via] >= 4
    assert sorted(outputs) == [f"{n} together\n" for n in range(4)]


def test_exec_path_is_chosen_per_pool_and_checked(make_pool, monkeypatch):
    with pytest.raises(ValueError, match="exec_via"):
        make_pool(size=1, exec_via="ssh")
    monkeypatch.setenv("TRAJFORGE_SANDBOX_EXEC", "docker")
    pool = make_pool(size=1)
    with pool.acquire() as box:
        assert box.exec("echo via docker").stdout == "via docker\n"
        assert box.calls == {"runner": 0, "docker": 1}


def test_close_leaves_no_container_behind(make_pool, docker_client):
    run_id = f"t-{uuid.uuid4().hex[:8]}"
    pool = make_pool(size=2, run_id=run_id)
    with pool.acquire() as box:
        box.exec("sleep 30", timeout_s=0.5)  # a timed-out box must not leak either
    assert len(labelled(docker_client, run=run_id)) == 2
    pool.close()
    assert labelled(docker_client, run=run_id) == []
    with pytest.raises(RuntimeError):
        with pool.acquire():
            pass


_CRASHING_OWNER = textwrap.dedent("""
    import sys, time
    from sandboxes.docker_backend import DockerSandboxPool
    pool = DockerSandboxPool(image=sys.argv[1], size=1, run_id=sys.argv[2])
    print("ready", flush=True)
    time.sleep(300)
""")


def test_reap_removes_containers_of_a_dead_owner(sandbox_image, docker_client):
    from sandboxes.docker_backend import reap

    run_id = f"crash-{uuid.uuid4().hex[:8]}"
    owner = subprocess.Popen([sys.executable, "-c", _CRASHING_OWNER, sandbox_image, run_id],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "ready"
        orphans = labelled(docker_client, run=run_id)
        assert len(orphans) == 1 and orphans[0]["Labels"]["trajforge.owner_pid"] == str(owner.pid)
        reap()
        assert len(labelled(docker_client, run=run_id)) == 1  # a live owner's box is left alone
    finally:
        owner.send_signal(signal.SIGKILL)  # no atexit, no close(): a crash
        owner.wait(10)
    assert len(labelled(docker_client, run=run_id)) == 1
    assert reap() >= 1
    assert labelled(docker_client, run=run_id) == []


def test_reap_by_age_spares_younger_containers(make_pool, docker_client):
    from sandboxes.docker_backend import reap

    pool = make_pool(size=1, run_id=f"t-{uuid.uuid4().hex[:8]}")
    reap(older_than_s=3600, run_id=pool.run_id)
    assert len(labelled(docker_client, run=pool.run_id)) == 1
    time.sleep(2.1)
    reap(older_than_s=1, run_id=pool.run_id)
    assert labelled(docker_client, run=pool.run_id) == []
