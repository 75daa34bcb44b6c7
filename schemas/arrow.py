"""Arrow form of trajectories for the trajectory store.

Nested message structure is stored as JSON text columns (``messages_json``,
``tools_json``, ``task_json``) so that any reader — pandas, DuckDB, a reviewer
page — can open the store without knowing our pydantic models, while the
columns people filter on (domain, lineage, verdict, tokens) are real columns.
"""

from __future__ import annotations

import json
import math

import pyarrow as pa

from schemas.messages import Message
from schemas.task import Task
from schemas.tokens import TokenTrace
from schemas.trajectory import TokenCounts, Timings, Trajectory, Verdict
from schemas.version import SCHEMA_VERSION


def trajectory_arrow_schema() -> pa.Schema:
    return pa.schema(
        [
            ("id", pa.string()),
            ("task_id", pa.string()),
            ("domain", pa.string()),
            ("parent_id", pa.string()),
            ("branch_step", pa.int32()),
            ("passed", pa.bool_()),
            ("score", pa.float64()),
            ("reason", pa.string()),
            ("failure_cause", pa.string()),
            ("stop_reason", pa.string()),
            ("error", pa.string()),
            ("prompt_tokens", pa.int64()),
            ("completion_tokens", pa.int64()),
            ("num_messages", pa.int32()),
            ("model_id", pa.string()),
            ("seed", pa.int64()),
            ("timings_json", pa.string()),
            ("messages_json", pa.string()),
            ("tools_json", pa.string()),
            ("task_json", pa.string()),
            # The token trace (null for text-mode rollouts): parallel per-token lists.
            ("token_ids", pa.list_(pa.int32())),
            ("token_sources", pa.list_(pa.uint8())),
            ("token_logprobs", pa.list_(pa.float32())),
            ("token_messages", pa.list_(pa.int32())),
            ("token_exact", pa.bool_()),
        ],
        metadata={"trajforge_schema_version": SCHEMA_VERSION},
    )


def trajectories_to_table(trajectories: list[Trajectory]) -> pa.Table:
    cols: dict[str, list] = {f.name: [] for f in trajectory_arrow_schema()}
    for t in trajectories:
        v = t.verdict
        cols["id"].append(t.id)
        cols["task_id"].append(t.task_id)
        cols["domain"].append(t.domain)
        cols["parent_id"].append(t.parent_id)
        cols["branch_step"].append(t.branch_step)
        cols["passed"].append(None if v is None else v.passed)
        cols["score"].append(None if v is None else v.score)
        cols["reason"].append(None if v is None else v.reason)
        cols["failure_cause"].append(None if v is None else v.cause)
        cols["stop_reason"].append(t.stop_reason)
        cols["error"].append(t.error)
        cols["prompt_tokens"].append(t.tokens.prompt)
        cols["completion_tokens"].append(t.tokens.completion)
        cols["num_messages"].append(len(t.messages))
        cols["model_id"].append(t.model_id)
        cols["seed"].append(t.seed)
        cols["timings_json"].append(t.timings.model_dump_json())
        cols["messages_json"].append(json.dumps([m.model_dump() for m in t.messages]))
        cols["tools_json"].append(json.dumps(t.tools))
        cols["task_json"].append(None if t.task is None else t.task.model_dump_json())
        trace = t.token_trace
        cols["token_ids"].append(None if trace is None else trace.ids)
        cols["token_sources"].append(None if trace is None else trace.sources)
        cols["token_logprobs"].append(None if trace is None else trace.logprobs)
        cols["token_messages"].append(None if trace is None else trace.message_index)
        cols["token_exact"].append(None if trace is None else trace.exact)
    return pa.Table.from_pydict(cols, schema=trajectory_arrow_schema())


def table_to_trajectories(table: pa.Table) -> list[Trajectory]:
    out = []
    for name in ("failure_cause", "token_ids", "token_sources", "token_logprobs", "token_messages", "token_exact"):
        if name not in table.column_names:  # a store written before token traces
            table = table.append_column(name, pa.nulls(table.num_rows, trajectory_arrow_schema().field(name).type))
    for row in table.to_pylist():
        verdict = None
        if row["passed"] is not None:
            verdict = Verdict(passed=row["passed"], score=row["score"] or 0.0, reason=row["reason"] or "",
                              cause=row["failure_cause"] or "model")
        out.append(
            Trajectory(
                id=row["id"],
                task_id=row["task_id"],
                domain=row["domain"],
                parent_id=row["parent_id"],
                branch_step=row["branch_step"],
                verdict=verdict,
                stop_reason=row["stop_reason"] or "",
                error=row["error"],
                tokens=TokenCounts(prompt=row["prompt_tokens"], completion=row["completion_tokens"]),
                timings=Timings.model_validate_json(row["timings_json"]),
                model_id=row["model_id"] or "",
                seed=row["seed"] or 0,
                messages=[Message.model_validate(m) for m in json.loads(row["messages_json"])],
                tools=json.loads(row["tools_json"] or "[]"),
                task=None if row["task_json"] is None else Task.model_validate_json(row["task_json"]),
                token_trace=None if row["token_ids"] is None else TokenTrace(
                    ids=row["token_ids"], sources=row["token_sources"],
                    logprobs=[math.nan if x is None else x for x in row["token_logprobs"]],
                    message_index=row["token_messages"], exact=row["token_exact"] is not False,
                ),
            )
        )
    return out
