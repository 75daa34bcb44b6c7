"""Mask + tokenize stage: trajectories -> shard rows (one per trajectory).

Runs as Ray tasks over chunks of the store. A trajectory that cannot be
rendered is skipped and reported, never fatal.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from schemas import ShardRow, Trajectory

from pipelines.masking import ChatMasker


@lru_cache(maxsize=4)
def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def tokenizer_id(path: str) -> str:
    """A stable, human-readable tokenizer id for the manifest (the folder name for local paths)."""
    p = Path(path)
    return p.name if p.exists() else path


def trajectories_to_rows(
    trajectories: list[Trajectory], tokenizer_path: str, policy: str
) -> tuple[list[ShardRow], list[tuple[str, str]]]:
    masker = ChatMasker(load_tokenizer(tokenizer_path), policy)
    rows, errors = [], []
    for t in trajectories:
        try:
            rendered = masker.render(t.messages, t.tools or None)
        except Exception as exc:
            errors.append((t.id, f"{type(exc).__name__}: {exc}"))
            continue
        rows.append(
            ShardRow(
                trajectory_id=t.id,
                domain=t.domain,
                input_ids=rendered.input_ids,
                loss_mask=rendered.loss_mask,
                num_tokens=len(rendered.input_ids),
                num_loss_tokens=sum(rendered.loss_mask),
                task_id=t.task_id,
                parent_id=t.parent_id,
                passed=bool(t.verdict and t.verdict.passed),
                score=t.verdict.score if t.verdict else 0.0,
            )
        )
    return rows, errors
