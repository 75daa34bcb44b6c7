"""Helpers shared by the token-exact backends."""

from __future__ import annotations

import math
from typing import Any


def trim_to_text(tokenizer: Any, ids: list[int], logprobs: list[float] | None, text: str,
                 stopped_on_string: bool) -> tuple[list[int], list[float] | None, str]:
    """Drop the tokens of a stop string the engine stopped on.

    vLLM removes a matched stop string from the text it returns but keeps the
    tokens that spelled it. The rollout (and every domain's steering) reads the
    text without the stop string, so the ids are cut back to the longest prefix
    whose decoding is a prefix of that text; the text becomes that decoding, so
    ids and text agree exactly. A token that straddles the stop string goes too.
    """
    if not stopped_on_string or not ids:
        return ids, logprobs, text
    for keep in range(len(ids), -1, -1):
        decoded = tokenizer.decode(ids[:keep], skip_special_tokens=False)
        if text.startswith(decoded) and "\ufffd" not in decoded[len(decoded) - 1:]:
            return ids[:keep], None if logprobs is None else logprobs[:keep], decoded
    return [], None if logprobs is None else [], ""


def nan_logprobs(n: int) -> list[float]:
    return [math.nan] * n
