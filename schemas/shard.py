"""Shard rows and the manifest (DESIGN.md, "Shards").

A shard is a Parquet file ``{domain}-{index:05d}.parquet`` with one row per
trajectory; ``datasets.load_dataset("parquet", ...)`` reads it as it is.

Schema 2 (token-exact): ``input_ids`` are the ids the engine saw and sampled;
``token_source`` says who chose each token (``schemas.tokens.TokenSource``: 0
context, 1 sampled, 2 sampled under a grammar, 3 inserted by the framework);
``logprobs`` holds the engine's logprob for sources 1 and 2 (NaN elsewhere);
``token_exact`` is False for rows tokenised from text (rewrites, imports,
text-mode servers), whose assistant tokens count as source 1; ``text_drift`` is
True when an assistant turn's ids do not decode to its stored message.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.version import SCHEMA_VERSION

MASKING_POLICIES = ("assistant", "assistant+user", "all-but-tool", "none")
INSERTED_SOURCE = 3  # schemas.tokens.TokenSource.INSERTED


def sha256_file(path: str | Path) -> str:
    """The digest a manifest records for a shard (writer and reader must agree)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# The files a manifest's ``tokenizer_sha256`` covers, in this order.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def tokenizer_files_sha256(files: dict[str, Path]) -> str:
    """sha256 over the tokenizer files given (name -> path): per file, in ``TOKENIZER_FILES`` order,
    its name, a NUL, its own sha256 hex digest and a newline, so the same files give the same
    hash wherever they sit; ``""`` when none is given. Writer and trainer must agree."""
    if not files:
        return ""
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        if name in files:
            digest.update(f"{name}\0{hashlib.sha256(Path(files[name]).read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()


def shard_file_name(domain: str, index: int) -> str:
    return f"{domain}-{index:05d}.parquet"


class ShardRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trajectory_id: str
    domain: str
    input_ids: list[int]
    loss_mask: list[int]  # 1 = token carries loss
    num_tokens: int
    num_loss_tokens: int
    task_id: str = ""
    parent_id: str | None = None
    passed: bool = True
    score: float = 0.0
    token_source: list[int] = Field(default_factory=list)  # empty: all context (a v1-style row)
    logprobs: list[float] = Field(default_factory=list)
    token_exact: bool = False
    text_drift: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> "ShardRow":
        if len(self.input_ids) != len(self.loss_mask):
            raise ValueError("input_ids and loss_mask differ in length")
        if not self.token_source:
            self.token_source = [0] * len(self.input_ids)
        if not self.logprobs:
            self.logprobs = [math.nan] * len(self.input_ids)
        if not (len(self.token_source) == len(self.logprobs) == len(self.input_ids)):
            raise ValueError("token_source / logprobs differ in length from input_ids")
        if self.num_tokens != len(self.input_ids):
            raise ValueError("num_tokens does not match input_ids")
        if self.num_loss_tokens != sum(self.loss_mask):
            raise ValueError("num_loss_tokens does not match loss_mask")
        return self

    @property
    def inserted_tokens(self) -> int:
        return sum(1 for s in self.token_source if s == INSERTED_SOURCE)


def shard_arrow_schema() -> pa.Schema:
    return pa.schema(
        [
            ("trajectory_id", pa.string()),
            ("domain", pa.string()),
            ("input_ids", pa.list_(pa.int32())),
            ("loss_mask", pa.list_(pa.uint8())),
            ("num_tokens", pa.int64()),
            ("num_loss_tokens", pa.int64()),
            ("task_id", pa.string()),
            ("parent_id", pa.string()),
            ("passed", pa.bool_()),
            ("score", pa.float64()),
            ("token_source", pa.list_(pa.uint8())),
            ("logprobs", pa.list_(pa.float32())),
            ("token_exact", pa.bool_()),
            ("text_drift", pa.bool_()),
        ],
        metadata={"trajforge_schema_version": SCHEMA_VERSION},
    )


class ShardEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str  # relative to the manifest's folder
    domain: str
    rows: int
    tokens: int
    loss_tokens: int
    sha256: str
    token_exact_rows: int = 0
    inserted_tokens: int = 0
    drift_rows: int = 0


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: str = SCHEMA_VERSION
    tokenizer_id: str  # a name a consumer can load (the hub id where known)
    tokenizer_sha256: str = ""  # of the tokenizer's files (pipelines.tokenizer_identity)
    masking_policy: str = "assistant"
    train_on_inserted: bool = False  # loss on tokens the framework inserted (source 3)
    assists: list[str] = Field(default_factory=list)  # the small-model assists that steered the rollouts
    # Benchmarks checked (texts indexed), removals per benchmark, benchmarks seeded from by choice
    # (``allow_benchmark_seeds``): {"checked": {}, "hits": {}, "benchmark_seeds": {}}. Empty: not recorded.
    decontamination: dict[str, Any] = Field(default_factory=dict)
    shards: list[ShardEntry] = Field(default_factory=list)
    run_config: dict[str, Any] = Field(default_factory=dict)
    created_at: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(s.rows for s in self.shards)

    @property
    def total_tokens(self) -> int:
        return sum(s.tokens for s in self.shards)

    @property
    def token_exact_rows(self) -> int:
        return sum(s.token_exact_rows for s in self.shards)

    @property
    def inserted_tokens(self) -> int:
        return sum(s.inserted_tokens for s in self.shards)

    @property
    def drift_rows(self) -> int:
        return sum(s.drift_rows for s in self.shards)

    def tokens_per_domain(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.shards:
            out[s.domain] = out.get(s.domain, 0) + s.tokens
        return out
