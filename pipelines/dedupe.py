"""Deduplication of trajectories: exact (normalised hash) and near (MinHash LSH).

Within a duplicate cluster one trajectory is kept: passed before failed, then
the higher score, then the shorter text, then the smaller id (deterministic).
The text compared is the assistant side of the conversation — what the
trainer learns from.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from datasketch import MinHash, MinHashLSH

from schemas import Trajectory

_SPACE = re.compile(r"\s+")


def normalized_text(trajectory: Trajectory) -> str:
    parts = []
    for m in trajectory.messages:
        if m.role == "assistant":
            parts.append(m.content)
            parts.extend(f"{c.function.name}({c.function.arguments})" for c in m.tool_calls)
    return _SPACE.sub(" ", " ".join(parts).lower()).strip()


def _preference(t: Trajectory, text: str) -> tuple:
    v = t.verdict
    return (not (v and v.passed), -(v.score if v else 0.0), len(text), t.id)


def _shingles(text: str, size: int) -> set[bytes]:
    words = text.split()
    if len(words) <= size:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}


@dataclass
class DedupeResult:
    kept: list[Trajectory]
    removed_exact: list[str] = field(default_factory=list)
    removed_near: list[str] = field(default_factory=list)


def dedupe(
    trajectories: list[Trajectory],
    *,
    exact: bool = True,
    near: bool = True,
    threshold: float = 0.85,
    num_perm: int = 128,
    shingle_size: int = 5,
) -> DedupeResult:
    texts = {t.id: normalized_text(t) for t in trajectories}
    ordered = sorted(trajectories, key=lambda t: _preference(t, texts[t.id]))
    result = DedupeResult(kept=[])
    seen_hashes: set[str] = set()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm) if near else None
    for t in ordered:  # best first, so the first of each cluster is the keeper
        text = texts[t.id]
        if exact:
            digest = hashlib.sha256(text.encode()).hexdigest()
            if digest in seen_hashes:
                result.removed_exact.append(t.id)
                continue
            seen_hashes.add(digest)
        if lsh is not None and text:
            sig = MinHash(num_perm=num_perm, seed=1)
            sig.update_batch(list(_shingles(text, shingle_size)))
            if lsh.query(sig):
                result.removed_near.append(t.id)
                continue
            lsh.insert(t.id, sig)
        result.kept.append(t)
    result.kept.sort(key=lambda t: t.id)
    return result
