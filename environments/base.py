"""The generic stateful tool environment: a new environment is a plug-in.

An ``Environment`` owns a state, a list of ``EnvTool`` (an OpenAI JSON schema
plus a Python implementation), ``reset`` and ``state_hash``. Calls go through
``Environment.call``, which checks the arguments against the schema first, so
every implementation can trust its inputs and every bad call becomes an
``EnvError`` (an observation the model can recover from), never a crash.

Environments are deterministic: the same calls on the same initial state give
the same state hash. That is what lets the verifier *replay* a trajectory on a
fresh environment instead of trusting the rollout process.

``ENVIRONMENTS`` maps an environment name to "module:Class"; a task payload
names its environment (``env``) and carries whatever the class needs to build
its initial state (``make_env(payload)``).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass
from typing import Any, Callable

from schemas import Message

ENVIRONMENTS: dict[str, str] = {
    "tau2-airline": "environments.tau2_airline:AirlineEnv",
    "tau2-retail": "environments.tau2_retail:RetailEnv",
    "tau2-telecom": "environments.tau2_telecom:TelecomEnv",
    "files": "environments.files:FilesEnv",
}
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "array": (list,), "object": (dict,), "null": (type(None),),
}


class EnvError(Exception):
    """A tool call the environment refuses (bad arguments, a rule of the domain); the
    message is written for the model, which sees it as the call's observation. Its own
    class, not the agent loop's ``ToolError``: this room imports nothing but schemas, and
    the synthesizers' adapter turns one into the other."""


@dataclass(frozen=True)
class EnvTool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments object
    fn: Callable[..., Any]  # fn(env, **arguments) -> JSON-able result or str
    writes: bool = False  # state-changing: the first one is the critical action

    @property
    def schema(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


def method_tool(name: str, description: str, parameters: dict[str, Any], writes: bool = False) -> EnvTool:
    """A tool that calls the environment's method of the same name (how every environment
    here writes its tools: the method holds the logic, the tool list only the schema)."""
    return EnvTool(name, description, parameters, lambda env, **kw: getattr(env, name)(**kw), writes)


def obj(required: list[str] | None = None, **props: dict[str, Any]) -> dict[str, Any]:
    """A closed object schema (no extra arguments); every property required unless listed."""
    return {"type": "object", "properties": props, "required": list(props) if required is None else required,
            "additionalProperties": False}


def check_args(schema: dict[str, Any], value: Any, where: str = "arguments") -> None:
    """A small JSON-schema check (type, enum, properties, required, items, extras)."""
    kind = schema.get("type")
    if kind is not None:
        ok = isinstance(value, _JSON_TYPES[kind]) and not (kind in ("integer", "number") and isinstance(value, bool))
        if kind == "integer" and isinstance(value, float) and value.is_integer():
            ok = True  # 2.0 for 2: models write numbers loosely
        if not ok:
            raise EnvError(f"{where} must be of type {kind}, got {type(value).__name__} {json.dumps(value)[:60]}")
    if "enum" in schema and value not in schema["enum"]:
        raise EnvError(f"{where} must be one of {schema['enum']}, got {json.dumps(value)[:60]}")
    if isinstance(value, dict) and kind == "object":
        props = schema.get("properties", {})
        missing = [k for k in schema.get("required", []) if k not in value]
        if missing:
            raise EnvError(f"{where} is missing required field(s): {', '.join(missing)}")
        extra = sorted(set(value) - set(props))
        if extra and schema.get("additionalProperties") is False:
            raise EnvError(f"{where} has unexpected field(s): {', '.join(extra)}; allowed: {', '.join(props)}")
        for key, sub in props.items():
            if key in value:
                check_args(sub, value[key], f"{where}.{key}" if where != "arguments" else key)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            check_args(schema["items"], item, f"{where}[{i}]")


class Environment:
    """Base class: subclasses set ``name``, build ``self.state`` in ``reset`` and list tools."""

    name = "env"

    def __init__(self, spec: dict[str, Any] | None = None):
        self.spec = dict(spec or {})
        self.reset()

    def reset(self) -> None:
        raise NotImplementedError

    tool_list: list[EnvTool] = []  # subclasses set it (the tools are the same for every instance)

    def tools(self) -> list[EnvTool]:
        return self.tool_list

    def snapshot(self) -> Any:
        """The JSON-able state the hash covers (subclasses may hash less than everything)."""
        return self.state

    def state_hash(self) -> str:
        text = json.dumps(self.snapshot(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def tool(self, name: str) -> EnvTool:
        for tool in self.tools():
            if tool.name == name:
                return tool
        raise EnvError(f"unknown tool {name!r}; available: {', '.join(t.name for t in self.tools())}")

    def call(self, name: str, arguments: Any) -> str:
        tool = self.tool(name)
        if not isinstance(arguments, dict):
            raise EnvError(f"{name}: arguments must be a JSON object")
        check_args(tool.parameters, arguments)
        result = tool.fn(self, **arguments)
        return result if isinstance(result, str) else json.dumps(result, sort_keys=True)

    def apply(self, actions: list[dict[str, Any]], *, strict: bool = False) -> list[str]:
        """Run ``[{"name", "arguments"}]`` in order. As in τ-bench, an expected action may
        fail on purpose (a wrong id the user gave): its error is the observation and the
        state is unchanged, exactly as when the agent made that call. ``strict`` raises."""
        out = []
        for action in actions:
            try:
                out.append(self.call(action["name"], action.get("arguments") or {}))
            except Exception as exc:  # the agent loop turns any tool exception into an observation too
                if strict:
                    raise
                out.append(f"Error: {exc}")
        return out

    def write_tool_names(self) -> set[str]:
        return {t.name for t in self.tools() if t.writes}


def env_class(name: str) -> type[Environment]:
    target = ENVIRONMENTS.get(name)
    if target is None:
        raise ValueError(f"unknown tool-use environment {name!r} (known: {', '.join(ENVIRONMENTS)})")
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def make_env(payload: dict[str, Any]) -> Environment:
    """A fresh environment for a task payload ``{"env": NAME, "env_spec": {...}}``."""
    return env_class(payload["env"])(payload.get("env_spec"))


def replay(env: Environment, messages: list[Message]) -> int:
    """Re-run every tool call of the assistant turns on ``env``, in order, as the agent
    loop ran them; calls that failed there fail here too and change nothing. Returns
    how many calls succeeded."""
    ok = 0
    for message in messages:
        if message.role != "assistant":
            continue
        for call in message.tool_calls:
            try:
                env.call(call.function.name, call.parsed_arguments())
                ok += 1
            except Exception:  # failed in the rollout as well (same code, same state)
                continue
    return ok

