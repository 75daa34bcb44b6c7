"""How `trajforge verify` judges each domain's rows: as a run would.

Without a config, a domain is built with its default options and judged under its shipped
config's sandbox limits (``pipelines.sandbox_pool.domain_sandbox``). With ``--config``, the
config's domain is built with its ``domain_options`` (which imply verifier keywords, e.g. deep
research's pass mark: ``Domain.verifier_options``) and judged with its ``verifier`` section
(options, repetition, judge) and ``sandbox`` limits. A mixture config (``configs/all.yaml``)
does that for each of its domains, from the domain's config with the mixture's ``overrides`` on
top; a domain the mixture run would skip (not built, no config file) keeps the defaults.
Domains the config does not name keep the defaults too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipelines.config import ConfigError, RunConfig, SandboxConfig, load_config


@dataclass(frozen=True)
class Judging:
    """One domain's judging: what ``pipelines.worker.make_verifier`` and the sandbox pool get."""

    domain: Any  # the Domain, built with its options; None: a verifier without a synthesizer domain
    options: dict[str, Any] = field(default_factory=dict)  # the config's verifier.options
    repetition: bool | None = None  # None: the domain's repetition_check
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    judge: dict[str, Any] | None = None  # the config's verifier.judge (an LLM judge's spec)


@functools.lru_cache(maxsize=None)
def default_judging(name: str) -> Judging:
    """A domain with default options, under its shipped config's sandbox limits."""
    from pipelines.sandbox_pool import domain_sandbox
    from synthesizers.domains.registry import get_domain

    try:
        domain = get_domain(name)
    except ValueError:  # a verifier without a synthesizer domain: the base image, no options
        domain = None
    return Judging(domain=domain, sandbox=domain_sandbox(name))


def judging_from_config(path: str | Path) -> dict[str, Judging]:
    """Per domain, the judging a run of the config at ``path`` (a run or a mixture config) uses.
    A config that cannot be used raises ``ConfigError`` (or ``DomainOptionsError``, a line per
    bad key) before anything is judged."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (pass a run or mixture config with --config)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raw = None  # load_config says where the syntax breaks
    if isinstance(raw, dict) and "mixture" in raw:
        configs = _mixture_configs(path)
    else:
        config = load_config(path)
        configs = {config.domain: config}
    return {name: _judging(config, path) for name, config in configs.items()}


def _mixture_configs(path: Path) -> dict[str, RunConfig]:
    """The run configs of a mixture's domains, as ``pipelines.mixture.run_mixture`` loads them."""
    from pipelines.mixture import load_mixture_config
    from synthesizers.domains.registry import DOMAINS

    configs = {}
    for name, spec in load_mixture_config(path).domains.items():
        if name not in DOMAINS or not Path(spec.config).is_file():
            continue  # the mixture run skips it too (and says so in its report)
        config = load_config(spec.config, **spec.overrides)
        if config.domain != name:
            raise ConfigError(f"mixture domain {name!r} points at {spec.config}, a config for {config.domain!r}")
        configs[name] = config
    return configs


def _judging(config: RunConfig, path: Path) -> Judging:
    from synthesizers.domains.registry import get_domain, import_plugins
    from verifiers.registry import check_options

    import_plugins(config.plugins)
    domain = get_domain(config.domain, config.domain_options)
    merged = {**domain.verifier_options(), **config.verifier.options}
    try:  # what make_verifier will pass: the config's keys must be taken, the values valid
        if merged:
            check_options(config.domain, merged)
    except ValueError as exc:
        raise ConfigError(f"config {path}: {exc}") from None
    judge = config.verifier.judge.model_dump() if config.verifier.judge else None
    return Judging(domain=domain, options=dict(config.verifier.options), repetition=config.verifier.repetition,
                   sandbox=config.sandbox, judge=judge)
