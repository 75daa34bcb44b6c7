"""The engine Protocols: one chat call in, one completion out; or token ids in, token ids out.

Backends (in-process vLLM, any OpenAI-compatible server over httpx) implement
``LLMEngine`` (text mode: messages in, text out). Those that can also take a
prompt as token ids and say which ids they sampled implement ``TokenEngine``
(``tokenizer`` + ``generate``); the agent loop then runs token-in/token-out and
the trajectory keeps the engine's own ids (``schemas.tokens.TokenTrace``).
A failed request never raises out of ``chat`` or ``generate``: it returns a
``Completion`` with ``error`` set, so the agent loop records it and moves on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from schemas import Message, ToolCall


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 512
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # Penalties against repeating (OpenAI / vLLM semantics): presence and frequency in [-2, 2]
    # subtract from the logits of tokens already generated; repetition (vLLM, > 1 penalises)
    # divides the logits of tokens in the prompt or the output. Defaults change nothing.
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    # Answer forcing: the assistant turn starts with this text and the model
    # continues it (e.g. "The final answer is $\\boxed{"). ``Completion.text``
    # then holds prefix + continuation, so the stored message is what the
    # model "said" and masking renders it like any assistant turn.
    assistant_prefix: str = ""
    # Structured outputs (guided decoding): keyword arguments of vLLM's
    # ``StructuredOutputsParams``, e.g. {"regex": ...} or {"structural_tag": ...};
    # an OpenAI-compatible vLLM server gets them as ``structured_outputs``.
    structured_outputs: dict[str, Any] | None = None
    # Logprob of each sampled token (the raw model's, before temperature); engines that can,
    # return them in ``Completion.output_logprobs``.
    logprobs: bool = True
    # A turn with one possible text (a scripted call, a grammar that leaves one choice): the
    # agent loop writes it without sampling, and token-exact rows count it as inserted.
    forced_text: str | None = None


@dataclass
class Completion:
    text: str = ""
    finish_reason: str = ""  # "stop" | "length" | "error"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Filled only when the backend already parsed tool calls (e.g. a server run
    # with a tool parser); otherwise the agent loop parses Hermes text itself.
    tool_calls: list[ToolCall] = field(default_factory=list)
    error: str | None = None
    latency_s: float = 0.0
    # Token-exact backends (``TokenEngine.generate``; ``chat`` where it knows them): the ids
    # the engine saw as its prompt, the ids it sampled (in order, an end token it sampled
    # included; a stop string's tokens removed, as from ``text``) and each one's logprob.
    prompt_ids: list[int] | None = None
    output_ids: list[int] | None = None
    output_logprobs: list[float] | None = None
    # Requests an endpoint failed (dead, timed out, 5xx) that were sent again to another endpoint
    # serving the same model (``engines.pool``): infrastructure retries, not model failures.
    endpoint_retries: int = 0


@runtime_checkable
class LLMEngine(Protocol):
    model_id: str

    async def chat(
        self,
        messages: list[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        params: SamplingParams = SamplingParams(),
    ) -> Completion: ...

    async def close(self) -> None: ...


@runtime_checkable
class TokenEngine(Protocol):
    """An engine that runs token-in/token-out: ``generate`` continues ``prompt_ids`` exactly
    (no template, no special tokens added; ``params.assistant_prefix`` is ignored: the
    caller puts a prefix's ids into the prompt). ``tokenizer`` is the Hugging Face tokenizer
    of the served model, its chat template set to the one the rollout renders with.
    ``token_exact`` is False for a backend that cannot return ids (it then runs text mode)."""

    model_id: str
    tokenizer: Any
    token_exact: bool

    async def generate(self, prompt_ids: list[int], params: SamplingParams = SamplingParams()) -> Completion: ...

    async def close(self) -> None: ...


def supports_tokens(engine: object) -> bool:
    """True when ``engine`` can run a token-in/token-out rollout."""
    return isinstance(engine, TokenEngine) and bool(getattr(engine, "token_exact", False))
