"""The engine Protocol: one chat call in, one completion out.

Backends (in-process vLLM, any OpenAI-compatible server over httpx) implement
``LLMEngine``. A failed request never raises out of ``chat``: it returns a
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
