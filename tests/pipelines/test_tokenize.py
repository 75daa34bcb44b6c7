"""Shard rows from token traces: the engine's own ids, loss only on what the model sampled,
every row checked against its messages; text rows marked as such."""

from __future__ import annotations

import math

import pyarrow.parquet as pq
import pytest

from pipelines.shards import write_shard_set
from pipelines.store import TrajectoryStore
from pipelines.tokenize import RowOptions, drifted_turns, trajectories_to_rows
from schemas import Message, Task, Trajectory, Verdict
from schemas.tokens import TokenSource
from synthesizers.agent_loop import run_agent
from synthesizers.domains.base import ToolContext
from synthesizers.domains.math.controllers import ANSWER_FORCING, AnswerForcing
from tests.fakes import TokenFakeEngine
from tests.synthesizers.test_agent_loop import boxed, echo_tool

START = [Message(role="system", content="SYS"), Message(role="user", content="What is 2 + 2?")]
CALL = '<tool_call>{"name": "echo", "arguments": {"text": "4"}}</tool_call>'


async def _trajectory(tokenizer, script, *, forcing=False, tid="t-1") -> Trajectory:
    engine = TokenFakeEngine(tokenizer, script)
    result = await run_agent(engine, START, [echo_tool()], ctx=ToolContext(task=Task(id="q", domain="math")),
                             is_final=boxed, controller=AnswerForcing() if forcing else None)
    return Trajectory(id=tid, task_id="q", domain="math", messages=result.messages, tools=[echo_tool().schema],
                      verdict=Verdict(passed=True, score=1.0), token_trace=result.trace)


@pytest.fixture
def model_path(model_dir):
    return str(model_dir)


async def test_an_exact_row_is_the_trace_and_trains_only_sampled_tokens(embedded_tokenizer, model_path):
    t = await _trajectory(embedded_tokenizer, ["Thinking it over.", "4}$."], forcing=True)
    (row,), errors = trajectories_to_rows([t], model_path, "assistant")
    assert errors == [] and row.token_exact and not row.text_drift
    assert row.input_ids == t.token_trace.ids and row.token_source == t.token_trace.sources
    trained = [tok for tok, m in zip(row.input_ids, row.loss_mask) if m]
    sampled = [tok for tok, s in zip(row.input_ids, row.token_source) if s in (1, 2)]
    assert trained == sampled and trained
    # The forcing text is in the row, inserted, and carries no loss; the answer after it does.
    inserted = [tok for tok, s in zip(row.input_ids, row.token_source) if s == TokenSource.INSERTED]
    assert embedded_tokenizer.decode(inserted) == ANSWER_FORCING
    assert embedded_tokenizer.decode(trained).endswith("4}$.<|im_end|>")
    assert all(math.isnan(lp) for lp, s in zip(row.logprobs, row.token_source) if s not in (1, 2))
    assert all(lp == -0.25 for lp, s in zip(row.logprobs, row.token_source) if s in (1, 2))

    (opted,), _ = trajectories_to_rows([t], model_path, RowOptions(train_on_inserted=True))
    assert opted.num_loss_tokens == row.num_loss_tokens + len(inserted)


async def test_policies_add_context_roles_but_never_inserted_tokens(embedded_tokenizer, model_path):
    t = await _trajectory(embedded_tokenizer, [f"Let me check. {CALL}", "So \\boxed{4}."])
    rows = {p: trajectories_to_rows([t], model_path, p)[0][0] for p in ("assistant", "assistant+user", "all-but-tool", "none")}
    counts = [rows[p].num_loss_tokens for p in ("assistant", "assistant+user", "all-but-tool", "none")]
    assert counts == sorted(counts) and len(set(counts)) == 4
    roles = [t.messages[i].role for i in t.token_trace.message_index]
    user_tokens = [m for m, r in zip(rows["assistant+user"].loss_mask, roles) if r == "user"]
    assert all(user_tokens) and user_tokens
    assert not any(m for m, r in zip(rows["all-but-tool"].loss_mask, roles) if r == "tool")
    assert all(rows["none"].loss_mask)


async def test_a_turn_whose_ids_do_not_decode_to_its_message_is_marked(embedded_tokenizer, model_path):
    t = await _trajectory(embedded_tokenizer, [f"Let me check. {CALL}", "So \\boxed{4}."])
    assert drifted_turns(t.messages, t.token_trace, embedded_tokenizer) == []
    edited = t.model_copy(deep=True)
    edited.messages[4].content = "So \\boxed{5}."
    assert drifted_turns(edited.messages, edited.token_trace, embedded_tokenizer) == [4]
    args = t.model_copy(deep=True)
    args.messages[2].tool_calls[0].function.arguments = '{"text": "5"}'
    (row,), _ = trajectories_to_rows([args], model_path, "assistant")
    assert row.text_drift


