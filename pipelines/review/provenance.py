"""Token provenance on the trajectory page: assistant turns drawn from the token trace.

A token-in/token-out rollout keeps the ids the engine saw and sampled and who
chose each one (``schemas.tokens.TokenSource``). The page shows each assistant
turn as runs of consecutive tokens of one source, so a reviewer sees at once
which text the model wrote and which the framework put in its mouth (inserted,
source 3), with the run's mean logprob on hover. A turn whose ids do not decode
to the stored message (drift) is flagged, as the shards flag its row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.review.runfolder import RunFolder, resolve_tokenizer_path
from schemas import Trajectory
from schemas.tokens import TokenSource, TokenTrace

# (source, css name, legend text), in source order.
LEGEND = (
    (int(TokenSource.CONTEXT), "context", "context: system, user, tool and template tokens (the generation prompt "
                                          "too); the model read them"),
    (int(TokenSource.SAMPLED), "sampled", "sampled freely by the model"),
    (int(TokenSource.GUIDED), "grammar", "sampled under a grammar / structured output"),
    (int(TokenSource.INSERTED), "inserted", "inserted by the framework inside an assistant turn (prefixes, forced "
                                            "tags, an end token put back); no loss under the default policy"),
)
NAMES = {source: name for source, name, _ in LEGEND}


def has_inserted(t: Trajectory) -> bool:
    trace = t.token_trace
    return trace is not None and int(TokenSource.INSERTED) in trace.sources  # a C-level scan of the list


def run_tokenizer_path(run: RunFolder, domain: str = "") -> str | None:
    """A tokenizer for the run's ids: a shard manifest's, else the engine's configured one."""
    for shard_dir in run.shard_dirs:
        manifest = run.manifest(shard_dir)
        path = resolve_tokenizer_path(manifest.tokenizer_id, manifest.run_config or run.run_config(domain))
        if path:
            return path
    engine = run.run_config(domain).get("engine", {})
    for candidate in (engine.get("tokenizer"), engine.get("model")):
        if candidate and (Path(candidate) / "tokenizer_config.json").is_file():
            return candidate
    return None


def source_runs(trace: TokenTrace, index: int, tok) -> list[dict[str, Any]]:
    """Message ``index``'s tokens as runs of one source: ``{"source", "name", "text", "n", "title"}``."""
    runs: list[dict[str, Any]] = []
    current: list[int] = []  # positions in the trace
    positions = [p for p, m in enumerate(trace.message_index) if m == index]
    for p in positions + [None]:
        if current and (p is None or trace.sources[p] != trace.sources[current[0]]):
            runs.append(_run(trace, current, tok))
            current = []
        if p is not None:
            current.append(p)
    return runs


def _run(trace: TokenTrace, positions: list[int], tok) -> dict[str, Any]:
    source = trace.sources[positions[0]]
    ids = [trace.ids[p] for p in positions]
    logprobs = [trace.logprobs[p] for p in positions if not math.isnan(trace.logprobs[p])]
    title = f"{NAMES.get(source, source)} · {len(ids)} token{'s' if len(ids) != 1 else ''}"
    mean = sum(logprobs) / len(logprobs) if logprobs else None
    if mean is not None:
        title += f" · mean logprob {mean:.3f}"
    return {"source": source, "name": NAMES.get(source, str(source)), "n": len(ids), "mean_logprob": mean,
            "title": title, "text": tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)}


@dataclass
class TraceView:
    status: str  # ok | none (text-mode rollout) | no-tokenizer
    note: str = ""
    turns: dict[int, dict[str, Any]] = field(default_factory=dict)  # assistant message index -> {"runs", "drift"}
    counts: dict[str, int] = field(default_factory=dict)  # tokens per source name


def trace_view(run: RunFolder, t: Trajectory) -> TraceView:
    trace = t.token_trace
    if trace is None or not len(trace):
        return TraceView(status="none", note="no token trace: a text-mode rollout (its shard row, if any, was "
                                             "tokenised from text)")
    counts = {name: trace.count(TokenSource(source)) for source, name, _ in LEGEND}
    path = run_tokenizer_path(run, t.domain)
    if path is None:
        return TraceView(status="no-tokenizer", counts=counts,
                         note="token trace kept, but no tokenizer found on this machine to decode it")
    from pipelines.tokenize import drifted_turns, load_tokenizer

    tok = load_tokenizer(path)
    try:
        drift = set(drifted_turns(t.messages, trace, tok))
    except Exception:  # a turn that cannot be decoded or parsed counts as drift, never breaks the page
        drift = {i for i, m in enumerate(t.messages) if m.role == "assistant"}
    covered = set(trace.message_index)
    turns = {i: {"runs": source_runs(trace, i, tok), "drift": i in drift}
             for i, m in enumerate(t.messages) if m.role == "assistant" and i in covered}
    return TraceView(status="ok", turns=turns, counts=counts)
