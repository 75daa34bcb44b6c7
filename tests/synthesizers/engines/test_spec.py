"""The one parser of a model spec: every reader of ``--model`` agrees on what it names."""

from __future__ import annotations

import pytest

from synthesizers.engines.spec import ModelSpec, parse_model_spec


@pytest.mark.parametrize("spec, kind, value", [
    (None, "embedded", ""), ("", "embedded", ""), (" embedded ", "embedded", ""),
    ("http://gpu:8000/v1", "url", "http://gpu:8000/v1"), ("https://x", "url", "https://x"),
    ("python:tests.fakes:ScriptedEngine", "python", "tests.fakes:ScriptedEngine"),
    ("/models/Qwen3-8B", "path", "/models/Qwen3-8B"), ("HuggingFaceTB/SmolLM2-135M", "path", "HuggingFaceTB/SmolLM2-135M"),
])
def test_each_spec_names_one_kind(spec, kind, value):
    assert parse_model_spec(spec) == ModelSpec(kind, value)


def test_a_python_spec_names_a_module_and_a_class():
    assert parse_model_spec("python:tests.fakes:ScriptedEngine").module_and_class == ("tests.fakes", "ScriptedEngine")
    with pytest.raises(ValueError, match="expected python:package.module:ClassName"):
        parse_model_spec("python:tests.fakes").module_and_class
