"""Entry points behind ``trajforge review``: serve the app, or export and build shards."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Callable

from pipelines.review.listing import Filters


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def review_url(host: str, port: int, filters: Filters) -> str:
    query = filters.query()
    return f"http://{host}:{port}/" + (f"?{query}" if query else "")


def serve(run_dir: Path, filters: Filters, host: str, port: int, announce: Callable[[str], None] = print) -> None:
    import uvicorn

    from pipelines.review.app import create_app

    app = create_app(run_dir, filters)  # loads the store first: a bad folder fails before the URL is printed
    port = port or free_port(host)
    announce(review_url(host, port, filters))
    uvicorn.run(app, host=host, port=port, log_level="warning")


def export(run_dir: Path) -> tuple[Path, Path, int]:
    """Write ``review/accepted.txt`` and ``shards-reviewed/``; returns both paths and the rows kept."""
    from pipelines.review.marks import MarkStore
    from pipelines.review.reviewed import build_reviewed_shards

    marks = MarkStore(run_dir)
    ids_path = marks.export_accepted()
    out, manifest = build_reviewed_shards(run_dir, marks.accepted_ids())
    return ids_path, out, manifest.total_rows
