"""The worker's per-image sandbox pools: lazily made, one per image, chosen per task, all closed."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest

from pipelines.worker import ImagePools, _current_image


class FakePool:
    def __init__(self, image: str):
        self.image = image
        self.closed = False

    @contextlib.contextmanager
    def acquire(self):
        yield self.image  # the "box" says which image it is from

    def close(self):
        self.closed = True


def test_pools_are_made_lazily_per_image_and_routed_by_the_task_context():
    made: list[str] = []

    def make(image: str) -> FakePool:
        made.append(image)
        return FakePool(image)

    pools = ImagePools(lambda: "base", make)
    assert made == []

    def borrow() -> str:
        with pools.acquire() as box:
            return box

    async def task(image: str | None) -> tuple[str, str]:
        if image is not None:
            _current_image.set(image)
        await asyncio.sleep(0)
        # a nested task and a worker thread (as the rollout and verifier use) see the same image
        inner = await asyncio.gather(asyncio.to_thread(borrow))
        return inner[0], await asyncio.to_thread(borrow)

    async def main():
        return await asyncio.gather(task("img-a"), task(None), task("img-b"), task("img-a"))

    results = asyncio.run(main())
    assert results == [("img-a", "img-a"), ("base", "base"), ("img-b", "img-b"), ("img-a", "img-a")]
    assert sorted(made) == ["base", "img-a", "img-b"]  # one pool per image, however many tasks
    created = [pools.pool_for(i) for i in ("base", "img-a", "img-b")]
    pools.close()
    assert all(p.closed for p in created)
    with pytest.raises(RuntimeError, match="closed"):
        pools.pool_for("img-a")


def test_concurrent_first_use_makes_one_pool():
    made: list[str] = []
    gate = threading.Barrier(8)

    def make(image: str) -> FakePool:
        made.append(image)
        return FakePool(image)

    pools = ImagePools(lambda: "base", make)

    def hit():
        gate.wait()
        pools.pool_for("img")

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == ["img"]


def test_verifiers_sit_behind_the_repetition_gate_unless_the_domain_or_config_says_no():
    from pipelines.worker import make_verifier
    from synthesizers.domains.registry import get_domain
    from verifiers.repetition import RepetitionGate

    gated = make_verifier("math", "default", domain=get_domain("math"), options={"arithmetic": "flag"})
    assert isinstance(gated, RepetitionGate) and gated.inner.arithmetic == "flag"
    code = get_domain("code")
    assert not isinstance(make_verifier("code", "repo", domain=code), RepetitionGate)  # code: off by default
    assert isinstance(make_verifier("code", "repo", domain=code, repetition=True), RepetitionGate)
    assert not isinstance(make_verifier("math", "default", domain=get_domain("math"), repetition=False),
                          RepetitionGate)
