"""One way to shorten what a tool or a command printed before the model reads it.

Head and tail are kept (a traceback's last lines and a test run's summary sit at the end), and the
cut is said in place, so the model knows something is missing. Code's policies read clipped
observations back (``controllers``/``localize``): the marker's shape is part of the contract.
"""

from __future__ import annotations

MARKER = "\n[... {cut} characters cut ...]\n"


def clip(text: str, limit: int) -> str:
    """``text`` without trailing newlines if it fits in ``limit`` characters; otherwise its first
    two thirds of ``limit``, the marker, and the last third (the marker is not counted)."""
    text = text.rstrip("\n")
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    return text[:head] + MARKER.format(cut=len(text) - limit) + text[len(text) - (limit - head):]


def clip_within(text: str, limit: int) -> str:
    """``clip`` with the marker counted too: never longer than ``limit`` (a hard cap on an observation)."""
    if len(text) <= limit:
        return text
    budget = limit - len(MARKER.format(cut=len(text)))
    return clip(text, budget) if budget > 0 else text[:limit]
