"""Atomic file writes: a reader sees the old file or the whole new one, never half of one.

The writer fills a temp file beside the target (same file system, a name no other
process or thread picks), the temp file is fsynced and ``os.replace``d over the
target; on any failure it is removed and the target is untouched. The writer
creates the temp file like any other file, so the result gets the usual
permissions (umask), not ``mkstemp``'s 0600: model folders and benchmark results
are read by other users and by containers. Standard library only, here in
``schemas`` so that every room may share it.
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path
from typing import Callable


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` fills a temp file; then it replaces ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
