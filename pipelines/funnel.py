"""What each accepted trajectory cost: the funnel from seed tasks to shard rows, with the engine,
sandbox and token totals of the rollouts and the wall time of each post-rollout stage, divided by
accepted (sharded) trajectories and by loss-carrying tokens — what a team budgets a run with.

Engine seconds are the rollouts' summed waits on the engine (concurrent rollouts overlap, so the
sum exceeds wall time; on a GPU it is the GPU time the requests held); sandbox seconds are the
summed tool and verification times.
"""

from __future__ import annotations

from typing import Any

from pipelines.store_stats import StoreStats
from schemas import Trajectory


def funnel(store: StoreStats | list[Trajectory], *, tasks: int, after_decontamination: int, after_dedupe: int,
           rows: int, loss_tokens: int, stage_s: dict[str, float]) -> dict[str, Any]:
    s = store if isinstance(store, StoreStats) else StoreStats.of(store)
    stages = [
        ("seed tasks", tasks),
        ("rollouts", s.trajectories),
        ("judged (no infrastructure failure)", s.judged),
        ("passed", s.passed_judged),
        ("after decontamination", after_decontamination),
        ("after dedupe", after_dedupe),
        ("sharded", rows),
    ]
    totals = {
        "engine_s": s.engine_s,
        "sandbox_tool_s": s.sandbox_tool_s,
        "verify_s": s.verify_s,
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        **{f"{name}_s": seconds for name, seconds in stage_s.items()},
    }

    def per(n: int) -> dict[str, float] | None:
        return {key: round(value / n, 6) for key, value in totals.items()} if n else None

    return {
        "stages": [{"stage": name, "count": count} for name, count in stages],
        "totals": {key: round(value, 3) for key, value in totals.items()},
        "per_accepted_trajectory": per(rows),
        "per_loss_token": per(loss_tokens),
    }
