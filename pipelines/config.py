"""Run configuration: one YAML file per run, validated by pydantic.

Every knob has a laptop-sized default, so a config can be as short as
``domain: math``. ``load_config`` turns any problem into a ``ConfigError``
whose message is one line naming the problem and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas import MASKING_POLICIES


class ConfigError(ValueError):
    """A config that cannot be used; the message is one line for the user."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EngineConfig(_Strict):
    # "embedded" | a local HF model folder | an OpenAI-compatible URL | "python:module:Class";
    # or several servers of one model (a list of URLs, or one string of URLs separated by
    # commas): a load-balancing, health-checked pool (synthesizers.engines.pool), kept as that string.
    model: str = "embedded"
    max_model_len: int = 4096
    kv_cache_gb: float = 2.0
    tokenizer: str | None = None  # for shards; defaults to the model's (embedded for URLs)
    served_model: str | None = None  # set by the run: the id a served model's endpoints answer with
    options: dict[str, Any] = Field(default_factory=dict)  # passed to the backend

    @field_validator("model", mode="before")
    @classmethod
    def _endpoints(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)) or (isinstance(value, str) and "," in value):
            from synthesizers.engines.pool import endpoint_urls

            return ",".join(endpoint_urls(value))
        return value


class SamplingConfig(_Strict):
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 384
    stop: list[str] = Field(default_factory=list)  # e.g. ["\n\n"] to end a small model's rambling turn
    # Against loops (OpenAI / vLLM semantics, see synthesizers.engines.base.SamplingParams).
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    repetition_penalty: float = Field(1.0, gt=0.0, le=2.0)


class AgentConfig(_Strict):
    max_turns: int = 4
    max_total_tokens: int = 3072
    max_tool_output_chars: int = 2000
    concurrency: int = 16  # rollouts in flight per worker
    # The domains' small-model assists (answer forcing, phase tags, guided calls and code turns,
    # research forcing; each domain names its own in ``assists``): "small-model" turns them on,
    # "none" off, "auto" on for the embedded model (and custom ``python:`` engines) only, so a
    # shipped config pointed at another model with --model runs it unassisted. What they write
    # is recorded as inserted tokens and carries no loss by default.
    assist: Literal["auto", "small-model", "none"] = "auto"
    # A rollout that fails for the infrastructure's reasons (engine error, sandbox gone, verifier
    # crash) is tried again this many times; its last failure is kept but never branched or sharded.
    infra_retries: int = Field(2, ge=0, le=10)


def assists_on(config: "RunConfig") -> bool:
    """Whether the run's domains steer the model with their small-model assists."""
    if config.agent.assist != "auto":
        return config.agent.assist == "small-model"
    from synthesizers.engines.spec import parse_model_spec

    return parse_model_spec(config.engine.model).kind in ("embedded", "python")


class BranchingConfig(_Strict):
    enabled: bool = True
    k: int = 2  # re-rolls per failed trajectory


class SandboxConfig(_Strict):
    pool_size: int = 2  # boxes started up front, per image and worker
    # The pool grows to this under load (boxes queue for a free place beyond it; a host-wide cap
    # holds across workers); None: pool_size, a fixed pool.
    max_pool_size: int | None = Field(None, ge=1)
    # "runner": commands go to the box's persistent runner over its stdin (milliseconds);
    # "docker": a fresh `docker exec` per command (the fallback path).
    exec_via: Literal["runner", "docker"] = "runner"
    # "runc": Docker's default runtime; "runsc": gVisor, where the host registered it with Docker
    # (`python -m sandboxes.gvisor register`); a host without it fails the run at once, saying so.
    runtime: Literal["runc", "runsc"] = "runc"
    memory_mb: int = 512
    timeout_s: float = 10.0


class UnitsConfig(_Strict):
    tasks_per_unit: int = 8


class RayConfig(_Strict):
    address: str | None = None  # None: RAY_ADDRESS or a local ray.init()
    num_workers: int = 1  # rollout actors, each with its own engine
    num_gpus_per_worker: float = 0.0
    num_cpus_per_worker: float = 1.0


class DedupeConfig(_Strict):
    """Defaults: see ``pipelines/dedupe.py`` (Jaccard of 5-word shingles >= 0.85 is a near duplicate)."""

    exact: bool = True
    near: bool = True
    threshold: float = Field(0.85, gt=0, le=1)  # Jaccard of shingle sets for near duplicates
    num_perm: int = 128
    shingle_size: int = 5
    bands: int | None = None  # LSH bands; None: chosen from threshold and num_perm
    chunk_size: int = 1000  # documents per signature task


class DecontamSource(_Strict):
    path: str | None = None  # .txt (a text a line), .jsonl, .json, .parquet, .csv
    dataset: str | None = None  # a `datasets` hub name or a save_to_disk folder
    config: str | None = None
    split: str = "test"
    fields: list[str] = Field(default_factory=lambda: ["question"])  # text columns
    name: str | None = None  # label in the report (default: file or dataset name)

    @model_validator(mode="after")
    def _one_source(self) -> "DecontamSource":
        if (self.path is None) == (self.dataset is None):
            raise ValueError("give exactly one of path or dataset")
        return self


