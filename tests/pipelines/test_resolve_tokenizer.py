"""A served model's tokenizer is established in the driver and reaches the workers' HTTP engines."""

from __future__ import annotations

import asyncio

import pytest

from pipelines.config import RunConfig
from pipelines.preflight import PreflightError
from pipelines.run import resolve_tokenizer
from synthesizers.engines import served
from synthesizers.engines.served import EstablishedTokenizer, TokenizerNotEstablished


def fake_establish(result=None, error=None, seen=None):
    def establish(base_url, candidate=None, **kw):
        if seen is not None:
            seen.append((base_url, candidate))
        if error:
            raise TokenizerNotEstablished(error)
        return result

    return establish


def test_a_url_gets_the_established_tokenizer_and_token_mode(monkeypatch, model_dir):
    seen: list = []
    monkeypatch.setattr(served, "establish_tokenizer", fake_establish(
        EstablishedTokenizer(path=str(model_dir), source="served model", served_model="m", token_exact=False, checked=True),
        seen=seen))
    config = RunConfig(domain="math", engine={"model": "http://h:1", "tokenizer": None})
    assert resolve_tokenizer(config) == str(model_dir)
    assert seen == [("http://h:1", None)]
    assert config.engine.tokenizer == str(model_dir) and config.engine.options["token_exact"] is False


def test_a_failed_establishment_is_a_preflight_error(monkeypatch):
    monkeypatch.setattr(served, "establish_tokenizer", fake_establish(error="cannot establish: set engine.tokenizer"))
    with pytest.raises(PreflightError, match="cannot establish"):
        resolve_tokenizer(RunConfig(domain="math", engine={"model": "https://h/v1"}))


def test_local_models_are_unchanged(monkeypatch, model_dir):
    monkeypatch.setattr(served, "establish_tokenizer", fake_establish(error="never asked"))
    assert resolve_tokenizer(RunConfig(domain="math", engine={"model": str(model_dir)})) == str(model_dir)
    assert resolve_tokenizer(RunConfig(domain="math", engine={"model": "embedded", "tokenizer": "x"})) == "x"


def test_the_worker_engine_gets_the_tokenizer(model_dir):
    from pipelines.worker import RolloutWorker
    from synthesizers.engines.base import supports_tokens

    base = {"domain": "math", "engine": {"model": "http://127.0.0.1:9", "tokenizer": str(model_dir)}}
    worker = RolloutWorker(RunConfig(**base).model_dump(), "run")
    assert supports_tokens(worker.engine) and worker.engine.tokenizer.name_or_path == str(model_dir)
    text = RunConfig(**base)
    text.engine.options["token_exact"] = False
    assert not supports_tokens(RolloutWorker(text.model_dump(), "run").engine)
    bare = RolloutWorker(RunConfig(domain="math", engine={"model": "http://127.0.0.1:9"}).model_dump(), "run")
    assert not supports_tokens(bare.engine) and bare.engine.tokenizer is None
    for w in (worker, bare):
        asyncio.run(w.close())
