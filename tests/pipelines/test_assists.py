"""Small-model assists are opt-in and named: on for the embedded model, off for any other unless a
config says so; off, the model writes every turn itself and nothing is inserted."""

from __future__ import annotations

import pytest

from pipelines.config import RunConfig, assists_on, load_config
from pipelines.rollout import TaskRunner, settings_from_config
from pipelines.run import active_assists, fingerprint
from schemas import Task, Verdict
from schemas.tokens import TokenSource
from synthesizers.domains.registry import get_domain
from tests.fakes import TokenFakeEngine


class Fails:
    domain, needs_sandbox = "math", False

    def verify(self, task, messages, sandbox=None):
        return Verdict(passed=False, reason="no box")


@pytest.mark.parametrize("model, assist, on", [
    ("embedded", "auto", True), ("python:tests.fakes:ScriptedEngine", "auto", True),
    ("/models/Qwen3-8B", "auto", False), ("http://gpu-node:8000/v1", "auto", False),
    ("/models/Qwen3-8B", "small-model", True), ("embedded", "none", False),
])
def test_who_gets_assists(model, assist, on):
    cfg = RunConfig(domain="math", engine={"model": model}, agent={"assist": assist})
    assert assists_on(cfg) is on
    assert active_assists(cfg) == (["answer-forcing"] if on else [])


def test_shipped_configs_turn_them_off_for_another_model():
    for name in ("math", "code", "tool-use", "deep-research", "agentic-cot"):
        assert assists_on(load_config(f"configs/{name}.yaml"))
        assert not assists_on(load_config(f"configs/{name}.yaml", **{"engine.model": "/models/real"}))


def test_the_fingerprint_changes_only_when_assists_go_off():
    base = RunConfig(domain="math")
    assert fingerprint(base) == fingerprint(RunConfig(domain="math", agent={"assist": "small-model"}))
    assert fingerprint(base) != fingerprint(RunConfig(domain="math", agent={"assist": "none"}))


async def _rollout(tokenizer, assist: str):
    cfg = RunConfig(domain="math", agent={"assist": assist, "max_turns": 3}, branching={"enabled": False})
    engine = TokenFakeEngine(tokenizer, ["I think it is four.", "4}$."])
    runner = TaskRunner(engine, get_domain("math"), lambda kind: Fails(), settings_from_config(cfg))
    [trajectory] = await runner.run_task(Task(id="t1", domain="math", payload={"question": "2 + 2?", "answer": "4"}))
    return trajectory, engine


async def test_without_assists_nothing_is_inserted_and_the_model_ends_its_turn(embedded_tokenizer):
    on, on_engine = await _rollout(embedded_tokenizer, "small-model")
    assert on.token_trace.count(TokenSource.INSERTED) > 0 and len(on_engine.prompts) == 2
    off, off_engine = await _rollout(embedded_tokenizer, "none")
    assert off.token_trace.count(TokenSource.INSERTED) == 0 and len(off_engine.prompts) == 1
    assert off.stop_reason == "no_tool_call" and off.messages[-1].content == "I think it is four."