async def test_rows_without_a_trace_are_tokenised_from_text_and_marked(embedded_tokenizer, model_path):
    t = await _trajectory(embedded_tokenizer, ["So \\boxed{4}."])
    text = t.model_copy(update={"token_trace": None, "id": "t-2"})
    (row,), _ = trajectories_to_rows([text], model_path, "assistant")
    assert not row.token_exact
    assert [s for s, m in zip(row.token_source, row.loss_mask) if m] == [1] * row.num_loss_tokens
    assert set(row.token_source) == {0, 1}
    rows, errors = trajectories_to_rows([t, text], model_path, RowOptions(require_token_exact=True))
    assert [r.trajectory_id for r in rows] == ["t-1"] and errors[0][0] == "t-2"


async def test_store_and_shards_keep_ids_sources_and_logprobs(embedded_tokenizer, model_path, tmp_path):
    t = await _trajectory(embedded_tokenizer, ["Thinking.", "4}$."], forcing=True)
    store = TrajectoryStore(tmp_path / "run")
    store.write_unit("u1", [t])
    (back,) = store.read_unit("u1")
    assert back.token_trace.ids == t.token_trace.ids and back.token_trace.sources == t.token_trace.sources
    assert back.token_trace.message_index == t.token_trace.message_index
    assert [round(x, 4) if not math.isnan(x) else None for x in back.token_trace.logprobs] == \
        [round(x, 4) if not math.isnan(x) else None for x in t.token_trace.logprobs]

    text = back.model_copy(update={"token_trace": None, "id": "t-2"})
    rows, _ = trajectories_to_rows([back, text], model_path, "assistant")
    manifest = write_shard_set(rows, tmp_path / "shards", tokenizer_id="tok", masking_policy="assistant",
                               rows_per_shard=10, run_config={}, tokenizer_sha256="abc")
    assert manifest.schema_version.startswith("2.") and manifest.token_exact_rows == 1
    assert manifest.inserted_tokens == rows[0].inserted_tokens > 0 and manifest.drift_rows == 0
    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "shards" / "*.parquet"), split="train")
    first = ds[0] if ds[0]["trajectory_id"] == "t-1" else ds[1]
    assert first["input_ids"] == t.token_trace.ids and first["token_source"] == t.token_trace.sources
    assert first["token_exact"] is True and len(first["logprobs"]) == len(first["input_ids"])
    table = pq.read_table(tmp_path / "shards" / manifest.shards[0].file)
    assert str(table.schema.field("token_source").type) == "list<element: uint8>"
    assert str(table.schema.field("logprobs").type) == "list<element: float>"


async def test_a_rewrite_view_keeps_its_turns_tokens_on_the_new_context(embedded_tokenizer, model_path):
    from pipelines.run import training_view

    t = await _trajectory(embedded_tokenizer, ["Thinking.", "4}$."], forcing=True)
    direct = [Message(role="system", content="Answer the question."), Message(role="user", content="2 + 2?")]
    view = lambda traj: direct + traj.messages[2:]  # noqa: E731 - a rewrite trained as an answer to another prompt
    rebased = training_view(t, view, model_path)
    assert rebased.messages[:2] == direct and not rebased.token_trace.exact
    (row,), errors = trajectories_to_rows([rebased], model_path, "assistant")
    assert not errors and not row.token_exact and not row.text_drift
    # The new context is there; the assistant turn's ids and sources are the rollout's.
    assert "Answer the question." in embedded_tokenizer.decode(row.input_ids)
    old = [(i, s) for i, s, m in zip(t.token_trace.ids, t.token_trace.sources, t.token_trace.message_index) if m == 2]
    assert [(i, s) for i, s in zip(row.input_ids, row.token_source)][-len(old):] == old
    inserted = [i for i, s in zip(row.input_ids, row.token_source) if s == TokenSource.INSERTED]
    assert embedded_tokenizer.decode(inserted) == ANSWER_FORCING
    assert not any(m for m, s in zip(row.loss_mask, row.token_source) if s == TokenSource.INSERTED)
    assert all(math.isnan(x) for x, s in zip(row.logprobs, row.token_source) if s == 0)
    # Required exact: dropped.
    rows, errors = trajectories_to_rows([rebased], model_path, RowOptions(require_token_exact=True))
    assert rows == [] and len(errors) == 1
    # A view equal to the rollout keeps everything as it is.
    assert training_view(t, lambda traj: traj.messages, model_path) is t
