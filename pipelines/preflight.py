"""Checks made before a run starts any worker, so a bad --model fails in one
clear line instead of deep inside a Ray actor."""

from __future__ import annotations

import importlib
from pathlib import Path


class PreflightError(ValueError):
    pass


def check_model(spec: str) -> None:
    from synthesizers.engines.spec import parse_model_spec

    model = parse_model_spec(spec)
    if model.kind == "embedded":
        try:
            from synthesizers.engines.model_store import ensure_embedded_model

            ensure_embedded_model()
        except Exception as exc:
            raise PreflightError(f"embedded model unavailable ({exc}): run `make setup`") from None
        return
    if model.kind == "url":
        import httpx

        from synthesizers.engines.pool import endpoint_urls

        try:
            urls = endpoint_urls(spec)
        except ValueError as exc:
            raise PreflightError(f"{exc} (fix --model)") from None
        for endpoint in urls:  # every endpoint of a pool must answer at start
            url = endpoint.rstrip("/")
            url = url if url.endswith("/v1") else url + "/v1"
            try:
                httpx.get(url + "/models", timeout=5.0).raise_for_status()
            except Exception as exc:
                raise PreflightError(
                    f"no OpenAI-compatible server answers at {endpoint} ({type(exc).__name__}): start it or fix --model"
                ) from None
        return
    if model.kind == "python":
        module, _, attr = model.value.partition(":")
        try:
            getattr(importlib.import_module(module), attr)
        except Exception as exc:
            raise PreflightError(f"engine class {spec} cannot be imported ({exc}): fix engine.model") from None
        return
    path = Path(spec)
    if not (path / "config.json").is_file():
        raise PreflightError(
            f"model path not found or not a Hugging Face model folder: {spec} "
            "(pass a folder with config.json, an http(s) server URL, or 'embedded')"
        )


def check_sandbox() -> str:
    """Docker answers and the sandbox image exists (built if missing); returns the image tag."""
    from sandboxes.daemon import SandboxUnavailable, ensure_docker
    from sandboxes.image import ensure_image

    try:
        ensure_docker()
        return ensure_image()
    except SandboxUnavailable as exc:
        raise PreflightError(str(exc)) from None


def check_verifier_options(domain: str, options: dict) -> None:
    """The run config's ``verifier.options`` are taken by the domain's verifiers, with valid values."""
    if not options:
        return
    from verifiers.registry import check_options

    try:
        check_options(domain, options)
    except ValueError as exc:
        raise PreflightError(str(exc)) from None
