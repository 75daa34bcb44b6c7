"""LLM engines: the ``LLMEngine`` Protocol and its backends.

Heavy backends are imported lazily (``VLLMEngine`` pulls in vLLM and
transformers), so importing this package stays cheap for code that only needs
the Protocol or the HTTP backend.
"""

from synthesizers.engines.base import Completion, LLMEngine, SamplingParams
from synthesizers.engines.errors import CONTEXT_OVERFLOW, is_context_overflow
from synthesizers.engines.factory import make_engine

__all__ = [
    "CONTEXT_OVERFLOW",
    "Completion",
    "EndpointPool",
    "LLMEngine",
    "OpenAIHTTPEngine",
    "SamplingParams",
    "VLLMEngine",
    "default_model_dir",
    "ensure_embedded_model",
    "is_context_overflow",
    "make_engine",
]


def __getattr__(name: str):
    if name == "VLLMEngine":
        from synthesizers.engines.vllm_local import VLLMEngine

        return VLLMEngine
    if name == "EndpointPool":
        from synthesizers.engines.pool import EndpointPool

        return EndpointPool
    if name == "OpenAIHTTPEngine":
        from synthesizers.engines.openai_http import OpenAIHTTPEngine

        return OpenAIHTTPEngine
    if name in ("default_model_dir", "ensure_embedded_model"):
        from synthesizers.engines import model_store

        return getattr(model_store, name)
    raise AttributeError(f"module 'synthesizers.engines' has no attribute {name!r}")
