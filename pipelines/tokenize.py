"""Mask + tokenize stage: trajectories -> shard rows (one per trajectory).

A trajectory with a token trace (a token-in/token-out rollout) becomes a
token-exact row: its ids are the trace's, untouched, and the mask comes from
each token's source and its message's role. A domain's rewritten training view
keeps its assistant turns' ids and sources on a re-rendered context
(``token_conversation.rebase``: not exact, but inserted text stays inserted).
Anything else (text-mode servers, imports) is rendered with the chat template
(``ChatMasker``), its assistant tokens counted as sampled, and marked
``token_exact=False``.

Every exact row is checked as it is cut: each assistant turn's ids must decode
(and parse) to the stored message, and loss may sit only on tokens the engine
sampled (or inserted ones, when the run opts in). A row whose turn does not
decode to its message is kept, marked ``text_drift`` and counted.

Runs as Ray tasks over chunks of the store. A trajectory that cannot be
rendered is skipped and reported, never fatal.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache

from schemas import Message, ShardRow, Trajectory
from schemas.tokens import SAMPLED_SOURCES, TokenSource, TokenTrace

from pipelines.masking import POLICY_ROLES, ChatMasker, tokens_inside


@lru_cache(maxsize=4)
def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


@dataclass(frozen=True)
class RowOptions:
    policy: str = "assistant"
    train_on_inserted: bool = False  # loss on inserted assistant tokens too (source 3)
    require_token_exact: bool = False  # drop rows tokenised from text


def trajectories_to_rows(
    trajectories: list[Trajectory], tokenizer_path: str, policy: str | RowOptions
) -> tuple[list[ShardRow], list[tuple[str, str]]]:
    options = policy if isinstance(policy, RowOptions) else RowOptions(policy=policy)
    tokenizer = load_tokenizer(tokenizer_path)
    masker = ChatMasker(tokenizer, options.policy)
    rows, errors = [], []
    for t in trajectories:
        try:
            if t.token_trace is not None and len(t.token_trace):
                row = exact_row(t, t.token_trace, tokenizer, options)
                if options.require_token_exact and not row.token_exact:
                    errors.append((t.id, "not token-exact (shards.require_token_exact)"))
                    continue
            elif options.require_token_exact:
                errors.append((t.id, "not token-exact (shards.require_token_exact)"))
                continue
            else:
                row = text_row(t, masker)
        except Exception as exc:
            errors.append((t.id, f"{type(exc).__name__}: {exc}"))
            continue
        rows.append(row)
    return rows, errors


def exact_row(t: Trajectory, trace: TokenTrace, tokenizer, options: RowOptions) -> ShardRow:
    covered = max(trace.message_index) + 1
    if covered != len(t.messages):
        raise ValueError(f"token trace covers {covered} messages, the trajectory has {len(t.messages)}")
    mask = loss_mask(trace, t.messages, options)
    trainable = SAMPLED_SOURCES | ({TokenSource.INSERTED} if options.train_on_inserted else set())
    for m, s, i in zip(mask, trace.sources, trace.message_index):
        if m and s != TokenSource.CONTEXT and s not in trainable:
            raise AssertionError(f"loss on a token of source {s}")  # a masking bug, never data
    return _row(t, trace.ids, mask, trace.sources, trace.logprobs, exact=trace.exact,
                drift=bool(drifted_turns(t.messages, trace, tokenizer)))


def text_row(t: Trajectory, masker: ChatMasker) -> ShardRow:
    rendered = masker.render(t.messages, t.tools or None)
    assistant = [(s, e) for s, e, role in rendered.spans if role == "assistant"]
    sources = (tokens_inside(rendered.offsets, assistant) * int(TokenSource.SAMPLED)).tolist()
    return _row(t, rendered.input_ids, rendered.loss_mask, sources, [math.nan] * len(sources), exact=False, drift=False)


def loss_mask(trace: TokenTrace, messages: list[Message], options: RowOptions) -> list[int]:
    """Assistant turns: loss on sampled tokens (and inserted ones when opted in); context
    tokens: loss when the policy trains on their message's role (``none``: every one)."""
    roles = POLICY_ROLES[options.policy]
    trainable = SAMPLED_SOURCES | ({TokenSource.INSERTED} if options.train_on_inserted else set())
    mask = []
    for source, index in zip(trace.sources, trace.message_index):
        role = messages[index].role
        if source == TokenSource.CONTEXT:
            on = options.policy == "none" or (role != "assistant" and role in roles)
        else:
            on = role in roles and source in trainable
        mask.append(int(on))
    return mask


def drifted_turns(messages: list[Message], trace: TokenTrace, tokenizer) -> list[int]:
    """Indices of assistant messages whose ids do not decode (and parse) to the stored message."""
    from synthesizers.hermes import parse_tool_calls

    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    bad = []
    for index, message in enumerate(messages):
        if message.role != "assistant":
            continue
        ids = trace.message_tokens(index, frozenset({1, 2, 3}))
        if ids and ids[-1] in special:
            ids = ids[:-1]
        content, calls, _ = parse_tool_calls(tokenizer.decode(ids, skip_special_tokens=True))
        stored = [(c.function.name, _args(c.function.arguments)) for c in message.tool_calls]
        if content != message.content or [(c.function.name, _args(c.function.arguments)) for c in calls] != stored:
            bad.append(index)
    return bad


def _args(arguments: str):
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def _row(t: Trajectory, ids, mask, sources, logprobs, *, exact: bool, drift: bool) -> ShardRow:
    return ShardRow(
        trajectory_id=t.id,
        domain=t.domain,
        input_ids=list(ids),
        loss_mask=list(mask),
        num_tokens=len(ids),
        num_loss_tokens=sum(mask),
        task_id=t.task_id,
        parent_id=t.parent_id,
        passed=bool(t.verdict and t.verdict.passed),
        score=t.verdict.score if t.verdict else 0.0,
        token_source=list(sources),
        logprobs=list(logprobs),
        token_exact=exact,
        text_drift=drift,
    )
