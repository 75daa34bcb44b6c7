"""The deep-research domain plug-in: cached multi-hop questions over a local
corpus, the search/open/find/answer tools, and the final/critical-step rules.

Options (``domain_options``, all optional):
  corpus:    corpus spec (``corpus.py``; default the ovos Wikipedia summaries)
  search:    search spec (``backends.py``; default the node-local service over ``corpus``)
  questions: {count: 64, seed: 0, hops: [2, 3], reverse_fraction: 0.25, leak_k: 5,
              writer: template | {engine: embedded | URL | python:mod:Class,
                                  options: {...}, temperature: 0.7, max_tokens: 96}}
  f1_threshold: 0.8         (verifier pass mark on token F1)
  require_retrieved: true   (a cited answer document must have appeared in a tool result)
                            (these two reach the verifier through ``verifier_options``)
  forcing: true             (small-model help, see ``controllers.py``: every turn is one guided
                             call; search first, answer on the last turn; doc ids only from
                             this rollout's results)
  results_order: best_first (default) | best_last  (search results listed best match last,
                             for a small model that copies the last thing it read; ``tools.py``)

Where the search service runs: the tools start it lazily, once per node, on
their first call (``backends.ensure_local_service``), inside whatever process
runs rollouts (the Ray rollout actor); it stops when that process exits.
"""

from __future__ import annotations

import random
import re
from typing import Annotated, Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas import Message, Task
from synthesizers.controller import PolicyController
from synthesizers.domains.base import Domain, DomainOptions, Tool
from synthesizers.domains.deep_research.backends import backend_from_spec
from synthesizers.domains.deep_research.controllers import ForcedCalls
from synthesizers.domains.deep_research.prompts import SYSTEM_PROMPT
from synthesizers.domains.deep_research.tools import make_tools

NAME = "deep-research"
DEFAULT_COUNT = 64
_TEXT_FINAL = re.compile(r"(?im)^\s*final answer\s*:")


class QuestionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    count: int = DEFAULT_COUNT
    seed: int = 0
    hops: Annotated[list[Literal[2, 3]], Field(min_length=1)] = [2, 3]
    reverse_fraction: float = 0.25
    leak_k: int = 5
    writer: Literal["template"] | dict[str, Any] = "template"


class DeepResearchOptions(DomainOptions):
    """See the module's docstring."""

    corpus: dict[str, Any] | None = None
    search: dict[str, Any] | None = None
    questions: QuestionOptions = QuestionOptions()
    f1_threshold: float = Field(0.8, ge=0, le=1)
    require_retrieved: bool = True
    forcing: bool = True
    results_order: Literal["best_first", "best_last"] = "best_first"

    @property
    def corpus_spec(self) -> dict[str, Any]:
        return dict(self.corpus or {"source": "ovos"})

    @property
    def search_spec(self) -> dict[str, Any]:
        search = dict(self.search or {"backend": "local"})
        if search.get("backend", "local") == "local":
            search["corpus"] = self.corpus_spec
        return search


