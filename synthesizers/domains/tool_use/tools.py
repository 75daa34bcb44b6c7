"""An environment's tools as the agent loop's ``Tool``s.

The environment of a rollout lives in ``ctx.state["env"]``, built from the task
on first use (one per rollout). The environment's own ``EnvError`` becomes the
loop's ``ToolError``, so the model sees exactly the environment's message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from environments.base import EnvError, EnvTool, make_env
from synthesizers.domains.base import ToolContext, ToolError


@dataclass
class EnvToolAdapter:
    tool: EnvTool
    needs_sandbox: bool = False
    name: str = field(init=False)
    schema: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.tool.name
        self.schema = self.tool.schema

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        state = ctx.state if ctx.state is not None else {}
        env = state.get("env")
        if env is None:
            env = state["env"] = make_env(ctx.task.payload)
        try:
            return env.call(self.name, arguments)
        except EnvError as exc:
            raise ToolError(str(exc)) from exc
