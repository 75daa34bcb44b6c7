"""make_engine: one spec string picks the backend."""

from __future__ import annotations

import pytest

from synthesizers.engines import LLMEngine, make_engine
from synthesizers.engines.openai_http import OpenAIHTTPEngine


def test_http_spec_gives_the_http_backend():
    engine = make_engine("http://127.0.0.1:8000", model="m", max_retries=1)
    assert isinstance(engine, OpenAIHTTPEngine)
    assert (engine.base_url, engine.model_id, engine.max_retries) == ("http://127.0.0.1:8000/v1", "m", 1)
    assert make_engine("https://host/v1").base_url == "https://host/v1"


def test_several_urls_give_an_endpoint_pool_and_bad_lists_are_one_line():
    from synthesizers.engines.pool import EndpointPool

    pool = make_engine("http://a:8000, http://b:8000/v1", model="m", max_retries=2)
    assert isinstance(pool, EndpointPool) and isinstance(pool, LLMEngine)
    assert [e.engine.base_url for e in pool.endpoints] == ["http://a:8000/v1", "http://b:8000/v1"]
    assert pool.max_retries == 2 and all(e.engine.max_retries == 0 for e in pool.endpoints)  # fail fast, move on
    assert isinstance(make_engine("http://a:8000,"), OpenAIHTTPEngine)  # one URL is a plain engine
    with pytest.raises(ValueError, match="'a:8000' is not an http"):
        make_engine("http://b:8000,a:8000")
    with pytest.raises(ValueError, match="names an endpoint twice"):
        make_engine("http://b:8000,http://b:8000/")


def test_python_spec_builds_the_named_class_with_options():
    engine = make_engine("python:tests.fakes:ScriptedEngine", delay_s=0.5)
    assert type(engine).__name__ == "ScriptedEngine" and engine.delay_s == 0.5
    assert isinstance(engine, LLMEngine)


@pytest.mark.parametrize("spec", ["python:tests.fakes", "python:no.such.module:X", "python:tests.fakes:Nope"])
def test_bad_python_spec_is_a_clear_error(spec):
    with pytest.raises(ValueError, match="engine spec|bad engine spec"):
        make_engine(spec)


def test_python_spec_must_satisfy_the_protocol():
    with pytest.raises(TypeError, match="does not satisfy LLMEngine"):
        make_engine("python:collections:OrderedDict")


def test_missing_local_model_path_is_one_clear_line(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        make_engine(str(tmp_path / "nowhere"))
    assert "model folder not found" in str(info.value) and "\n" not in str(info.value)


def test_local_path_and_embedded_give_vllm_engines_without_starting_them(model_dir):
    from synthesizers.engines.vllm_local import VLLMEngine

    for spec in (str(model_dir), "embedded", ""):
        engine = make_engine(spec, max_model_len=1024)
        assert isinstance(engine, VLLMEngine)
        assert engine.model == str(model_dir) and engine.max_model_len == 1024
        assert engine._llm is None  # lazily started: construction is cheap
        engine.shutdown()
