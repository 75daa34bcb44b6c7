import json

import pyarrow as pa
import pytest
from pydantic import ValidationError

from schemas import (
    SCHEMA_VERSION, Manifest, Message, ShardEntry, ShardRow, Task, ToolCall, Trajectory, Verdict,
    messages_from_openai, shard_arrow_schema, table_to_trajectories, trajectories_to_table,
    trajectory_arrow_schema,
)


def test_openai_messages_round_trip_with_tool_calls():
    raw = [
        {"role": "user", "content": "add"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "python", "arguments": {"code": "1+1"}}}]},
        {"role": "tool", "content": "2", "tool_call_id": "c1", "name": "python"},
    ]
    msgs = messages_from_openai(raw)
    assert msgs[1].content == ""
    assert msgs[1].tool_calls[0].parsed_arguments() == {"code": "1+1"}
    assert json.loads(msgs[1].to_openai()["tool_calls"][0]["function"]["arguments"]) == {"code": "1+1"}
    assert msgs[2].to_openai()["tool_call_id"] == "c1"


def test_bad_role_and_non_object_arguments_are_rejected():
    with pytest.raises(ValidationError):
        Message(role="robot", content="x")
    call = ToolCall(id="c", function={"name": "f", "arguments": "[1, 2]"})
    with pytest.raises(ValueError, match="not a JSON object"):
        call.parsed_arguments()


def test_shard_row_checks_its_own_consistency():
    ShardRow(trajectory_id="t", domain="math", input_ids=[1, 2], loss_mask=[0, 1], num_tokens=2, num_loss_tokens=1)
    with pytest.raises(ValidationError):
        ShardRow(trajectory_id="t", domain="math", input_ids=[1, 2], loss_mask=[1], num_tokens=2, num_loss_tokens=1)
    with pytest.raises(ValidationError):
        ShardRow(trajectory_id="t", domain="math", input_ids=[1, 2], loss_mask=[1, 1], num_tokens=2, num_loss_tokens=1)


def test_arrow_schemas_carry_the_schema_version_and_contract_types():
    shard = shard_arrow_schema()
    assert shard.metadata[b"trajforge_schema_version"].decode() == SCHEMA_VERSION
    assert shard.field("input_ids").type == pa.list_(pa.int32())
    assert shard.field("loss_mask").type == pa.list_(pa.uint8())
    for name in ("trajectory_id", "domain", "num_tokens", "num_loss_tokens"):
        assert name in shard.names
    assert "messages_json" in trajectory_arrow_schema().names


def test_trajectory_store_table_round_trip_keeps_lineage_and_verdict():
    task = Task(id="k", domain="math", payload={"question": "1+1", "answer": "2"})
    parent = Trajectory(id="p", task_id="k", domain="math", messages=[Message(role="user", content="1+1")],
                        verdict=Verdict(passed=False, reason="wrong"), task=task)
    child = Trajectory(id="c", task_id="k", domain="math", parent_id="p", branch_step=1,
                       messages=[Message(role="user", content="1+1"), Message(role="assistant", content="\\boxed{2}")],
                       verdict=Verdict(passed=True, score=1.0, reason="ok"), task=task)
    unjudged = Trajectory(id="u", task_id="k", domain="math", messages=[])
    back = table_to_trajectories(trajectories_to_table([parent, child, unjudged]))
    assert back == [parent, child, unjudged]
    assert back[1].is_branch and back[1].branch_step == 1


def test_manifest_totals():
    m = Manifest(tokenizer_id="tok", shards=[
        ShardEntry(file="math-00000.parquet", domain="math", rows=2, tokens=10, loss_tokens=4, sha256="0" * 64),
        ShardEntry(file="code-00000.parquet", domain="code", rows=1, tokens=5, loss_tokens=2, sha256="1" * 64),
    ])
    assert m.total_rows == 3 and m.total_tokens == 15
    assert m.tokens_per_domain() == {"math": 10, "code": 5}
    assert m.schema_version == SCHEMA_VERSION


def test_tool_results_survive_the_store_and_a_store_without_them_still_reads():
    from schemas import ToolResult

    result = ToolResult(status="error", fields={"reason": "ambiguous", "occurrences": 2})
    messages = [Message(role="user", content="fix it"),
                Message(role="assistant", tool_calls=[ToolCall.make("c1", "edit", {"old_str": "a"})]),
                Message(role="tool", content="Error: old_str occurs 2 times", tool_call_id="c1", name="edit", result=result)]
    traj = Trajectory(id="t", task_id="k", domain="code", messages=messages)
    table = trajectories_to_table([traj])
    back = table_to_trajectories(table)[0]
    assert back.messages[2].result == result and not back.messages[2].result.ok
    assert "result" not in back.messages[2].to_openai()  # stored, never sent to a model or a template
    # a store written before results (schema 2.0): the same messages without the key
    old = [{k: v for k, v in m.model_dump().items() if k != "result"} for m in messages]
    older = table.set_column(table.schema.get_field_index("messages_json"), "messages_json", pa.array([json.dumps(old)]))
    assert table_to_trajectories(older)[0].messages[2].result is None
    with pytest.raises(ValidationError):
        ToolResult(status="maybe")
