"""Render a trajectory with the target tokenizer's chat template and build its loss mask.

The mask comes from the template's real rendering, not from guesses: each
message's character span is found by rendering growing prefixes of the
conversation (the template must be prefix-stable — checked, not assumed), the
full text is tokenized once with offsets, and a token carries loss when it lies
inside a span whose role the masking policy trains on.

For an assistant turn the span starts after the generation prompt
(``<|im_start|>assistant\\n``) and ends after the end-of-turn token: exactly what
the model wrote, tool calls included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from typing import Any

from schemas import Message

POLICY_ROLES: dict[str, frozenset[str]] = {
    "assistant": frozenset({"assistant"}),
    "assistant+user": frozenset({"assistant", "user"}),
    "all-but-tool": frozenset({"assistant", "user", "system"}),
    "none": frozenset({"assistant", "user", "system", "tool"}),
}


class TemplateNotPrefixStable(ValueError):
    pass


@dataclass
class Rendered:
    text: str
    input_ids: list[int]
    loss_mask: list[int]
    spans: list[tuple[int, int, str]]  # (start, end, role) of each message's loss-eligible text
    offsets: Any = None  # (tokens, 2) character offsets of each token in ``text``


def tokens_inside(offsets: Any, spans: list[tuple[int, int]]) -> Any:
    """Per token (``offsets``: (n, 2) character ranges), whether it lies wholly inside one of the
    sorted, disjoint ``spans``; empty tokens never do. Vectorised: one search per token."""
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    if not spans or not len(offsets):
        return np.zeros(len(offsets), dtype=bool)
    starts = np.array([s for s, _ in spans], dtype=np.int64)
    ends = np.array([e for _, e in spans], dtype=np.int64)
    a, b = offsets[:, 0], offsets[:, 1]
    j = np.searchsorted(starts, a, side="right") - 1  # the last span starting at or before the token
    ok = j >= 0
    jj = np.where(ok, j, 0)
    return ok & (b > a) & (a >= starts[jj]) & (b <= ends[jj])


class ChatMasker:
    def __init__(self, tokenizer: Any, policy: str = "assistant"):
        if policy not in POLICY_ROLES:
            raise ValueError(f"unknown masking policy {policy!r} (use one of {', '.join(POLICY_ROLES)})")
        self.tokenizer = tokenizer
        self.policy = policy
        self.roles = POLICY_ROLES[policy]

    def _render(self, messages: list[dict], tools: list[dict] | None, generation_prompt: bool) -> str:
        if not messages:
            return ""
        return self.tokenizer.apply_chat_template(
            messages, tools=tools or None, tokenize=False, add_generation_prompt=generation_prompt
        )

    def spans(self, messages: list[Message], tools: list[dict] | None = None) -> tuple[str, list]:
        raw = [m.to_openai() for m in messages]
        full = self._render(raw, tools, False)
        spans = []
        previous = ""
        for i, message in enumerate(raw):
            upto = self._render(raw[: i + 1], tools, False)
            if not full.startswith(upto) or not upto.startswith(previous):
                raise TemplateNotPrefixStable(
                    "the chat template is not prefix-stable, so per-message spans cannot be found: "
                    "use a template whose rendering of messages[:k] is a prefix of messages[:k+1]"
                )
            start = len(previous)
            if message["role"] == "assistant":
                with_prompt = self._render(raw[:i], tools, True) if i else ""
                if i and not upto.startswith(with_prompt):
                    raise TemplateNotPrefixStable("generation prompt is not a prefix of the assistant turn")
                start = len(with_prompt)
            end = len(upto.rstrip("\n"))  # the newline after the end-of-turn token is not generated
            spans.append((start, end, message["role"]))
            previous = upto
        return full, spans

    def render(self, messages: list[Message], tools: list[dict] | None = None) -> Rendered:
        full, spans = self.spans(messages, tools)
        enc = self.tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)  # converted once, used twice
        trained = [(s, e) for s, e, role in spans if role in self.roles]
        if self.policy == "none":
            mask = [1] * len(ids)
        else:
            mask = tokens_inside(offsets, trained).astype(int).tolist()
        return Rendered(text=full, input_ids=ids, loss_mask=mask, spans=spans, offsets=offsets)
