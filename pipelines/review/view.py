"""What the trajectory page shows, computed from the store and the shards.

- messages in order, assistant text cut into Agentic-CoT phase segments (the
  format's own tag list and code masking, so a tag quoted inside code is not a
  phase), tool calls with pretty arguments, tool observations tied to their call;
- lineage: parent, cut step, siblings and children with verdicts;
- the token view: the exact shard row decoded token by token with the manifest's
  tokenizer, each token flagged when it carries loss and tagged with its source;
  a trajectory with a token trace but no row shows its trace, masked as the shards
  would mask it (the assistant turns drawn from the trace are in ``provenance``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pipelines.review.provenance import run_tokenizer_path
from pipelines.review.runfolder import RunFolder, resolve_tokenizer_path
from schemas import Trajectory

from schemas.agentic_cot import PHASES, mask_code, parse_messages  # the format's tags and code masking

_TAG = re.compile(r"<(/?)(" + "|".join(PHASES) + r")\s*>")


def phase_segments(text: str) -> list[dict[str, Any]]:
    """``[{"phase": name | None, "text": ...}]`` covering ``text``; tags themselves are dropped
    from the text and shown as labels. An unclosed phase runs to the end of the text."""
    masked = mask_code(text)
    segments: list[dict[str, Any]] = []
    current, start = None, 0
    for tag in _TAG.finditer(masked):
        closing, name = tag.group(1) == "/", tag.group(2)
        if text[start : tag.start()]:
            segments.append({"phase": current, "text": text[start : tag.start()]})
        if closing and current == name:
            current = None
        elif not closing:
            current = name
        start = tag.end()
    if text[start:]:
        segments.append({"phase": current, "text": text[start:]})
    return [s for s in segments if s["phase"] or s["text"].strip()]


def _pretty(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), indent=2, ensure_ascii=False)
    except (json.JSONDecodeError, TypeError):
        return arguments  # malformed arguments are shown as the model wrote them


def message_views(t: Trajectory) -> list[dict[str, Any]]:
    call_names: dict[str, str] = {}
    out = []
    for i, m in enumerate(t.messages):
        view: dict[str, Any] = {
            "index": i,
            "role": m.role,
            "content": m.content,
            "segments": phase_segments(m.content) if m.role == "assistant" else [],
            "tool_calls": [
                {"id": c.id, "name": c.function.name, "arguments": _pretty(c.function.arguments)}
                for c in m.tool_calls
            ],
            "tool_call_id": m.tool_call_id,
            "call_name": None,
            "tool_failure": None,
            "shared": t.branch_step is not None and i < t.branch_step,
            "cut": t.branch_step is not None and i == t.branch_step,
        }
        for c in m.tool_calls:
            call_names[c.id] = c.function.name
        if m.role == "tool":
            view["call_name"] = m.name or call_names.get(m.tool_call_id or "", "")
            # A reviewer sees at a glance which calls failed and why (the tool's own reason).
            if m.result is not None and not m.result.ok:
                reason = m.result.fields.get("reason")
                view["tool_failure"] = m.result.status + (f": {reason}" if isinstance(reason, str) else "")
        out.append(view)
    return out


def phase_summary(t: Trajectory) -> dict[str, Any] | None:
    """The phase sequence and structure errors, or None when no assistant text has a phase tag."""
    result = parse_messages(t.messages)
    if not result.phases and not result.errors:
        return None
    return {"sequence": result.sequence, "errors": result.errors}


def _brief(t: Trajectory) -> dict[str, Any]:
    v = t.verdict
    return {
        "id": t.id,
        "passed": bool(v and v.passed),
        "score": v.score if v else None,
        "reason": v.reason if v else "",
        "branch_step": t.branch_step,
    }


def lineage(run: RunFolder, t: Trajectory) -> dict[str, Any]:
    parent = run.by_id.get(t.parent_id) if t.parent_id else None
    siblings = [s for s in run.children.get(t.parent_id, []) if s.id != t.id] if t.parent_id else []
    return {
        "parent_id": t.parent_id,
        "parent": _brief(parent) if parent else None,
        "branch_step": t.branch_step,
        "siblings": [_brief(s) for s in siblings],
        "children": [_brief(c) for c in run.children.get(t.id, [])],
    }


@dataclass
class TokenView:
    status: str  # ok (the shard row) | trace (no row: the trace, masked as the run's policy would) | absent | no-tokenizer
    note: str = ""
    tokens: list[dict[str, Any]] = field(default_factory=list)  # {"text", "id", "loss", "source"}
    num_tokens: int = 0
    num_loss_tokens: int = 0
    shard: str = ""
    tokenizer_id: str = ""
    token_exact: bool | None = None  # None: no shard row
    text_drift: bool = False


def _decoded(path: str, ids: list[int], mask: list[int], sources: list[int]) -> list[dict[str, Any]]:
    from pipelines.tokenize import load_tokenizer

    texts = load_tokenizer(path).batch_decode([[i] for i in ids], skip_special_tokens=False,
                                              clean_up_tokenization_spaces=False)
    return [{"text": s, "id": i, "loss": int(m), "source": int(src)} for s, i, m, src in zip(texts, ids, mask, sources)]


def _trace_tokens(run: RunFolder, t: Trajectory, why: str) -> TokenView:
    """No shard row, but a trace: its exact ids with the loss the run's policy puts on them
    (``pipelines.tokenize.loss_mask``, as the shards would), never a re-rendering."""
    from pipelines.tokenize import RowOptions, loss_mask

    manifest = run.manifest()
    shards = run.run_config(t.domain).get("shards", {})
    options = RowOptions(policy=manifest.masking_policy if manifest else shards.get("masking", "assistant"),
                         train_on_inserted=manifest.train_on_inserted if manifest else
                         bool(shards.get("train_on_inserted", False)))
    trace = t.token_trace
    mask = loss_mask(trace, t.messages, options)
    note = f"not in any shard set of this run ({why}); the token trace, with the loss the " \
           f"{options.policy!r} policy would put on it"
    base = dict(num_tokens=len(trace), num_loss_tokens=sum(mask), tokenizer_id=manifest.tokenizer_id if manifest else "")
    path = run_tokenizer_path(run, t.domain)
    if path is None:
        return TokenView(status="no-tokenizer", note=note + "; no tokenizer found on this machine to decode it", **base)
    return TokenView(status="trace", note=note, tokens=_decoded(path, trace.ids, mask, trace.sources), **base)


def token_view(run: RunFolder, t: Trajectory) -> TokenView:
    found = run.shard_row(t.id)
    if found is None:
        include = run.run_config(t.domain).get("shards", {}).get("include", "passed")
        if not (t.verdict and t.verdict.passed) and include != "all":
            why = "failed: shards hold passed trajectories only"
        else:
            why = "removed by decontamination or dedupe (see report.json), or shards not written yet"
        if t.token_trace is not None and len(t.token_trace):
            return _trace_tokens(run, t, why)
        return TokenView(status="absent", note=f"not in any shard set of this run ({why})")
    row, where = found
    manifest = run.manifest(where.shard_dir)
    path = resolve_tokenizer_path(manifest.tokenizer_id, manifest.run_config or run.run_config(t.domain))
    shard = f"{where.shard_dir.name}/{where.file} row {where.row}"
    exact, drift = bool(row.get("token_exact", False)), bool(row.get("text_drift", False))
    base = dict(num_tokens=row["num_tokens"], num_loss_tokens=row["num_loss_tokens"], shard=shard,
                tokenizer_id=manifest.tokenizer_id, token_exact=exact, text_drift=drift)
    note = ""
    if not exact and t.token_trace is not None:
        note = "this row was tokenised from text (a training view of the messages), not from the token trace"
    if path is None:
        return TokenView(status="no-tokenizer", note=f"tokenizer {manifest.tokenizer_id!r} not found on this machine", **base)
    ids = row["input_ids"]
    sources = row.get("token_source") or [0] * len(ids)  # a schema-1 shard has no sources
    return TokenView(status="ok", note=note, tokens=_decoded(path, ids, row["loss_mask"], sources), **base)
