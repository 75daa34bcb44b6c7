"""Fixtures for sandbox tests: a Docker client and throw-away pools that are always closed."""

from __future__ import annotations

import pytest

from sandboxes.base import SandboxLimits


@pytest.fixture(scope="session")
def docker_client():
    from sandboxes.daemon import ensure_docker

    return ensure_docker()


@pytest.fixture
def make_pool(sandbox_image):
    """Build a private pool (own run id, own limits); every one is closed after the test."""
    from sandboxes.docker_backend import DockerSandboxPool

    pools = []

    def factory(size: int = 1, limits: SandboxLimits = SandboxLimits(), run_id: str | None = None, **options):
        pool = DockerSandboxPool(image=sandbox_image, size=size, limits=limits, run_id=run_id, **options)
        pools.append(pool)
        return pool

    yield factory
    for pool in pools:
        pool.close()
