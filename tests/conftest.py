"""Session-wide fixtures shared by every room's tests.

Heavy real parts are started at most once per test session: one vLLM engine
(the embedded SmolLM2 model) and one Docker sandbox pool on one image.
Room-specific fixtures live in ``tests/<room>/conftest.py``.
"""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def model_dir():
    """The converted embedded model (made by `make setup`)."""
    from synthesizers.engines.model_store import default_model_dir

    path = default_model_dir()
    if not (path / "config.json").exists():
        pytest.fail(f"embedded model missing at {path}: run `make setup`")
    return path


@pytest.fixture(scope="session")
def embedded_tokenizer(model_dir):
    """The embedded model's tokenizer (with trajforge's tool-aware chat template)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


@pytest.fixture(scope="session")
def vllm_engine(model_dir):
    """One in-process vLLM engine for the whole session."""
    from synthesizers.engines.vllm_local import VLLMEngine

    engine = VLLMEngine(str(model_dir))
    yield engine
    asyncio.run(engine.close()) if not _loop_running() else None


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


@pytest.fixture(scope="session")
def sandbox_image():
    from sandboxes.image import ensure_image

    return ensure_image()


@pytest.fixture(scope="session")
def sandbox_pool(sandbox_image):
    """One warm pool of hardened containers for the whole session."""
    from sandboxes.docker_backend import DockerSandboxPool

    pool = DockerSandboxPool(image=sandbox_image, size=2)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def code_project():
    """The small real project of the code-domain tests (cachetools), fetched and sha256-checked."""
    from tests.synthesizers.domains.code.helpers import project_spec

    return project_spec()


@pytest.fixture(scope="session")
def code_pool(code_project):
    """One warm pool of the code project's own image (test deps baked in) for the session."""
    from tests.synthesizers.domains.code.helpers import project_pool

    with project_pool(code_project) as pool:
        yield pool


@pytest.fixture(autouse=True)
def _ray_is_shut_down_after_each_test():
    """No test inherits another's Ray runtime (or its leaked actors and objects)."""
    yield
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