class DeepResearchDomain(Domain):
    name = NAME
    Options = DeepResearchOptions
    needs_sandbox = False
    assists = ("research-forcing",)  # each turn one guided search/open/answer call, citations narrowed

    def __init__(self, options: DeepResearchOptions | dict[str, Any] | None = None):
        super().__init__(options)
        self.last_construction_stats: dict[str, int] = {}

    def seed_tasks(self, *, limit: int | None, seed: int) -> Iterator[Task]:
        rows = self._question_set(self.options.corpus, self.options.questions.model_dump())
        order = list(range(len(rows)))
        random.Random(f"deep-research:{seed}").shuffle(order)  # the run seed picks the order, not the set
        corpus_spec = self.options.corpus_spec
        checker = _chain_checker(corpus_spec)
        return (self._checked(self._task(rows[i], corpus_spec), rows[i], checker) for i in order[:limit])

    @staticmethod
    def _checked(task: Task, row: dict[str, Any], checker: Any) -> Task:
        """Seed-time QA (``soundness.py``): an unsound question is marked; the run drops and counts it."""
        task.payload["qa"] = {"unsound": checker.check(row), "noop_passes": False}
        return task

    def _question_set(self, corpus_spec: dict[str, Any] | None, qopts: dict[str, Any]) -> list[dict[str, Any]]:
        from synthesizers.domains.deep_research import construction
        from synthesizers.domains.deep_research.corpus import load_corpus
        from synthesizers.domains.deep_research.search_index import index_for

        corpus = load_corpus(corpus_spec)
        params = {
            "count": int(qopts.get("count", DEFAULT_COUNT)),
            "seed": int(qopts.get("seed", 0)),
            "hops": sorted(int(h) for h in qopts.get("hops", [2, 3])),
            "reverse_fraction": float(qopts.get("reverse_fraction", 0.25)),
            "leak_k": int(qopts.get("leak_k", 5)),
            "writer": qopts.get("writer", "template"),
        }
        path = construction.cache_path(corpus, params)
        if path.exists():
            rows, self.last_construction_stats = construction.read_rows(path)
            return rows
        writer, engine = _writer(params["writer"])
        try:
            rows, stats = construction.run_sync(
                construction.construct(
                    corpus,
                    index_for(corpus),
                    count=params["count"],
                    seed=params["seed"],
                    hops=params["hops"],
                    reverse_fraction=params["reverse_fraction"],
                    writer=writer,
                    leak_k=params["leak_k"],
                )
            )
        finally:
            if engine is not None:
                construction.run_sync(engine.close())
        construction.write_rows(path, rows, stats)
        self.last_construction_stats = stats
        return rows

    @staticmethod
    def _task(row: dict[str, Any], corpus_spec: dict[str, Any]) -> Task:
        payload = {
            "question": row["question"],
            "answer": row["answer"],
            "aliases": list(row["aliases"]),
            "evidence_doc_ids": list(row["evidence_doc_ids"]),
            "answer_doc_ids": list(row["answer_doc_ids"]),
            "hops": row["hops"],
            "construction": row["construction"],
            "answer_type": row["answer_type"],
            "writer": row["writer"],
        }
        source = f"{corpus_spec.get('source', 'ovos')}:{row['construction']}:{row['writer']}"
        return Task(id=row["id"], domain=NAME, kind="default", source=source, payload=payload)

    def verifier_options(self) -> dict[str, Any]:
        """The pass mark and the retrieval rule (``verifiers.deep_research``'s keywords)."""
        return {"threshold": self.options.f1_threshold, "require_retrieved": self.options.require_retrieved}

    def initial_messages(self, task: Task) -> list[Message]:
        return [Message(role="system", content=SYSTEM_PROMPT), Message(role="user", content=task.payload["question"])]

    def controller(self, task: Task) -> PolicyController | None:
        """With ``forcing`` (default on): every turn one guided call (``controllers.ForcedCalls``)."""
        return PolicyController(ForcedCalls([t.schema for t in self.tools(task)])) if self.options.forcing else None

    def tools(self, task: Task) -> list[Tool]:
        best_last = self.options.results_order == "best_last"
        return make_tools(backend_from_spec(self.options.search_spec), best_last=best_last)

    def is_final(self, message: Message) -> bool:
        """An ``answer`` call ends the rollout; so does a plain-text "Final answer:" line."""
        if message.role != "assistant":
            return False
        if any(c.function.name == "answer" for c in message.tool_calls):
            return True
        return not message.tool_calls and bool(_TEXT_FINAL.search(message.content))

    def first_critical_step(self, messages: list[Message]) -> int | None:
        """The first assistant message that calls ``search``; without one, the first
        assistant message (a failure that never searched is re-rolled from the start)."""
        for index, message in enumerate(messages):
            if message.role == "assistant" and any(c.function.name == "search" for c in message.tool_calls):
                return index
        return super().first_critical_step(messages)


def _chain_checker(corpus_spec: dict[str, Any]) -> Any:
    """Soundness of questions against the corpus and the BM25 index the local search service
    serves (both cached: loading them again here costs well under a second)."""
    from synthesizers.domains.deep_research.corpus import load_corpus
    from synthesizers.domains.deep_research.search_index import index_for
    from synthesizers.domains.deep_research.soundness import ChainChecker

    corpus = load_corpus(corpus_spec)
    return ChainChecker(corpus, index_for(corpus))


def _writer(spec: Any):
    """(writer, engine-to-close) for a ``questions.writer`` option."""
    if spec in (None, "template"):
        return None, None
    if not isinstance(spec, dict) or "engine" not in spec:
        raise ValueError("deep-research questions.writer must be 'template' or {engine: ..., ...}")
    try:
        from synthesizers.engines.factory import make_engine
    except ImportError as exc:
        raise ValueError(f"deep-research questions.writer needs the engine factory: {exc}") from None
    from synthesizers.domains.deep_research.construction import engine_writer

    engine = make_engine(spec["engine"], **dict(spec.get("options") or {}))
    return engine_writer(engine, float(spec.get("temperature", 0.7)), int(spec.get("max_tokens", 96))), engine
