"""Building the question set: candidates -> LLM writer (or template) -> rules -> cache.

The LLM writes each question from the candidate's documents; every question
(LLM-written or templated) must pass ``check_question``. When the model's
question is rejected (tiny models often leak the answer or write nonsense),
the candidate's templated question is tried instead, so construction always
yields a usable set. The result is cached as Parquet under
``.cache/deep_research/`` keyed by the corpus hash and every construction
parameter, and written atomically: construction runs once, runs reuse it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Awaitable, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.atomic import atomic_write
from synthesizers.domains.deep_research.corpus import Corpus
from synthesizers.domains.deep_research.questions import (
    Candidate,
    LinkGraph,
    check_question,
    forward_candidates,
    reverse_candidates,
)
from synthesizers.domains.deep_research.search_index import CACHE_DIR, SearchIndex

VERSION = 2  # bump when construction changes, so old caches are not reused
Writer = Callable[[Candidate, int], Awaitable[str | None]]

WRITER_SYSTEM = "You write one quiz question for a research assistant. Reply with the question only."


def writer_prompt(cand: Candidate) -> str:
    docs = "\n".join(f"[{i + 1}] {d.title}: {d.text[:500]}" for i, d in enumerate(cand.docs))
    if cand.construction == "forward":
        hidden = ", ".join(f'"{d.title}"' for d in cand.docs[1:])
        rule = (
            f'The question must name "{cand.docs[0].title}", must NOT name {hidden} (describe instead), '
            "so that a reader has to go through every document in order."
        )
    else:
        rule = "The question must need all the documents above to be answered with confidence."
    return (
        f"Documents:\n{docs}\n\nWrite ONE question whose answer is \"{cand.answer}\". {rule} "
        f"The question must not contain the answer. Example of the style: {cand.template}"
    )


def clean_question(text: str) -> str | None:
    """The first line that is a question, without labels or quotes."""
    for line in (text or "").splitlines():
        line = line.strip().strip('"“”*').strip()
        for label in ("question:", "q:"):
            if line.lower().startswith(label):
                line = line[len(label) :].strip().strip('"“”')
        if "?" in line:
            return line[: line.rindex("?") + 1].strip()
    return None


def engine_writer(engine: Any, temperature: float = 0.7, max_tokens: int = 96) -> Writer:
    """A writer backed by any ``LLMEngine`` (``await engine.chat(...)``)."""
    from schemas import Message
    from synthesizers.engines.base import SamplingParams

    async def write(cand: Candidate, seed: int) -> str | None:
        messages = [Message(role="system", content=WRITER_SYSTEM), Message(role="user", content=writer_prompt(cand))]
        params = SamplingParams(temperature=temperature, top_p=0.95, max_tokens=max_tokens, seed=seed)
        completion = await engine.chat(messages, params=params)
        return None if completion.error else clean_question(completion.text)

    return write


def candidate_stream(graph: LinkGraph, seed: int, hops: list[int], reverse_fraction: float):
    rng = random.Random(seed)
    while True:
        if rng.random() < reverse_fraction:
            cand = reverse_candidates(graph, rng)
        else:
            cand = forward_candidates(graph, rng, rng.choice(hops))
        if cand is not None:
            yield cand


def row(cand: Candidate, question: str, writer: str) -> dict[str, Any]:
    evidence = [d.doc_id for d in cand.docs]
    ident = hashlib.sha256(json.dumps([question, cand.answer, evidence]).encode()).hexdigest()[:16]
    return {
        "id": f"dr-{ident}",
        "question": question,
        "answer": cand.answer,
        "aliases": list(cand.aliases),
        "evidence_doc_ids": evidence,
        "answer_doc_ids": list(cand.answer_doc_ids),
        "hops": json.dumps([{"doc_id": d.doc_id, "title": d.title} for d in cand.docs]),
        "construction": cand.construction,
        "answer_type": cand.answer_type,
        "writer": writer,
    }


async def construct(
    corpus: Corpus,
    index: SearchIndex,
    *,
    count: int,
    seed: int = 0,
    hops: list[int] | None = None,
    reverse_fraction: float = 0.25,
    writer: Writer | None = None,
    leak_k: int = 5,
    batch: int = 16,
    max_candidates: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Up to ``count`` accepted questions and a tally of what happened to candidates."""
    graph = LinkGraph(corpus)
    stream = candidate_stream(graph, seed, hops or [2, 3], reverse_fraction)
    rows, seen, stats = [], set(), Counter()
    limit = max_candidates or count * 20
    tried = 0
    while len(rows) < count and tried < limit:
        cands = [next(stream) for _ in range(min(batch, limit - tried))]
        written: list[str | None] = [None] * len(cands)
        if writer is not None:  # the batch is written concurrently: the engine batches it
            results = await asyncio.gather(*(writer(c, seed * 100_003 + tried + i) for i, c in enumerate(cands)), return_exceptions=True)
            written = [r if isinstance(r, str) else None for r in results]
        for cand, text in zip(cands, written):
            tried += 1
            key = (cand.answer, tuple(d.doc_id for d in cand.docs))
            if key in seen or len(rows) >= count:
                stats["duplicate_or_surplus"] += 1
                continue
            if text is not None:
                reason = check_question(text, cand, index, leak_k)
                if reason is None:
                    rows.append(row(cand, text, "llm"))
                    seen.add(key)
                    stats["llm_accepted"] += 1
                    continue
                stats["llm_rejected: " + reason.split(" (")[0]] += 1
            reason = check_question(cand.template, cand, index, leak_k)
            if reason is None:
                rows.append(row(cand, cand.template, "template"))
                seen.add(key)
                stats["template_accepted"] += 1
            else:
                stats["template_rejected: " + reason.split(" (")[0]] += 1
    stats["candidates"] = tried
    return rows, dict(stats)


def cache_path(corpus: Corpus, params: dict[str, Any], cache_dir: Path | None = None) -> Path:
    cache_dir = cache_dir or CACHE_DIR
    key = hashlib.sha256(json.dumps({"v": VERSION, **params}, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir / f"questions-{corpus.hash}-{key}.parquet"


def write_rows(path: Path, rows: list[dict[str, Any]], stats: dict[str, int]) -> None:
    table = pa.Table.from_pylist(rows) if rows else pa.table({"id": pa.array([], pa.string())})
    table = table.replace_schema_metadata({"trajforge.construction_stats": json.dumps(stats)})
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))  # readers see the old file or the whole new one


def read_rows(path: Path) -> tuple[list[dict[str, Any]], dict[str, int]]:
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    stats = json.loads(meta.get(b"trajforge.construction_stats", b"{}"))
    return table.to_pylist(), stats


def run_sync(coro: Awaitable[Any]) -> Any:
    """Run a coroutine from sync code, also when the caller already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
