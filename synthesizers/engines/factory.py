"""Build an ``LLMEngine`` from one config string (the `--model` flag, a run config's `model`;
parsed by ``spec.parse_model_spec``, the one parser of it).

- ``http://...`` / ``https://...``: an OpenAI-compatible server (``OpenAIHTTPEngine``);
- several such URLs separated by commas: servers of one model behind a load-balancing,
  health-checked pool (``EndpointPool``; a run config may list them);
- ``""`` or ``"embedded"``: the embedded SmolLM2 through in-process vLLM (converted on first use);
- ``"python:module:Class"``: any class satisfying ``LLMEngine``, built with the options
  (the extension point for custom backends and for the tests' scripted engine);
- anything else: a local model folder or hub id for in-process vLLM (``VLLMEngine``).
"""

from __future__ import annotations

import importlib
from typing import Any

from synthesizers.engines.base import LLMEngine
from synthesizers.engines.spec import ModelSpec, parse_model_spec


def make_engine(spec: str | None, **opts: Any) -> LLMEngine:
    model = parse_model_spec(spec)
    if model.kind == "url":
        from synthesizers.engines.openai_http import OpenAIHTTPEngine
        from synthesizers.engines.pool import EndpointPool, endpoint_urls

        urls = endpoint_urls(model.value)
        return EndpointPool(urls, **opts) if len(urls) > 1 else OpenAIHTTPEngine(urls[0], **opts)
    if model.kind == "python":
        return _custom_engine(model, opts)
    from synthesizers.engines.vllm_local import VLLMEngine

    if model.kind == "embedded":
        from synthesizers.engines.model_store import ensure_embedded_model

        return VLLMEngine(str(ensure_embedded_model()), **opts)
    return VLLMEngine(model.value, **opts)


def _custom_engine(model: ModelSpec, opts: dict[str, Any]) -> LLMEngine:
    spec = f"python:{model.value}"
    module_name, class_name = model.module_and_class
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"engine spec {spec!r}: cannot load {class_name} from {module_name} ({exc})") from None
    engine = cls(**opts)
    if not isinstance(engine, LLMEngine):
        raise TypeError(f"{spec}: {cls.__name__} does not satisfy LLMEngine (needs model_id, chat, close)")
    return engine
