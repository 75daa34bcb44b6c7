"""Fixtures for the reviewer tests: one synthetic run folder per session (read-only
tests share it) and a fresh copy for tests that write marks."""

from __future__ import annotations

import shutil

import pytest

from tests.pipelines.review.runfixture import make_run


@pytest.fixture(scope="session")
def fixture_run(tmp_path_factory, model_dir):
    run_dir = tmp_path_factory.mktemp("review") / "run"
    trajectories = make_run(run_dir, model_dir)
    return run_dir, {t.id: t for t in trajectories}


@pytest.fixture
def fresh_run(fixture_run, tmp_path):
    """A private copy, so marks written by one test never leak into another."""
    src, trajectories = fixture_run
    dst = tmp_path / "run"
    shutil.copytree(src, dst)
    return dst, trajectories


@pytest.fixture(scope="session")
def trace_run(tmp_path_factory, model_dir):
    """A run whose trajectories carry token traces (``tracefixture``)."""
    from tests.pipelines.review.tracefixture import make_trace_run

    run_dir = tmp_path_factory.mktemp("review-trace") / "run"
    trajectories = make_trace_run(run_dir, model_dir)
    return run_dir, {t.id: t for t in trajectories}
