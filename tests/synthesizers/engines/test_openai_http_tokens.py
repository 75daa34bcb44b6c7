"""``OpenAIHTTPEngine.generate`` (token-in/token-out over vLLM's /v1/completions) against httpx
mock transports: request shape, ids/text agreement after a stop string, failures recorded
(never raised), and when the engine is (not) a token engine."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from synthesizers.engines.base import SamplingParams, TokenEngine, supports_tokens
from synthesizers.engines.errors import is_context_overflow
from synthesizers.engines.openai_http import OpenAIHTTPEngine


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def completion_body(text, token_ids, *, prompt_ids=None, logprobs=None, finish="stop", stop_reason=None):
    choice = {"index": 0, "text": text, "finish_reason": finish, "stop_reason": stop_reason, "token_ids": token_ids,
              "prompt_token_ids": prompt_ids,
              "logprobs": None if logprobs is None else {"token_logprobs": logprobs, "tokens": [], "text_offset": [],
                                                         "top_logprobs": []}}
    return {"choices": [choice], "usage": {"prompt_tokens": len(prompt_ids or []), "completion_tokens": len(token_ids or [])}}


class Server:
    """A mock vLLM: /v1/models, then /v1/completions answered from a list; records requests."""

    def __init__(self, replies, max_model_len=None):
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []
        self.max_model_len = max_model_len

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/models"):
            card = {"id": "served", "root": "/srv/served"}
            if self.max_model_len:
                card["max_model_len"] = self.max_model_len
            return httpx.Response(200, json={"data": [card]})
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if callable(reply):
            reply = reply(json.loads(request.content))
        status, body = reply
        if isinstance(body, Exception):
            raise body
        return httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=body)

    def payloads(self):
        return [json.loads(r.content) for r in self.requests if r.url.path.endswith("/completions")]


def engine_for(server, tokenizer=None, **kw):
    kw.setdefault("backoff_s", 0.01)
    return OpenAIHTTPEngine("http://test.local", transport=httpx.MockTransport(server), tokenizer=tokenizer, **kw)


async def test_generate_sends_ids_and_asks_for_ids_and_logprobs(tokenizer):
    prompt = tokenizer.encode("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)
    sampled = tokenizer.encode("Hello!", add_special_tokens=False) + [tokenizer.eos_token_id]
    server = Server([(200, completion_body("Hello!", sampled, prompt_ids=prompt, logprobs=[-0.5] * len(sampled)))])
    engine = engine_for(server, tokenizer)
    params = SamplingParams(temperature=0.3, top_p=0.8, max_tokens=21, seed=9, stop=("END",), repetition_penalty=1.1,
                            structured_outputs={"regex": "[a-z]+"}, assistant_prefix="ignored")
    completion = await engine.generate(prompt, params)
    [payload] = server.payloads()
    assert str(server.requests[-1].url) == "http://test.local/v1/completions"
    assert payload["prompt"] == prompt and payload["model"] == "served"
    assert (payload["return_token_ids"], payload["logprobs"], payload["max_tokens"], payload["seed"]) == (True, 0, 21, 9)
    assert (payload["temperature"], payload["top_p"], payload["stop"]) == (0.3, 0.8, ["END"])
    assert payload["repetition_penalty"] == 1.1 and payload["structured_outputs"] == {"regex": "[a-z]+"}
    assert payload["skip_special_tokens"] is True and payload["include_stop_str_in_output"] is False
    assert "presence_penalty" not in payload and "messages" not in payload
    assert completion.error is None and completion.text == "Hello!"  # the prefix is the caller's business
    assert completion.prompt_ids == prompt and completion.output_ids == sampled  # the end token it sampled is kept
    assert completion.output_logprobs == [-0.5] * len(sampled)
    assert (completion.prompt_tokens, completion.completion_tokens, completion.finish_reason) == (len(prompt), len(sampled), "stop")
    await engine.close()


async def test_without_logprobs_none_are_asked_for(tokenizer):
    server = Server([(200, completion_body("ok", [564], prompt_ids=[1, 2]))])
    completion = await engine_for(server, tokenizer).generate([1, 2], SamplingParams(logprobs=False))
    assert "logprobs" not in server.payloads()[0]
    assert completion.output_ids == [564] and completion.output_logprobs is None


async def test_missing_logprob_entries_become_nan(tokenizer):
    server = Server([(200, completion_body("ab", [1, 2, 3], prompt_ids=[5], logprobs=[-1.0, None]))])
    completion = await engine_for(server, tokenizer).generate([5])
    assert completion.output_logprobs[0] == -1.0 and all(math.isnan(v) for v in completion.output_logprobs[1:])


async def test_a_stop_string_tokens_are_trimmed_so_ids_and_text_agree(tokenizer):
    # vLLM cuts the stop string from the text but keeps the tokens that spelled it (measured).
    sampled = tokenizer.encode("1. 1\n2. 2\n3. 3\n4. 4\n5", add_special_tokens=False)
    text = "1. 1\n2. 2\n3. 3\n4. "  # stop="4\n5"
    logprobs = [-float(i) for i in range(len(sampled))]
    server = Server([(200, completion_body(text, sampled, prompt_ids=[7], logprobs=logprobs, stop_reason="4\n5"))])
    completion = await engine_for(server, tokenizer).generate([7], SamplingParams(stop=("4\n5",)))
    assert completion.text == text
    assert tokenizer.decode(completion.output_ids, skip_special_tokens=False) == text
    assert completion.output_ids == sampled[: len(completion.output_ids)] and len(completion.output_ids) < len(sampled)
    assert completion.output_logprobs == logprobs[: len(completion.output_ids)]
    assert completion.completion_tokens == len(sampled)  # what the server sampled (and counts)


async def test_a_stop_token_is_kept_and_not_trimmed(tokenizer):
    sampled = tokenizer.encode("Done", add_special_tokens=False) + [tokenizer.eos_token_id]
    server = Server([(200, completion_body("Done", sampled, prompt_ids=[7], logprobs=[-1.0] * len(sampled), stop_reason=2))])
    completion = await engine_for(server, tokenizer).generate([7])
    assert completion.output_ids == sampled and completion.text == "Done"


async def test_prompt_ids_default_to_the_ids_sent_when_not_echoed(tokenizer):
    server = Server([(200, completion_body("x", [87], prompt_ids=None, logprobs=[-0.1]))])
    completion = await engine_for(server, tokenizer).generate([3, 4, 5])
    assert completion.prompt_ids == [3, 4, 5]


async def test_failures_are_recorded_not_raised(tokenizer):
    busy = Server([(503, "busy"), (200, completion_body("ok", [564], prompt_ids=[1], logprobs=[-0.2]))])
    assert (await engine_for(busy, tokenizer).generate([1])).output_ids == [564]  # retried
    assert len(busy.payloads()) == 2
    down = Server([(500, "boom")])
    failed = await engine_for(down, tokenizer, max_retries=1).generate([1])
    assert failed.finish_reason == "error" and "HTTP 500" in failed.error and failed.output_ids is None
    overflow = Server([(400, {"error": {"message": "This model's maximum context length is 2048 tokens"}})])
    assert is_context_overflow((await engine_for(overflow, tokenizer).generate([1])).error)
    no_ids = Server([(200, {"choices": [{"text": "hi", "finish_reason": "stop"}], "usage": {}})])
    missing = await engine_for(no_ids, tokenizer).generate([1])
    assert missing.finish_reason == "error" and "no token ids" in missing.error
    garbage = Server([(200, "<html>")])
    assert (await engine_for(garbage, tokenizer).generate([1])).finish_reason == "error"
    timeout = Server([(0, httpx.ReadTimeout("slow"))])
    timed_out = await engine_for(timeout, tokenizer, max_retries=1).generate([1])
    assert "ReadTimeout" in timed_out.error and timed_out.latency_s >= 0


async def test_max_tokens_is_clamped_to_the_served_context_and_a_full_prompt_is_an_overflow(tokenizer):
    server = Server([(200, completion_body("a", [64], prompt_ids=list(range(98)), logprobs=[-1.0]))], max_model_len=100)
    engine = engine_for(server, tokenizer)
    await engine.generate(list(range(98)), SamplingParams(max_tokens=50))
    assert server.payloads()[0]["max_tokens"] == 2
    full = await engine.generate(list(range(100)))
    assert is_context_overflow(full.error) and len(server.payloads()) == 1  # refused without a request


def test_token_mode_needs_a_tokenizer(tokenizer, model_dir):
    server = Server([(200, {})])
    text_only = engine_for(server)
    assert isinstance(text_only, TokenEngine) and not supports_tokens(text_only) and text_only.tokenizer is None
    assert supports_tokens(engine_for(server, tokenizer))
    assert not supports_tokens(engine_for(server, tokenizer, token_exact=False))  # the run decided text mode
    from_folder = engine_for(server, str(model_dir), chat_template="{{ 'T' }}")
    assert supports_tokens(from_folder) and from_folder.tokenizer.chat_template == "{{ 'T' }}"
