"""The cost funnel: counts from seed tasks to shard rows, and totals divided by accepted
trajectories and by loss tokens."""

from pipelines.funnel import funnel
from schemas import Trajectory, Verdict


def _t(i, passed, infra=False, generate_s=2.0, tools_s=1.0):
    t = Trajectory(id=f"t{i}", task_id="k", domain="math", messages=[],
                   verdict=Verdict(passed=passed, cause="infrastructure" if infra else "model"))
    t.timings.generate_s, t.timings.tools_s, t.timings.verify_s = generate_s, tools_s, 0.5
    t.tokens.prompt, t.tokens.completion = 100, 40
    return t


def test_counts_and_costs_per_accepted_trajectory_and_loss_token():
    ts = [_t(1, True), _t(2, True), _t(3, False), _t(4, False, infra=True)]
    f = funnel(ts, tasks=3, after_decontamination=2, after_dedupe=1, rows=1, loss_tokens=20,
               stage_s={"dedupe": 0.25})
    assert [s["count"] for s in f["stages"]] == [3, 4, 3, 2, 2, 1, 1]
    assert f["totals"]["engine_s"] == 8.0 and f["totals"]["completion_tokens"] == 160
    assert f["per_accepted_trajectory"]["engine_s"] == 8.0 and f["per_accepted_trajectory"]["dedupe_s"] == 0.25
    assert f["per_loss_token"]["completion_tokens"] == 8.0
    assert funnel([], tasks=0, after_decontamination=0, after_dedupe=0, rows=0, loss_tokens=0,
                  stage_s={})["per_accepted_trajectory"] is None
