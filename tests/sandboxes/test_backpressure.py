"""Back-pressure: pools grow on demand within a per-pool and a host-wide cap, callers queue, refused
container starts are retried. Properties are checked by counting boxes, never by timing."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid

import pytest
from docker.errors import APIError

from sandboxes.docker_backend import SandboxError
from sandboxes.slots import HostSlots
from tests.sandboxes.helpers import labelled


def test_host_slots_are_exclusive_and_freed_when_the_holder_dies(tmp_path):
    slots = HostSlots(cap=2, directory=tmp_path)
    first, second = slots.try_take(), slots.try_take()
    assert first and second and slots.try_take() is None and slots.in_use() == 2
    first.release()
    assert slots.in_use() == 1
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom sandboxes.slots import HostSlots\n"
                               f"s = HostSlots(cap=2, directory={str(tmp_path)!r}).try_take()\n"
                               "print('took' if s else 'none', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "took"
        assert slots.try_take() is None  # another process holds the last slot
    finally:
        holder.kill()  # a crash: no release call
        holder.wait(10)
    third = slots.try_take()
    assert third is not None
    third.release()
    second.release()


@pytest.mark.docker
def test_a_pool_grows_to_its_cap_and_callers_queue(make_pool, docker_client, tmp_path):
    pool = make_pool(size=1, max_size=3, run_id=f"t-{uuid.uuid4().hex[:8]}",
                     host_slots=HostSlots(cap=10, directory=tmp_path))
    held: set[str] = set()
    peak = [0]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with pool.acquire(timeout_s=120) as box:
                with lock:
                    held.add(box.id)
                    peak[0] = max(peak[0], len(held))
                assert box.exec("echo hi").stdout == "hi\n"
                box.exec("sleep 0.3")
                with lock:
                    held.discard(box.id)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors
    assert pool.stats["peak_boxes"] <= 3 and peak[0] <= 3
    assert pool.stats["started"] <= 3 and len(labelled(docker_client, run=pool.run_id)) <= 3
    assert pool.stats["waited"] >= 1  # 8 callers, 3 boxes: some queued


@pytest.mark.docker
def test_the_host_cap_holds_across_pools(make_pool, tmp_path):
    slots = HostSlots(cap=2, directory=tmp_path)
    a = make_pool(size=1, max_size=4, host_slots=slots)
    b = make_pool(size=1, max_size=4, host_slots=slots)
    assert slots.in_use() == 2
    with a.acquire() as box_a:
        with pytest.raises(SandboxError, match="no sandbox free"):
            with a.acquire(timeout_s=0.5):
                pass  # a's only box is busy and the host has no slot to grow into
        assert box_a.exec("true").ok
    with b.acquire(timeout_s=30) as box_b, a.acquire(timeout_s=30) as box_a:
        assert box_a.id != box_b.id
    assert a.stats["started"] == 1 and b.stats["started"] == 1


@pytest.mark.docker
def test_refused_starts_are_retried_and_failed_boxes_free_their_place(make_pool, monkeypatch, tmp_path):
    from sandboxes import pool as pool_mod

    monkeypatch.setattr(pool_mod, "START_BACKOFF_S", 0.01)
    pool = make_pool(size=1, max_size=2, host_slots=HostSlots(cap=10, directory=tmp_path))
    real = pool._run_container
    refusals = iter([APIError("daemon overloaded"), APIError("daemon overloaded")])

    def flaky(name):
        exc = next(refusals, None)
        if exc is not None:
            raise exc
        return real(name)

    monkeypatch.setattr(pool, "_run_container", flaky)
    with pool.acquire() as first, pool.acquire(timeout_s=60) as second:  # the second box starts now
        assert first.id != second.id and second.exec("echo up").stdout == "up\n"
    assert pool.stats["start_retries"] == 2
    # A box that fails its reset is removed and its place freed (not handed out again).
    with pool.acquire() as box:
        broken = box.id
        monkeypatch.setattr(box, "reset", lambda: False)
    assert pool.stats["replaced"] == 1 and broken not in {b.id for b in pool._idle}
    with pool.acquire() as a, pool.acquire(timeout_s=60) as b:
        assert broken not in (a.id, b.id)