class DecontamConfig(_Strict):
    """Defaults: see ``pipelines/decontaminate.py`` (13-gram overlap with any benchmark text)."""

    enabled: bool = True
    ngram: int = Field(13, ge=1)
    min_words: int = 8  # shorter benchmark texts are ignored (too generic to match whole)
    min_hits: int = 1  # matching n-grams that make a trajectory contaminated
    check: list[Literal["task", "trajectory"]] = Field(default_factory=lambda: ["task", "trajectory"])
    # Shipped benchmarks (pipelines/benchmarks.py); None: the domain's field (math: mmath, champ;
    # code: humaneval; tool-use: bfcl, tau2), [] for none.
    benchmarks: list[str] | None = None
    sources: list[DecontamSource] = Field(default_factory=list)

    @field_validator("benchmarks")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        from pipelines.benchmarks import BENCHMARKS

        if value is not None and (bad := [b for b in value if b not in BENCHMARKS]):
            raise ValueError(f"unknown benchmark(s) {bad}; shipped: {sorted(BENCHMARKS)}")
        return value


class ShardsConfig(_Strict):
    masking: str = "assistant"
    include: Literal["passed", "all"] = "passed"
    rows_per_shard: int = 1000
    # Loss on the tokens the framework inserted into assistant turns (prefixes, forced
    # tags and answers, scripted calls): off, so only what the model chose is trained.
    train_on_inserted: bool = False
    # Drop rows tokenised from text (rewrites, imports, text-mode servers).
    require_token_exact: bool = False


class JudgeConfig(_Strict):
    model: str  # an engine spec, as engine.model (a served model's URL is the usual choice)
    options: dict[str, Any] = Field(default_factory=dict)
    max_tokens: int = 4


class VerifierConfig(_Strict):
    # An LLM judge for verifiers that take one (deep research); never the default.
    judge: JudgeConfig | None = None
    # Constructor keywords of the domain's verifiers, e.g. math's {arithmetic: flag}
    # (checked before a run starts: verifiers.registry.check_options).
    options: dict[str, Any] = Field(default_factory=dict)
    # A passing trajectory whose assistant turn loops fails (verifiers/repetition.py); None: the
    # domain's default (its ``repetition_check``, True but for code, whose lines repeat legitimately).
    repetition: bool | None = None


class RunConfig(_Strict):
    domain: str
    seed: int = 1234
    limit: int | None = None  # max seed tasks
    engine: EngineConfig = Field(default_factory=EngineConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    branching: BranchingConfig = Field(default_factory=BranchingConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    units: UnitsConfig = Field(default_factory=UnitsConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    dedupe: DedupeConfig = Field(default_factory=DedupeConfig)
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)
    # Seed tasks that are items of a checked benchmark stop the run unless this is true; then
    # those benchmarks are not checked (the run trains on them) and the manifest says so.
    allow_benchmark_seeds: bool = False
    shards: ShardsConfig = Field(default_factory=ShardsConfig)
    verifier: VerifierConfig = Field(default_factory=VerifierConfig)
    domain_options: dict[str, Any] = Field(default_factory=dict)
    # Modules imported (by the driver and every worker) before the domain is looked up: a domain
    # written outside synthesizers/domains registers itself and its verifiers on import
    # (``registry.register_domain``, ``verifiers.registry.register_verifier``).
    plugins: list[str] = Field(default_factory=list)


def load_config(path: str | Path, **overrides: Any) -> RunConfig:
    """Read and validate a YAML run config; ``overrides`` are dotted keys (``engine.model``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (pass an existing YAML file with --config)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise ConfigError(f"config {path} is not valid YAML{where}: fix the syntax") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a YAML mapping (key: value), not {type(raw).__name__}")
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {dotted}: {key} is not a section of the config (check the dotted key)")
        node[leaf] = value
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise ConfigError(f"config {path}: {loc}: {err['msg']} (fix that key in the YAML)") from None
    if config.shards.masking not in MASKING_POLICIES:
        raise ConfigError(
            f"config {path}: shards.masking {config.shards.masking!r} is unknown "
            f"(use one of {', '.join(MASKING_POLICIES)})"
        )
    return config


def _absolute(value: Any, base: Path) -> Any:
    """A relative, path-like string (one with a slash or a leading dot) that names something under
    ``base`` becomes absolute; anything else is returned as is (lists and mappings walked)."""
    if isinstance(value, str):
        if ("/" in value or value.startswith(".")) and not value.startswith(("/", "http://", "https://", "python:", "~")):
            candidate = base / value
            if candidate.exists():
                return str(candidate.resolve())
        return value
    if isinstance(value, list):
        return [_absolute(v, base) for v in value]
    if isinstance(value, dict):
        return {k: _absolute(v, base) for k, v in value.items()}
    return value


def with_absolute_paths(config: RunConfig, base: Path | None = None) -> RunConfig:
    """The config with the paths it names resolved against the driver's working directory, so
    workers on other nodes (which run in the shipped code's folder) read the same files."""
    base = Path(base or Path.cwd())
    raw = config.model_dump()
    for section, key in (("engine", "model"), ("engine", "tokenizer")):
        raw[section][key] = _absolute(raw[section][key], base)
    raw["domain_options"] = _absolute(raw["domain_options"], base)
    for source in raw["decontam"]["sources"]:
        source["path"] = _absolute(source["path"], base)
    return RunConfig.model_validate(raw)
