"""The reviewer page: sample a run's trajectories, read them (phases, tool calls,
verdict, lineage, the exact loss-carrying shard tokens), mark accept/reject, and
build a reviewed shard set from the accepted ones. ``trajforge review RUN_DIR``."""

from __future__ import annotations


def create_app(*args, **kwargs):
    """See ``pipelines.review.app.create_app`` (imported lazily: FastAPI is only needed here)."""
    from pipelines.review.app import create_app as make

    return make(*args, **kwargs)
