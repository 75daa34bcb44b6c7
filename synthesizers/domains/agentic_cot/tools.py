"""Agentic-CoT's tools: the underlying domain's, shown the underlying task."""

from __future__ import annotations

from typing import Any

from schemas import Task
from synthesizers.domains.base import Tool, ToolContext


class UnderlyingTool:
    """An underlying domain's tool, shown the underlying task instead of the wrapper."""

    def __init__(self, tool: Tool, inner: Task):
        self._tool, self._inner = tool, inner
        self.name, self.schema, self.needs_sandbox = tool.name, tool.schema, tool.needs_sandbox

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        return self._tool.run(arguments, ToolContext(task=self._inner, sandbox=ctx.sandbox, state=ctx.state))
