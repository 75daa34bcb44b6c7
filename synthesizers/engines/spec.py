"""The one parser of a model spec (the ``--model`` flag, a run config's ``engine.model``).

- ``""`` or ``"embedded"``: the embedded SmolLM2 through in-process vLLM;
- ``http://...`` / ``https://...``: an OpenAI-compatible server;
- ``"python:module:Class"``: any class satisfying ``LLMEngine`` (custom backends, the tests' engines);
- anything else: a local model folder or hub id for in-process vLLM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["embedded", "url", "python", "path"]


@dataclass(frozen=True)
class ModelSpec:
    kind: Kind
    value: str  # the URL, the folder or hub id, or "module:Class"; "" for the embedded model

    @property
    def module_and_class(self) -> tuple[str, str]:
        module, _, cls = self.value.partition(":")
        if self.kind != "python" or not module or not cls:
            raise ValueError(f"bad engine spec 'python:{self.value}': expected python:package.module:ClassName")
        return module, cls


def parse_model_spec(spec: str | None) -> ModelSpec:
    spec = (spec or "").strip()
    if spec in ("", "embedded"):
        return ModelSpec("embedded", "")
    if spec.startswith(("http://", "https://")):
        return ModelSpec("url", spec)
    if spec.startswith("python:"):
        return ModelSpec("python", spec[len("python:"):])
    return ModelSpec("path", spec)
