"""A small but complete run folder for the reviewer and report tests.

Written through the real writers (``TrajectoryStore.write_unit``,
``trajectories_to_rows`` with the embedded tokenizer, ``write_shard_set``,
``build_report``), so the tests read exactly what a run writes:

- math: 8 originals (even ones pass, with a python tool call and its
  observation); each failed original has 2 branches cut at step 2, the first
  of which passes when the original's index is 1 or 5;
- agentic-cot: 6 originals with the five phase tags (4 pass).

Shards hold the passed trajectories (the default ``include: passed``).
"""

from __future__ import annotations

import time
from pathlib import Path

from pipelines.atomic import write_json
from pipelines.report import build_report
from pipelines.shards import write_shard_set
from pipelines.store import TrajectoryStore
from pipelines.tokenize import trajectories_to_rows
from pipelines.tokenizer_identity import tokenizer_identity
from schemas import Message, Timings, TokenCounts, ToolCall, ToolResult, Trajectory, Verdict

SYSTEM = "You are a careful math assistant."
PHASED = (
    "<analysis>We need {a} plus {b}.</analysis>\n<plan>1. Add. 2. Check.</plan>\n"
    "<action>{a} + {b} = {s}.</action>\n<reflection>{s} - {b} = {a}, right.</reflection>\n"
    "<summary>The sum is \\boxed{{{s}}}.</summary>"
)


def _math(i: int, t0: float) -> list[Trajectory]:
    a, b = 10 + i, 3 * i
    passed = i % 2 == 0
    call = ToolCall.make(f"call_{i}", "python", {"code": f"print({a} + {b})"})
    messages = [
        Message(role="system", content=SYSTEM),
        Message(role="user", content=f"What is {a} + {b}? USERTEXT{i}"),
        Message(role="assistant", content="Let me compute.", tool_calls=[call]),
        Message(role="tool", content=f"exit code: 0\nstdout:\n{a + b}", tool_call_id=call.id, name="python",
                result=ToolResult(status="error", fields={"reason": "refused"}) if i == 3 else ToolResult()),
        Message(role="assistant", content=f"The result is \\boxed{{{a + b if passed else a + b + 1}}}."),
    ]
    timing = Timings(started_at=t0 + i, total_s=2.0)
    original = Trajectory(
        id=f"t-math{i:02d}", task_id=f"math-{i}", domain="math", messages=messages,
        tools=[{"type": "function", "function": {"name": "python", "parameters": {"type": "object"}}}],
        verdict=Verdict(passed=passed, score=float(passed), reason=f"boxed {'ok' if passed else 'wrong'} #{i}"),
        stop_reason="final_answer", tokens=TokenCounts(prompt=50, completion=20), timings=timing, model_id="fixture",
    )
    out = [original]
    if not passed:
        for k in range(2):
            ok = k == 0 and i in (1, 5)
            tail = [Message(role="assistant", content=f"Branch {k}: \\boxed{{{a + b if ok else 0}}}.")]
            out.append(original.model_copy(update={
                "id": f"b-math{i:02d}-{k}", "parent_id": original.id, "branch_step": 2,
                "messages": messages[:2] + tail, "verdict": Verdict(passed=ok, score=float(ok), reason=f"branch {k} of {i}"),
                "timings": Timings(started_at=t0 + 10 + i, total_s=1.0),
            }))
    return out


def _cot(i: int, t0: float) -> Trajectory:
    a, b = 20 + i, i
    passed = i < 4
    return Trajectory(
        id=f"t-cot{i:02d}", task_id=f"cot-{i}", domain="agentic-cot",
        messages=[Message(role="user", content=f"Add {a} and {b}. USERTEXT-cot{i}"),
                  Message(role="assistant", content=PHASED.format(a=a, b=b, s=a + b))],
        verdict=Verdict(passed=passed, score=float(passed), reason="structure ok" if passed else "structure: missing"),
        stop_reason="final_answer", tokens=TokenCounts(prompt=30, completion=40),
        timings=Timings(started_at=t0 + 20 + i, total_s=3.0), model_id="fixture",
    )


def make_run(run_dir: Path, model_dir: Path) -> list[Trajectory]:
    run_dir = Path(run_dir)
    t0 = time.time() - 100
    math = [t for i in range(8) for t in _math(i, t0)]
    cot = [_cot(i, t0) for i in range(6)]
    store = TrajectoryStore(run_dir)
    store.write_unit("math0001", math)
    store.write_unit("cot00001", cot)
    write_json(run_dir / "run.json", {"fingerprint": "fixture", "config": {"domain": "math", "shards": {"include": "passed"}}})
    everything = math + cot
    passed = [t for t in everything if t.verdict.passed]
    rows, errors = trajectories_to_rows(passed, str(model_dir), "assistant")
    assert not errors, errors
    manifest = write_shard_set(rows, run_dir / "shards", tokenizer_id=tokenizer_identity(str(model_dir))[0],
                               masking_policy="assistant", rows_per_shard=4, run_config={"fixture": True})
    report = build_report(domain="math", tasks=14, units_total=2, units_run_now=2, trajectories=everything,
                          removed_exact=1, removed_near=0, manifest=manifest, wall_s=12.5, rollout_s=10.0,
                          completion_tokens_now=400)
    report.extra = {"decontamination": {"removed": 2, "ngram": 13, "hits": [], "benchmarks": {"mmath": 374, "champ": 270},
                                        "hits_per_benchmark": {"mmath": 2, "champ": 0}, "benchmark_seeds": {}},
                    "render_errors": []}
    write_json(run_dir / "report.json", report.to_dict())
    return everything
