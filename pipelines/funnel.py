"""What each accepted trajectory cost: the funnel from seed tasks to shard rows, with the engine,
sandbox and token totals of the rollouts and the wall time of each post-rollout stage, divided by
accepted (sharded) trajectories and by loss-carrying tokens — what a team budgets a run with.

Engine seconds are the rollouts' summed waits on the engine (concurrent rollouts overlap, so the
sum exceeds wall time; on a GPU it is the GPU time the requests held); sandbox seconds are the
summed tool and verification times.
"""

from __future__ import annotations

from typing import Any

from schemas import Trajectory


def funnel(trajectories: list[Trajectory], *, tasks: int, after_decontamination: int, after_dedupe: int,
           rows: int, loss_tokens: int, stage_s: dict[str, float]) -> dict[str, Any]:
    judged = [t for t in trajectories if t.verdict is not None and not t.verdict.infrastructure]
    stages = [
        ("seed tasks", tasks),
        ("rollouts", len(trajectories)),
        ("judged (no infrastructure failure)", len(judged)),
        ("passed", sum(1 for t in judged if t.verdict.passed)),
        ("after decontamination", after_decontamination),
        ("after dedupe", after_dedupe),
        ("sharded", rows),
    ]
    totals = {
        "engine_s": sum(t.timings.generate_s for t in trajectories),
        "sandbox_tool_s": sum(t.timings.tools_s for t in trajectories),
        "verify_s": sum(t.timings.verify_s for t in trajectories),
        "prompt_tokens": sum(t.tokens.prompt for t in trajectories),
        "completion_tokens": sum(t.tokens.completion for t in trajectories),
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
