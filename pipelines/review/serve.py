"""Entry points behind ``trajforge review``: serve the app, or export and build shards."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Callable

from pipelines.review.listing import Filters


def review_url(host: str, port: int, filters: Filters) -> str:
    query = filters.query()
    return f"http://{host}:{port}/" + (f"?{query}" if query else "")


def listen(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free one); a busy port is one clear OSError line."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({exc.strerror}): pass another --port (0: any free one)") from None
    return sock


def serve(run_dir: Path, filters: Filters, host: str, port: int, announce: Callable[[str], None] = print) -> None:
    import uvicorn

    from pipelines.review.app import create_app

    app = create_app(run_dir, filters)  # loads the store first: a bad folder fails before the URL is printed
    # Listen before announcing, so the printed URL answers at once (requests wait in the backlog).
    sock = listen(host, port)
    announce(review_url(host, sock.getsockname()[1], filters))
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


def export(run_dir: Path) -> tuple[Path, Path, int]:
    """Write ``review/accepted.txt`` and ``shards-reviewed/``; returns both paths and the rows kept."""
    from pipelines.review.marks import MarkStore
    from pipelines.review.reviewed import build_reviewed_shards

    marks = MarkStore(run_dir)
    ids_path = marks.export_accepted()
    out, manifest = build_reviewed_shards(run_dir, marks.accepted_ids())
    return ids_path, out, manifest.total_rows
