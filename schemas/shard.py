"""Shard rows and the manifest (DESIGN.md, "Shards").

A shard is a Parquet file ``{domain}-{index:05d}.parquet`` with one row per
trajectory; ``datasets.load_dataset("parquet", ...)`` reads it as it is.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.version import SCHEMA_VERSION

MASKING_POLICIES = ("assistant", "assistant+user", "all-but-tool", "none")


def sha256_file(path: str | Path) -> str:
    """The digest a manifest records for a shard (writer and reader must agree)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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

    @model_validator(mode="after")
    def _consistent(self) -> "ShardRow":
        if len(self.input_ids) != len(self.loss_mask):
            raise ValueError("input_ids and loss_mask differ in length")
        if self.num_tokens != len(self.input_ids):
            raise ValueError("num_tokens does not match input_ids")
        if self.num_loss_tokens != sum(self.loss_mask):
            raise ValueError("num_loss_tokens does not match loss_mask")
        return self


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


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: str = SCHEMA_VERSION
    tokenizer_id: str
    masking_policy: str = "assistant"
    shards: list[ShardEntry] = Field(default_factory=list)
    run_config: dict[str, Any] = Field(default_factory=dict)
    created_at: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(s.rows for s in self.shards)

    @property
    def total_tokens(self) -> int:
        return sum(s.tokens for s in self.shards)

    def tokens_per_domain(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.shards:
            out[s.domain] = out.get(s.domain, 0) + s.tokens
        return out
