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
        offsets = enc["offset_mapping"]
        trained = [(s, e) for s, e, role in spans if role in self.roles]
        mask = [0] * len(ids)
        if self.policy == "none":
            mask = [1] * len(ids)
        else:
            j = 0
            for t, (s, e) in enumerate(offsets):
                while j < len(trained) and trained[j][1] <= s:
                    j += 1
                if j < len(trained) and e > s and s >= trained[j][0] and e <= trained[j][1]:
                    mask[t] = 1
        return Rendered(text=full, input_ids=ids, loss_mask=mask, spans=spans)
