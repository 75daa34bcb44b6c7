"""The OpenAI-compatible HTTP backend against httpx mock transports and a refusing port:
request shape, retries with backoff, failures recorded (never raised), parsed tool calls."""

from __future__ import annotations

import json
import socket

import httpx

from schemas import Message, ToolCall
from synthesizers.engines.base import SamplingParams
from synthesizers.engines.errors import is_context_overflow, is_endpoint_unavailable
from synthesizers.engines.openai_http import OpenAIHTTPEngine

HELLO = [Message(role="user", content="hi")]


def ok_body(text="hello", tool_calls=None):
    message = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "choices": [{"message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3},
    }


class Recorder:
    """A mock server: answers from a list of (status, body) and records every request."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "served-model"}]})
        status, body = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(body, Exception):
            raise body
        return httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=body)

    def chat_payloads(self):
        return [json.loads(r.content) for r in self.requests if r.url.path.endswith("/chat/completions")]


def engine_for(recorder, **kw):
    kw.setdefault("backoff_s", 0.01)
    return OpenAIHTTPEngine("http://test.local", transport=httpx.MockTransport(recorder), **kw)


async def test_request_shape_and_model_discovery():
    recorder = Recorder([(200, ok_body())])
    engine = engine_for(recorder, api_key="k")
    tools = [{"type": "function", "function": {"name": "python", "parameters": {}}}]
    messages = [
        Message(role="user", content="q"),
        Message(role="assistant", content="", tool_calls=[ToolCall.make("call_0_0", "python", {"code": "1"})]),
        Message(role="tool", content="1", tool_call_id="call_0_0", name="python"),
        Message(role="tool", content="Error: malformed"),
    ]
    params = SamplingParams(temperature=0.2, top_p=0.9, max_tokens=33, seed=7, stop=("END",))
    completion = await engine.chat(messages, tools=tools, params=params)
    assert (completion.text, completion.prompt_tokens, completion.completion_tokens, completion.error) == ("hello", 11, 3, None)
    assert engine.model_id == "served-model"
    [payload] = recorder.chat_payloads()
    assert payload["model"] == "served-model" and payload["tools"] == tools
    assert (payload["seed"], payload["max_tokens"], payload["temperature"], payload["top_p"], payload["stop"]) == (7, 33, 0.2, 0.9, ["END"])
    wire = payload["messages"]
    assert wire[1]["content"] is None and wire[1]["tool_calls"][0]["function"] == {"name": "python", "arguments": '{"code": "1"}'}
    assert wire[2] == {"role": "tool", "content": "1", "tool_call_id": "call_0_0", "name": "python"}
    assert wire[3] == {"role": "user", "content": "<tool_response>\nError: malformed\n</tool_response>"}
    assert recorder.requests[-1].headers["authorization"] == "Bearer k"
    assert str(recorder.requests[-1].url) == "http://test.local/v1/chat/completions"
    assert not {"presence_penalty", "frequency_penalty", "repetition_penalty"} & set(payload)  # unset: not sent
    await engine.close()


async def test_503_then_200_is_retried():
    recorder = Recorder([(503, "busy"), (429, "slow down"), (200, ok_body("after retry"))])
    engine = engine_for(recorder, model="m")
    completion = await engine.chat(HELLO)
    assert completion.text == "after retry" and completion.error is None
    assert len(recorder.chat_payloads()) == 3
    await engine.close()


async def test_persistent_5xx_becomes_a_recorded_failure_after_max_retries():
    recorder = Recorder([(500, "boom")])
    engine = engine_for(recorder, model="m", max_retries=2)
    completion = await engine.chat(HELLO)
    assert completion.finish_reason == "error" and "HTTP 500" in completion.error and "boom" in completion.error
    assert len(recorder.chat_payloads()) == 3  # first try + 2 retries
    assert is_endpoint_unavailable(completion.error)  # an endpoint pool sends it elsewhere


async def test_client_errors_are_not_retried_and_overflow_is_marked():
    recorder = Recorder([(400, {"error": {"message": "This model's maximum context length is 2048 tokens"}})])
    engine = engine_for(recorder, model="m")
    completion = await engine.chat(HELLO)
    assert len(recorder.chat_payloads()) == 1
    assert is_context_overflow(completion.error)
    plain = engine_for(Recorder([(404, "no such route")]), model="m")
    failed = await plain.chat(HELLO)
    assert "HTTP 404" in failed.error and not is_context_overflow(failed.error)
    assert not is_endpoint_unavailable(failed.error) and not is_endpoint_unavailable(completion.error)


async def test_timeouts_are_retried_then_recorded():
    recorder = Recorder([(0, httpx.ReadTimeout("slow")), (200, ok_body("recovered"))])
    assert (await engine_for(recorder, model="m").chat(HELLO)).text == "recovered"
    stuck = Recorder([(0, httpx.ReadTimeout("slow"))])
    completion = await engine_for(stuck, model="m", max_retries=1).chat(HELLO)
    assert completion.finish_reason == "error" and "ReadTimeout" in completion.error
    assert len(stuck.requests) == 2 and is_endpoint_unavailable(completion.error)


async def test_server_parsed_tool_calls_are_returned():
    calls = [{"id": "chatcmpl-tool-1", "type": "function", "function": {"name": "python", "arguments": '{"code": "2"}'}}]
    engine = engine_for(Recorder([(200, ok_body(None, calls))]), model="m")
    completion = await engine.chat(HELLO)
    assert completion.text == ""
    assert completion.tool_calls == [ToolCall.make("chatcmpl-tool-1", "python", {"code": "2"})]


async def test_refused_connection_is_retried_then_recorded():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = OpenAIHTTPEngine(f"http://127.0.0.1:{port}", model="m", max_retries=2, backoff_s=0.01, timeout_s=5)
    completion = await engine.chat(HELLO)
    assert completion.finish_reason == "error" and "ConnectError" in completion.error  # refused, not timed out
    assert is_endpoint_unavailable(completion.error)
    await engine.close()


async def test_garbage_body_is_a_recorded_failure():
    engine = engine_for(Recorder([(200, "<html>not json</html>")]), model="m")
    completion = await engine.chat(HELLO)
    assert completion.finish_reason == "error" and completion.error


async def test_tool_choice_is_sent_only_when_configured():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    default, explicit = Recorder([(200, ok_body())]), Recorder([(200, ok_body())])
    await engine_for(default, model="m").chat(HELLO, tools=tools)
    await engine_for(explicit, model="m", tool_choice="none").chat(HELLO, tools=tools)
    assert "tool_choice" not in default.chat_payloads()[0]
    assert explicit.chat_payloads()[0]["tool_choice"] == "none"


async def test_assistant_prefix_continues_a_started_assistant_turn():
    recorder = Recorder([(200, ok_body(text="42}$."))])
    completion = await engine_for(recorder, model="m").chat(HELLO, params=SamplingParams(assistant_prefix="So $\\boxed{"))
    [payload] = recorder.chat_payloads()
    assert payload["messages"][-1] == {"role": "assistant", "content": "So $\\boxed{"}
    assert payload["continue_final_message"] is True and payload["add_generation_prompt"] is False
    assert completion.text == "So $\\boxed{42}$."  # the stored turn is prefix + continuation


async def test_structured_outputs_are_sent_as_vllm_structured_outputs():
    plain, guided = Recorder([(200, ok_body())]), Recorder([(200, ok_body(text="yes"))])
    await engine_for(plain, model="m").chat(HELLO)
    await engine_for(guided, model="m").chat(HELLO, params=SamplingParams(structured_outputs={"choice": ["yes", "no"]}))
    assert "structured_outputs" not in plain.chat_payloads()[0]
    assert guided.chat_payloads()[0]["structured_outputs"] == {"choice": ["yes", "no"]}


async def test_penalties_are_sent_only_when_set():
    recorder = Recorder([(200, ok_body()), (200, ok_body())])
    engine = engine_for(recorder)
    await engine.chat([Message(role="user", content="q")],
                      params=SamplingParams(presence_penalty=0.5, repetition_penalty=1.2))
    await engine.chat([Message(role="user", content="q")], params=SamplingParams(frequency_penalty=-0.3))
    first, second = recorder.chat_payloads()
    assert (first["presence_penalty"], first["repetition_penalty"]) == (0.5, 1.2) and "frequency_penalty" not in first
    assert second["frequency_penalty"] == -0.3 and "repetition_penalty" not in second


async def test_connections_are_split_over_small_clients_the_least_busy_first():
    """httpcore scans all of a client's connections per request: many connections are many small
    clients, and a request goes to the client with the fewest in flight."""
    import asyncio

    release = asyncio.Event()

    async def held(request):
        await release.wait()
        return httpx.Response(200, json=ok_body("done"))

    engine = OpenAIHTTPEngine("http://h", model="m", max_connections=130, transport=httpx.MockTransport(held))
    try:
        pending = [asyncio.ensure_future(engine.chat(HELLO)) for _ in range(7)]
        await asyncio.sleep(0.2)
        [(clients, busy)] = engine._clients.values()
        assert len(clients) == 3 and engine._limits.max_connections == 44  # ceil(130 / 64) clients of <= 44
        assert sorted(busy) == [2, 2, 3]
        release.set()
        assert all(c.text == "done" for c in await asyncio.gather(*pending)) and busy == [0, 0, 0]
    finally:
        await engine.close()
