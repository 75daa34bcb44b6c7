"""Branching: where to cut a failed trajectory, and the ids/seeds of its re-rolls.

A failed trajectory is cut just *before* its first critical action (the domain
decides which step that is). Everything before the cut is kept verbatim and
the rest is re-rolled K times with new seeds. Because the cut precedes the
first action that changes the environment, a branch can start in a fresh
sandbox: nothing before the cut needs replaying.
"""

from __future__ import annotations

from schemas import Message, Trajectory
from synthesizers.domains.base import Domain

from pipelines.store import stable_hash


def root_trajectory_id(task_id: str, seed: int) -> str:
    return f"t-{stable_hash(task_id, seed, 'root')}"


def branch_trajectory_id(parent_id: str, cut: int, index: int) -> str:
    return f"b-{stable_hash(parent_id, cut, index)}"


def branch_seed(parent_seed: int, cut: int, index: int) -> int:
    return int(stable_hash(parent_seed, cut, index, length=8), 16)


def cut_point(domain: Domain, trajectory: Trajectory) -> int | None:
    """Index to cut at (messages[:cut] are kept), or None when there is nothing to re-roll."""
    if trajectory.verdict is None or trajectory.verdict.passed or trajectory.verdict.infrastructure:
        return None  # an infrastructure failure says nothing about the model: nothing to re-roll
    step = domain.first_critical_step(trajectory.messages)
    if step is None or step <= 0 or step >= len(trajectory.messages):
        return None
    if trajectory.messages[step].role != "assistant":
        return None
    return step


def branch_prefix(trajectory: Trajectory, cut: int) -> list[Message]:
    return [m.model_copy(deep=True) for m in trajectory.messages[:cut]]
