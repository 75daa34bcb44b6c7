"""A small run folder whose trajectories carry token traces, for the provenance views.

Traces are built by hand with the embedded tokenizer (ChatML, as the template
renders it), each piece tagged with who chose it. Written through the real
writers, like ``runfixture``:

- math ``t-exact0``: every assistant token sampled (passes);
- math ``t-ins1``: a tool call whose ``<tool_call>`` tags were inserted and whose
  JSON was sampled under a grammar, then an answer after an inserted prefix (passes);
- math ``t-ins2``: an end token the framework put back (fails: not in the shards);
- math ``t-drift4``: the stored message differs from what the ids decode to (passes);
- math ``t-guided5``: a grammar-constrained answer, nothing inserted (passes);
- agentic-cot ``t-text3``: a text-mode rollout, no trace (passes).
"""

from __future__ import annotations

from pathlib import Path

from pipelines.atomic import write_json
from pipelines.report import build_report
from pipelines.shards import write_shard_set
from pipelines.store import TrajectoryStore
from pipelines.tokenize import load_tokenizer, trajectories_to_rows
from pipelines.tokenizer_identity import tokenizer_identity
from schemas import Message, TokenCounts, ToolCall, Trajectory, Verdict
from schemas.tokens import TokenSource, TokenTrace
from synthesizers.hermes import render_assistant_text

C, S, G, I = TokenSource.CONTEXT, TokenSource.SAMPLED, TokenSource.GUIDED, TokenSource.INSERTED
LOGPROB = -0.5
INSERTED_PREFIX = "The result is "


def trace_for(tok, messages: list[Message], bodies: dict[int, list[tuple[str, TokenSource]]],
              end: dict[int, TokenSource] | None = None) -> TokenTrace:
    """ChatML ids of ``messages``; assistant message ``i`` is ``bodies[i]`` (text pieces with
    their sources) and its end token (``end[i]``, sampled unless given)."""
    enc = lambda s: tok.encode(s, add_special_tokens=False)  # noqa: E731
    trace = TokenTrace()
    for i, m in enumerate(messages):
        if m.role != "assistant":
            trace.append(enc(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n"), C, i)
            continue
        trace.append(enc("<|im_start|>assistant\n"), C, i)  # the generation prompt opens the turn
        for text, source in bodies[i]:
            ids = enc(text)
            trace.append(ids, source, i, [LOGPROB] * len(ids) if source in (S, G) else None)
        closing = (end or {}).get(i, S)
        trace.append(enc("<|im_end|>"), closing, i, [LOGPROB] if closing == S else None)
        trace.append(enc("\n"), C, i)
    return trace


def _traj(tid: str, messages: list[Message], passed: bool, trace: TokenTrace | None, domain: str = "math") -> Trajectory:
    return Trajectory(id=tid, task_id=f"task-{tid}", domain=domain, messages=messages,
                      verdict=Verdict(passed=passed, score=float(passed), reason="ok" if passed else "wrong"),
                      stop_reason="final_answer", tokens=TokenCounts(prompt=20, completion=10),
                      model_id="fixture", token_trace=trace)


def trace_trajectories(tok) -> list[Trajectory]:
    user = [Message(role="system", content="You add."), Message(role="user", content="What is 2 + 3?")]
    answer = Message(role="assistant", content=INSERTED_PREFIX + "\\boxed{5}.")
    exact0 = user + [answer]
    call = ToolCall.make("call_0", "python", {"code": "print(2 + 3)"})
    ins1 = user + [Message(role="assistant", content="Let me compute.", tool_calls=[call]),
                   Message(role="tool", content="5", tool_call_id=call.id, name="python"), answer]
    body = render_assistant_text("Let me compute.", [call])  # content, "\n<tool_call>\n{json}\n</tool_call>"
    head, rest = body.split("<tool_call>\n", 1)
    json_part, _ = rest.split("\n</tool_call>", 1)
    wrong = user + [Message(role="assistant", content="It is \\boxed{6}.")]
    return [
        _traj("t-exact0", exact0, True, trace_for(tok, exact0, {2: [(answer.content, S)]})),
        _traj("t-ins1", ins1, True, trace_for(tok, ins1, {
            2: [(head, S), ("<tool_call>\n", I), (json_part, G), ("\n</tool_call>", I)],
            4: [(INSERTED_PREFIX, I), ("\\boxed{5}.", S)],
        })),
        _traj("t-ins2", wrong, False, trace_for(tok, wrong, {2: [(wrong[2].content, S)]}, end={2: I})),
        _traj("t-drift4", user + [Message(role="assistant", content="Stored text differs.")], True,
              trace_for(tok, exact0, {2: [(answer.content, S)]})),
        _traj("t-guided5", exact0, True, trace_for(tok, exact0, {2: [(INSERTED_PREFIX, S), ("\\boxed{5}.", G)]})),
        _traj("t-text3", [Message(role="user", content="Add 1 and 1."), Message(role="assistant", content="2")],
              True, None, domain="agentic-cot"),
    ]


def make_trace_run(run_dir: Path, model_dir: Path) -> list[Trajectory]:
    run_dir = Path(run_dir)
    trajectories = trace_trajectories(load_tokenizer(str(model_dir)))
    TrajectoryStore(run_dir).write_unit("trace001", trajectories)
    write_json(run_dir / "run.json", {"fingerprint": "trace-fixture",
                                      "config": {"domain": "math", "shards": {"include": "passed"}}})
    rows, errors = trajectories_to_rows([t for t in trajectories if t.verdict.passed], str(model_dir), "assistant")
    assert not errors, errors
    manifest = write_shard_set(rows, run_dir / "shards", tokenizer_id=tokenizer_identity(str(model_dir))[0],
                               masking_policy="assistant", rows_per_shard=8, run_config={"fixture": True})
    report = build_report(domain="math", tasks=6, units_total=1, units_run_now=1, trajectories=trajectories,
                          removed_exact=0, removed_near=0, manifest=manifest, wall_s=1.0, rollout_s=1.0,
                          completion_tokens_now=60)
    write_json(run_dir / "report.json", report.to_dict())
    return trajectories
