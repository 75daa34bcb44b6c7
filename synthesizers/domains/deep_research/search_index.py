"""BM25 over a ``Corpus`` with ``bm25s``, built once and cached on disk.

The index lives in ``.cache/deep_research/bm25-{corpus hash}-{params}/``; it
is written to a temporary folder and renamed into place, so a process killed
mid-build never leaves a half index that a later run would trust. Two
processes building at once both finish; the loser's rename fails harmlessly
and it loads the winner's copy.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import bm25s

from synthesizers.domains.deep_research.corpus import Corpus, Doc

REPO_ROOT = Path(__file__).resolve().parents[3]
CACHE_DIR = Path(os.environ.get("TRAJFORGE_CACHE", REPO_ROOT / ".cache")) / "deep_research"
K1, B = 1.5, 0.75
SNIPPET_CHARS = 240
_WORD = re.compile(r"\w\w+", re.UNICODE)


@dataclass(frozen=True)
class Hit:
    doc: Doc
    score: float
    snippet: str


def _tokens(texts: list[str]) -> list[list[str]]:
    # Plain lowercase word tokens with English stop words; no stemmer, so no extra
    # compiled dependency (PyStemmer) is needed.
    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)


def _doc_text(doc: Doc) -> str:
    # The title is repeated because lead summaries rarely restate it exactly.
    return f"{doc.title}\n{doc.title}\n{doc.text}"


class SearchIndex:
    def __init__(self, corpus: Corpus, retriever: bm25s.BM25, build_s: float, cached: bool):
        self.corpus = corpus
        self._retriever = retriever
        self._vocab = set(retriever.vocab_dict)
        self.build_s = build_s  # seconds to build (or load, when cached)
        self.cached = cached
        self._lock = threading.Lock()  # bm25s retrieval is not documented as thread-safe

    @classmethod
    def build(cls, corpus: Corpus, cache_dir: Path | None = CACHE_DIR) -> "SearchIndex":
        started = time.monotonic()
        params = hashlib.sha256(f"{bm25s.__version__}|{K1}|{B}|title2|en".encode()).hexdigest()[:8]
        target = cache_dir / f"bm25-{corpus.hash}-{params}" if cache_dir else None
        if target is not None and (target / "params.index.json").exists():
            retriever = bm25s.BM25.load(str(target), show_progress=False)
            return cls(corpus, retriever, time.monotonic() - started, cached=True)
        retriever = bm25s.BM25(k1=K1, b=B)
        retriever.index(_tokens([_doc_text(d) for d in corpus.docs]), show_progress=False)
        if target is not None:
            _save_atomically(retriever, target)
        return cls(corpus, retriever, time.monotonic() - started, cached=False)

    def search(self, query: str, k: int = 5) -> list[Hit]:
        k = max(1, min(int(k), len(self.corpus)))
        terms = [t for t in _tokens([query])[0] if t in self._vocab]
        if not terms:  # all stop words or unknown words: nothing can match
            return []
        with self._lock:
            ids, scores = self._retriever.retrieve([terms], k=k, show_progress=False, n_threads=1)
        hits = []
        for idx, score in zip(ids[0], scores[0]):
            if float(score) <= 0.0:
                continue
            doc = self.corpus.docs[int(idx)]
            hits.append(Hit(doc, float(score), snippet(doc.text, terms)))
        return hits


def snippet(text: str, terms: list[str], width: int = SNIPPET_CHARS) -> str:
    """The window of ``text`` around the first query term it contains (else its start)."""
    lower = text.lower()
    positions = [m.start() for t in terms for m in [re.search(rf"\b{re.escape(t)}\b", lower)] if m]
    start = max(0, min(positions) - width // 3) if positions else 0
    piece = text[start : start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(text) else "")


def _save_atomically(retriever: bm25s.BM25, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        retriever.save(str(tmp), show_progress=False)
        os.rename(tmp, target)  # atomic on one file system; fails if another process won
    except OSError:
        pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


_INDEXES: dict[str, SearchIndex] = {}
_INDEX_LOCK = threading.Lock()


def index_for(corpus: Corpus) -> SearchIndex:
    """One index per corpus per process."""
    with _INDEX_LOCK:
        if corpus.hash not in _INDEXES:
            _INDEXES[corpus.hash] = SearchIndex.build(corpus)
        return _INDEXES[corpus.hash]
