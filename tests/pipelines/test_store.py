import os

import pytest

from pipelines.atomic import write_text
from pipelines.store import RunFolderMismatch, TrajectoryStore, plan_units
from schemas import Message, Task, Trajectory, Verdict


def tasks(n):
    return [Task(id=f"t{i}", domain="math", payload={"question": f"q{i}", "answer": str(i)}) for i in range(n)]


def test_units_are_deterministic_and_cover_every_task():
    a = plan_units(tasks(10), 4)
    b = plan_units(tasks(10), 4)
    assert [u.id for u in a] == [u.id for u in b]
    assert [len(u.tasks) for u in a] == [4, 4, 2]
    assert sorted(t.id for u in a for t in u.tasks) == sorted(t.id for t in tasks(10))
    assert len({u.id for u in a}) == 3


def test_unit_round_trip_and_done_marker(tmp_path):
    store = TrajectoryStore(tmp_path)
    traj = Trajectory(
        id="x", task_id="t0", domain="math", messages=[Message(role="user", content="hi")],
        verdict=Verdict(passed=True, score=1.0, reason="ok"), task=tasks(1)[0],
    )
    assert not store.is_done("u1")
    store.write_unit("u1", [traj])
    assert store.is_done("u1")
    back = store.read_unit("u1")
    assert back[0] == traj


def test_claim_refuses_a_different_config(tmp_path):
    store = TrajectoryStore(tmp_path)
    store.claim("aaa", {"domain": "math"})
    store.claim("aaa", {"domain": "math"})  # same run: fine
    with pytest.raises(RunFolderMismatch, match="new --out"):
        store.claim("bbb", {"domain": "math"})


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    write_text(target, "old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
