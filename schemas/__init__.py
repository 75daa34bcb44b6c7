"""schemas — the contracts every other room speaks.

Pydantic models for what flows through trajforge (Task, Message, ToolCall,
Trajectory, Verdict, ShardRow, Manifest) and the matching Arrow schemas used
for the trajectory store and the shards. This room imports nothing else of
the project, so every other room can depend on it.

Bump ``SCHEMA_VERSION`` whenever a stored field changes meaning or type.
"""

from schemas.messages import FunctionCall, Message, ToolCall, ToolResult, messages_from_openai
from schemas.task import Task
from schemas.trajectory import TokenCounts, Timings, Trajectory, Verdict
from schemas.shard import (
    MASKING_POLICIES,
    Manifest,
    ShardEntry,
    ShardRow,
    sha256_file,
    shard_arrow_schema,
    shard_file_name,
)
from schemas.arrow import trajectory_arrow_schema, trajectories_to_table, table_to_trajectories
from schemas.version import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "FunctionCall",
    "Message",
    "ToolCall",
    "ToolResult",
    "messages_from_openai",
    "Task",
    "Trajectory",
    "Verdict",
    "TokenCounts",
    "Timings",
    "ShardRow",
    "ShardEntry",
    "Manifest",
    "MASKING_POLICIES",
    "shard_arrow_schema",
    "shard_file_name",
    "sha256_file",
    "trajectory_arrow_schema",
    "trajectories_to_table",
    "table_to_trajectories",
]
