"""Verifiers by (domain, task kind). A new verifier adds one line here."""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

from verifiers.base import Verifier

VERIFIERS: dict[tuple[str, str], str] = {
    ("math", "default"): "verifiers.math:MathVerifier",
    ("code", "function"): "verifiers.code_function:FunctionCodeVerifier",
    ("code", "repo"): "verifiers.code_repo:RepoCodeVerifier",
    ("code", "repo-function"): "verifiers.code_repo:RepoCodeVerifier",  # splices the function, then as repo
    ("deep-research", "default"): "verifiers.deep_research:DeepResearchVerifier",
    ("agentic-cot", "default"): "verifiers.agentic_cot:AgenticCoTVerifier",
    ("agentic-cot", "sandboxed"): "verifiers.agentic_cot:SandboxedAgenticCoTVerifier",
    ("tool-use", "calls"): "verifiers.tool_use:CallMatchVerifier",
    ("tool-use", "stateful"): "verifiers.tool_use:StateVerifier",
}


class UnknownTaskKind(ValueError):
    pass


def register_verifier(domain: str, kind: str):
    """Class decorator: the verifier of (domain, kind) for a domain defined outside the project."""
    def register(cls: type) -> type:
        VERIFIERS[(domain, kind)] = f"{cls.__module__}:{cls.__qualname__}"
        return cls

    return register


def verifier_class(domain: str, kind: str = "default") -> type:
    target = VERIFIERS.get((domain, kind))
    if target is None:
        known = ", ".join(f"{d}/{k}" for d, k in VERIFIERS)
        raise UnknownTaskKind(f"no verifier for domain {domain!r}, task kind {kind!r} (known: {known})")
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def get_verifier(domain: str, kind: str = "default", *, judge: Callable | None = None,
                 options: dict[str, Any] | None = None, repetition: bool = False) -> Verifier:
    """The one way to build a verifier: the class for (domain, kind); ``judge``: an LLM judge, for
    verifiers that take one; ``options``: constructor keywords (the run config's
    ``verifier.options``), each passed to the verifiers that take it — a domain's kinds differ (see
    ``check_options``); ``repetition``: behind the repetition gate (a run and ``trajforge verify``
    pass the domain's ``repetition_check`` unless the config says otherwise)."""
    cls = verifier_class(domain, kind)
    params = inspect.signature(cls).parameters
    kwargs = {key: value for key, value in (options or {}).items() if key in params}
    if judge is not None:
        if "judge" not in params:
            raise UnknownTaskKind(f"the {domain}/{kind} verifier takes no judge: remove verifier.judge from the config")
        kwargs["judge"] = judge
    verifier = cls(**kwargs)
    if repetition:
        from verifiers.repetition import RepetitionGate

        verifier = RepetitionGate(verifier)
    return verifier


def check_options(domain: str, options: dict[str, Any]) -> None:
    """Refuse, in one line, an option no verifier of ``domain`` takes or a value one refuses."""
    kinds = [k for d, k in VERIFIERS if d == domain]
    taken = {p for k in kinds for p in inspect.signature(verifier_class(domain, k)).parameters} - {"judge", "pool"}
    unknown = sorted(set(options) - taken)
    if unknown:
        raise ValueError(f"verifier.options: {', '.join(unknown)} not taken by the {domain} verifiers "
                         f"(they take: {', '.join(sorted(taken)) or 'nothing'}): fix the run config")
    for kind in kinds:
        try:
            get_verifier(domain, kind, options=options)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"verifier.options: {exc}: fix the run config") from None


def infer_kind(domain: str, task_fields: dict) -> str:
    """The task kind implied by the fields of a `trajforge verify` input row."""
    if domain == "code":
        if "entry_point" in task_fields:
            return "function"
        return "repo-function" if "function" in task_fields else "repo"
    if domain == "tool-use":
        return "calls" if "expected_calls" in task_fields else "stateful"
    return "default"
