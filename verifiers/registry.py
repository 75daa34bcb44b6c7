"""Verifiers by (domain, task kind). A new verifier adds one line here."""

from __future__ import annotations

import importlib
import inspect
from typing import Callable

from verifiers.base import Verifier

VERIFIERS: dict[tuple[str, str], str] = {
    ("math", "default"): "verifiers.math:MathVerifier",
    ("code", "function"): "verifiers.code_function:FunctionCodeVerifier",
    ("code", "repo"): "verifiers.code_repo:RepoCodeVerifier",
    ("deep-research", "default"): "verifiers.deep_research:DeepResearchVerifier",
    ("agentic-cot", "default"): "verifiers.agentic_cot:AgenticCoTVerifier",
    ("agentic-cot", "sandboxed"): "verifiers.agentic_cot:SandboxedAgenticCoTVerifier",
    ("tool-use", "calls"): "verifiers.tool_use:CallMatchVerifier",
    ("tool-use", "stateful"): "verifiers.tool_use:StateVerifier",
}


class UnknownTaskKind(ValueError):
    pass


def get_verifier(domain: str, kind: str = "default", *, judge: Callable | None = None) -> Verifier:
    """The verifier for (domain, kind); ``judge``: an LLM judge, for verifiers that take one."""
    target = VERIFIERS.get((domain, kind))
    if target is None:
        known = ", ".join(f"{d}/{k}" for d, k in VERIFIERS)
        raise UnknownTaskKind(f"no verifier for domain {domain!r}, task kind {kind!r} (known: {known})")
    module, attr = target.split(":")
    cls = getattr(importlib.import_module(module), attr)
    if judge is None:
        return cls()
    if "judge" not in inspect.signature(cls).parameters:
        raise UnknownTaskKind(f"the {domain}/{kind} verifier takes no judge: remove verifier.judge from the config")
    return cls(judge=judge)


def infer_kind(domain: str, task_fields: dict) -> str:
    """The task kind implied by the fields of a `trajforge verify` input row."""
    if domain == "code":
        return "function" if "entry_point" in task_fields else "repo"
    if domain == "tool-use":
        return "calls" if "expected_calls" in task_fields else "stateful"
    return "default"
