"""A host-wide cap on sandbox containers, shared by every process (pools, Ray workers, test sessions).

Each live container holds one slot: an exclusive ``flock`` on one of ``cap``
files in a directory every process on the host sees. The kernel drops a lock
when its holder dies, so a crashed run never keeps slots, and nothing has to
be cleaned up. ``TRAJFORGE_SANDBOX_HOST_CAP`` sets the cap (default 64),
``TRAJFORGE_SANDBOX_SLOTS_DIR`` the directory.
"""

from __future__ import annotations

import fcntl
import os
import random
import tempfile
import time
from pathlib import Path

DEFAULT_HOST_CAP = 64


class Slot:
    def __init__(self, fd: int, index: int):
        self._fd, self.index = fd, index

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = -1


class HostSlots:
    def __init__(self, cap: int | None = None, directory: str | Path | None = None):
        self.cap = int(cap or os.environ.get("TRAJFORGE_SANDBOX_HOST_CAP") or DEFAULT_HOST_CAP)
        if self.cap < 1:
            raise ValueError("the host's sandbox cap must be at least 1")
        self.dir = Path(directory or os.environ.get("TRAJFORGE_SANDBOX_SLOTS_DIR")
                        or Path(tempfile.gettempdir()) / "trajforge-sandbox-slots")
        self.dir.mkdir(parents=True, exist_ok=True)

    def try_take(self) -> Slot | None:
        """A free slot now, or None when the host is at its cap."""
        # Start at a random index so concurrent takers rarely race for the same file.
        offset = random.randrange(self.cap)
        for i in range(self.cap):
            index = (offset + i) % self.cap
            fd = os.open(self.dir / f"slot-{index}.lock", os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return Slot(fd, index)
            except BlockingIOError:
                os.close(fd)
        return None

    def take(self, timeout_s: float) -> Slot | None:
        """Wait (polling with backoff) up to ``timeout_s`` for a slot; None if none came free."""
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        while True:
            slot = self.try_take()
            if slot is not None or time.monotonic() >= deadline:
                return slot
            time.sleep(min(delay, max(deadline - time.monotonic(), 0)))
            delay = min(delay * 2, 1.0)

    def in_use(self) -> int:
        """Slots held right now (by any process)."""
        held = 0
        for index in range(self.cap):
            path = self.dir / f"slot-{index}.lock"
            if not path.exists():
                continue
            fd = os.open(path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
            except BlockingIOError:
                held += 1
            finally:
                os.close(fd)
        return held
