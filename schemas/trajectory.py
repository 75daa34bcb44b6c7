"""A trajectory (one rollout or one branch of it) and its verdict.

A branch's ``token_trace`` starts with its parent's own tokens up to the cut.

Lineage: an original rollout has ``parent_id=None`` and ``branch_step=None``;
a branch keeps its parent's id and ``branch_step`` = the index in the parent's
``messages`` where it was cut (messages[:branch_step] are shared with the
parent, everything after was re-rolled).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.messages import Message
from schemas.task import Task
from schemas.tokens import TokenTrace


FailureCause = Literal["model", "infrastructure"]


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    passed: bool
    score: float = 0.0
    reason: str = ""
    # Whose failure it is: the model's, or the infrastructure's (engine error, sandbox gone, verifier
    # crash). An infrastructure failure is retried, never branched, never sharded, counted apart.
    cause: FailureCause = "model"

    @property
    def infrastructure(self) -> bool:
        return not self.passed and self.cause == "infrastructure"


class TokenCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: int = 0  # tokens the engine read, summed over turns
    completion: int = 0  # tokens the engine wrote, summed over turns


class Timings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    started_at: float = 0.0  # unix seconds
    generate_s: float = 0.0  # time spent waiting on the engine
    tools_s: float = 0.0  # time spent in tools
    verify_s: float = 0.0
    total_s: float = 0.0
    attempts: int = 1  # tries of this rollout (more than one: the infrastructure failed before)
    # Engine requests an endpoint failed that another endpoint of the pool then served (the
    # rollout went on): infrastructure retries inside one attempt (synthesizers.engines.pool).
    endpoint_retries: int = 0


class Trajectory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    task_id: str
    domain: str
    messages: list[Message]
    tools: list[dict[str, Any]] = Field(default_factory=list)  # OpenAI tool schemas offered
    parent_id: str | None = None
    branch_step: int | None = None
    verdict: Verdict | None = None
    stop_reason: str = ""  # final_answer | max_turns | max_tokens | engine_error | ...
    error: str | None = None
    tokens: TokenCounts = Field(default_factory=TokenCounts)
    timings: Timings = Field(default_factory=Timings)
    model_id: str = ""
    seed: int = 0
    task: Task | None = None  # kept so the store is self-contained for re-verification
    # Token-in/token-out rollouts: the exact ids the engine saw and sampled, with each token's
    # source and logprob (``schemas.tokens``); None for text-mode rollouts and imported data.
    token_trace: TokenTrace | None = None

    @property
    def is_branch(self) -> bool:
        return self.parent_id is not None
