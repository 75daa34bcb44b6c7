"""Token provenance: the exact ids of a conversation and who chose each one.

A ``TokenTrace`` is what a token-in/token-out rollout keeps beside its messages:
the ids the engine saw and sampled, turn by turn, in order (never a re-rendering),
and for each token its ``TokenSource``, the engine's logprob where it sampled it,
and the index of the message the token belongs to (template tokens of a turn
belong to that turn's message; the generation prompt belongs to the assistant
message it opens). Shards are cut from it without re-tokenising anything.
"""

from __future__ import annotations

import math
from enum import IntEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TokenSource(IntEnum):
    CONTEXT = 0  # system, user, tool and template tokens (incl. the generation prompt)
    SAMPLED = 1  # sampled freely by the engine
    GUIDED = 2  # sampled under a grammar / structured output
    INSERTED = 3  # written by the framework inside an assistant turn (prefixes, forced text, an end token not sampled)


SAMPLED_SOURCES = frozenset({TokenSource.SAMPLED, TokenSource.GUIDED})


class TokenTrace(BaseModel):
    """Parallel per-token lists; ``logprobs`` hold NaN where the engine did not sample."""

    model_config = ConfigDict(extra="forbid")

    ids: list[int] = Field(default_factory=list)
    sources: list[int] = Field(default_factory=list)
    logprobs: list[float] = Field(default_factory=list)
    message_index: list[int] = Field(default_factory=list)
    # False for a trace rebased onto other context messages (a rewrite's training view): the
    # assistant turns keep their ids and sources, but not the context the engine saw them in.
    exact: bool = True

    @model_validator(mode="after")
    def _parallel(self) -> "TokenTrace":
        n = len(self.ids)
        if not (len(self.sources) == len(self.logprobs) == len(self.message_index) == n):
            raise ValueError("token trace lists differ in length")
        return self

    def __len__(self) -> int:
        return len(self.ids)

    def append(self, ids: list[int], source: TokenSource, message: int, logprobs: list[float] | None = None) -> None:
        if logprobs is not None and len(logprobs) != len(ids):
            raise ValueError("logprobs and ids differ in length")
        self.ids.extend(ids)
        self.sources.extend([int(source)] * len(ids))
        self.logprobs.extend(logprobs if logprobs is not None else [math.nan] * len(ids))
        self.message_index.extend([message] * len(ids))

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` tokens."""
        del self.ids[n:], self.sources[n:], self.logprobs[n:], self.message_index[n:]

    def before_message(self, index: int) -> "TokenTrace":
        """A copy holding the tokens of messages ``[:index]`` (a branch's shared prefix)."""
        n = next((i for i, m in enumerate(self.message_index) if m >= index), len(self.ids))
        return TokenTrace(ids=self.ids[:n], sources=self.sources[:n], logprobs=self.logprobs[:n],
                          message_index=self.message_index[:n], exact=self.exact)

    def message_tokens(self, index: int, sources: frozenset[int] | None = None) -> list[int]:
        """The ids of message ``index`` (only those of ``sources`` when given)."""
        return [t for t, m, s in zip(self.ids, self.message_index, self.sources)
                if m == index and (sources is None or s in sources)]

    def count(self, source: TokenSource) -> int:
        return sum(1 for s in self.sources if s == source)
