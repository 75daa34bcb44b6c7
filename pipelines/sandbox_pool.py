"""One way to make a sandbox pool from a run config's ``sandbox`` section, so a run and
``trajforge verify`` judge a domain's code under the same limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.config import SandboxConfig


def make_pool(sandbox: SandboxConfig, image: str, run_id: str | None = None) -> Any:
    from sandboxes.base import SandboxLimits
    from sandboxes.docker_backend import DockerSandboxPool

    limits = SandboxLimits(memory_mb=sandbox.memory_mb, timeout_s=sandbox.timeout_s)
    return DockerSandboxPool(image=image, size=sandbox.pool_size, limits=limits, max_size=sandbox.max_pool_size,
                             exec_via=sandbox.exec_via, runtime=sandbox.runtime, run_id=run_id)


def domain_sandbox(domain: str, configs: Path | None = None) -> SandboxConfig:
    """The ``sandbox`` section of the domain's shipped config (``configs/DOMAIN.yaml``), else the defaults."""
    from pipelines.config import ConfigError, load_config

    folder = configs or Path(__file__).resolve().parents[1] / "configs"
    path = folder / f"{domain}.yaml"
    if not path.is_file():
        return SandboxConfig()
    try:
        return load_config(path).sandbox
    except ConfigError:
        return SandboxConfig()
