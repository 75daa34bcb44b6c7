"""The adapter that hands an environment's tools to the agent loop: one environment per
rollout state, and the environment's refusals as the loop's ToolError (same message)."""

from __future__ import annotations

import pytest

from environments.files import FilesEnv
from schemas import Task
from synthesizers.domains.base import ToolContext, ToolError
from synthesizers.domains.tool_use.tools import EnvToolAdapter

TASK = Task(id="t", domain="tool-use", kind="stateful",
            payload={"env": "files", "env_spec": {"files": {"/home/user/a.txt": "hi\n"}}})


def test_adapter_builds_one_env_per_rollout_and_maps_errors():
    tools = {t.name: EnvToolAdapter(t) for t in FilesEnv({}).tools()}
    assert tools["move"].schema["function"]["name"] == "move" and not tools["move"].needs_sandbox
    ctx = ToolContext(task=TASK, state={})
    assert tools["read_file"].run({"path": "a.txt"}, ctx) == "hi\n"
    env = ctx.state["env"]
    tools["move"].run({"source": "a.txt", "destination": "b.txt"}, ctx)
    assert ctx.state["env"] is env and "/home/user/b.txt" in env.state["files"]  # the same environment
    with pytest.raises(ToolError, match="^no such file: /home/user/a.txt$"):
        tools["read_file"].run({"path": "a.txt"}, ctx)
    with pytest.raises(ToolError, match="missing required field"):
        tools["read_file"].run({}, ToolContext(task=TASK, state={}))
    other = ToolContext(task=TASK, state={})
    assert tools["read_file"].run({"path": "a.txt"}, other) == "hi\n"  # another rollout: a fresh tree
