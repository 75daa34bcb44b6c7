"""Domain plug-ins by name. A new domain adds one line here and one package,
``synthesizers/domains/<name>/``, with the same file roles as the others (as far as it has
them): ``domain.py`` (the plug-in), ``seeds.py``, ``tools.py``, ``controllers.py`` (its
small-model assists), ``prompts.py``."""

from __future__ import annotations

import importlib

from typing import Any

from synthesizers.domains.base import Domain, DomainOptions

# name -> "module:attribute"; imported lazily so one broken plug-in can't break the others.
DOMAINS: dict[str, str] = {
    "math": "synthesizers.domains.math:MathDomain",
    "code": "synthesizers.domains.code.domain:CodeDomain",
    "deep-research": "synthesizers.domains.deep_research:DeepResearchDomain",
    "agentic-cot": "synthesizers.domains.agentic_cot:AgenticCoTDomain",
    "tool-use": "synthesizers.domains.tool_use:ToolUseDomain",
}
PLANNED: tuple[str, ...] = ()  # names announced but not built yet


class UnknownDomain(ValueError):
    pass


def register_domain(cls: type[Domain]) -> type[Domain]:
    """Class decorator: a domain defined outside this package (a run's ``plugins`` module) is
    looked up by its name like the built-in ones."""
    DOMAINS[cls.name] = f"{cls.__module__}:{cls.__qualname__}"
    return cls


def import_plugins(modules: list[str]) -> None:
    """Import a run's ``plugins`` modules (each registers what it defines); a missing one fails
    with one line naming it."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UnknownDomain(f"plugin module {module!r} cannot be imported ({exc}): fix plugins in the run config")


def domain_class(name: str) -> type[Domain]:
    target = DOMAINS.get(name)
    if target is None:
        if name in PLANNED:
            raise UnknownDomain(f"domain {name!r} is planned but not built yet (available: {', '.join(DOMAINS)})")
        raise UnknownDomain(f"unknown domain {name!r} (available: {', '.join(DOMAINS)})")
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def get_domain(name: str, options: DomainOptions | dict[str, Any] | None = None) -> Domain:
    """The domain ``name`` built with ``options`` (a run config's ``domain_options``), validated
    once here: ``DomainOptionsError`` names each bad key on a line of its own."""
    return domain_class(name)(options)
