"""The agent's tools: ``search``, ``open``, ``find`` (in the opened page), ``answer``.

``search`` and ``open`` go to a ``SearchBackend`` (the local service by
default); ``find`` works on the page the rollout last opened, kept in the
per-rollout ``ToolContext.state``, so it needs nothing from the backend and
works the same with an external search API. ``answer`` only acknowledges: the
verifier reads the answer and citations from the call's arguments.
"""

from __future__ import annotations

import re
from typing import Any

from synthesizers.domains.base import ToolContext, ToolError, ToolOutput
from synthesizers.domains.deep_research.backends import BackendError, SearchBackend

MAX_K = 10
FIND_CONTEXT = 100
MAX_FIND_HITS = 5


def _schema(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def _args(arguments: Any, name: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(arguments, dict):
        raise ToolError(f"{name} takes a JSON object of arguments")
    extra = sorted(set(arguments) - allowed)
    if extra:
        raise ToolError(f"{name} takes only {sorted(allowed)}; unexpected: {', '.join(extra)}")
    return arguments


def _state(ctx: ToolContext) -> dict[str, Any]:
    if ctx.state is None:
        ctx.state = {}
    return ctx.state


def _text(args: dict[str, Any], key: str, problem: str) -> str:
    """The stripped, non-empty string argument ``key``; otherwise ``problem`` as a ToolError."""
    value = args.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ToolError(problem)
    return value.strip()


def _ask(what: str, call: Any, *args: Any) -> Any:
    """A backend call whose failure (service down, bad id, HTTP error) becomes one tool error line."""
    try:
        return call(*args)
    except BackendError as exc:
        raise ToolError(f"{what} failed: {exc}") from None


def _int(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ToolError(f"{name} must be an integer, not {value!r}") from None


class _BackendTool:
    """A tool that asks the search backend (nothing here needs a sandbox)."""

    needs_sandbox = False

    def __init__(self, backend: SearchBackend):
        self.backend = backend


class SearchTool(_BackendTool):
    """``best_last`` lists the results worst first, so the best match is the one next to
    the model's next turn: SmolLM2-135M mostly opens the *last* listed result, whatever its
    rank (the best-first "lost in the middle" fix, turned around for a model that copies what
    it read last; measured: see docs/small-model-assists.md)."""

    name = "search"

    def __init__(self, backend: SearchBackend, best_last: bool = False):
        super().__init__(backend)
        self.best_last = best_last
        order = "ranked results, the best match last" if best_last else "ranked results, the best match first"
        self.schema = _schema(
            "search",
            f"Search the document collection. Returns {order}: [doc_id] title and a snippet.",
            {
                "query": {"type": "string", "description": "Keywords to search for."},
                "k": {"type": "integer", "description": f"How many results (1-{MAX_K}, default 5)."},
            },
            ["query"],
        )

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        """Fields: ``query``; ``hits``, in the order shown: ``doc_id``, ``title``, ``snippet_span``
        (where the snippet sits in the text)."""
        args = _args(arguments, "search", {"query", "k"})
        query = _text(args, "query", 'search needs a non-empty "query" string')
        k = min(MAX_K, max(1, _int(args.get("k"), "k", 5)))
        results = _ask("search", self.backend.search, query, k)
        if not results:
            return ToolOutput(f"No results for {query!r}. Try other keywords.", {"query": query, "hits": []})
        text, hits = "", []
        for r in reversed(results) if self.best_last else results:
            head = f"[{r['doc_id']}] {r.get('title', '')}\n    "
            start = len(text) + (1 if text else 0) + len(head)
            text += ("\n" if text else "") + head + str(r.get("snippet", ""))
            hits.append({"doc_id": str(r["doc_id"]), "title": str(r.get("title", "")), "snippet_span": [start, len(text)]})
        return ToolOutput(text, {"query": query, "hits": hits})


class OpenTool(_BackendTool):
    name = "open"
    schema = _schema(
        "open",
        "Open a document by its doc_id and read a page of its text (use offset for later pages).",
        {
            "doc_id": {"type": "string", "description": "A doc_id from the search results, e.g. d00012."},
            "offset": {"type": "integer", "description": "Character offset to start reading at (default 0)."},
        },
        ["doc_id"],
    )

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        """Fields: ``doc_id``, ``title``, ``offset``, ``next_offset``, ``total_chars``; ``text_span``:
        where the page's text sits in the observation."""
        args = _args(arguments, "open", {"doc_id", "offset"})
        doc_id = _text(args, "doc_id", 'open needs a "doc_id" string from the search results')
        offset = max(0, _int(args.get("offset"), "offset", 0))
        page = _ask("open", self.backend.open, doc_id.strip("[]"), offset)
        _state(ctx)["page"] = page
        end = page["offset"] + len(page["text"])
        head = f"[{page['doc_id']}] {page['title']} (characters {page['offset']}-{end} of {page['total_chars']})"
        more = f"\n(more: open with offset={page['next_offset']})" if page.get("next_offset") else ""
        fields = {"doc_id": str(page["doc_id"]), "title": str(page["title"]), "offset": page["offset"],
                  "next_offset": page.get("next_offset"), "total_chars": page["total_chars"],
                  "text_span": [len(head) + 1, len(head) + 1 + len(page["text"])]}
        return ToolOutput(f"{head}\n{page['text']}{more}", fields)


class FindTool:
    name = "find"
    needs_sandbox = False
    schema = _schema(
        "find",
        "Find a word or phrase in the page opened last; returns each match with its surrounding text.",
        {"pattern": {"type": "string", "description": "Text to look for (case-insensitive)."}},
        ["pattern"],
    )

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        args = _args(arguments, "find", {"pattern"})
        pattern = _text(args, "pattern", 'find needs a non-empty "pattern" string')
        page = _state(ctx).get("page")
        if not page:
            raise ToolError("no page is open: call open with a doc_id first")
        text = page["text"]
        hits = [m.start() for m in re.finditer(re.escape(pattern), text, re.IGNORECASE)]
        if not hits:
            return f"{pattern!r} does not occur in [{page['doc_id']}] (this page)."
        out = [f"{len(hits)} match(es) for {pattern!r} in [{page['doc_id']}] {page['title']}:"]
        for pos in hits[:MAX_FIND_HITS]:
            start, end = max(0, pos - FIND_CONTEXT), min(len(text), pos + len(pattern) + FIND_CONTEXT)
            out.append(f"- @{page['offset'] + pos}: …{text[start:end]}…")
        return "\n".join(out)


class AnswerTool:
    name = "answer"
    needs_sandbox = False
    schema = _schema(
        "answer",
        "Give the final answer (short: a name, number or phrase) and cite the doc_ids it is based on.",
        {
            "answer": {"type": "string", "description": "The short final answer."},
            "citations": {"type": "array", "items": {"type": "string"}, "description": "doc_ids of the evidence."},
        },
        ["answer", "citations"],
    )

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        args = _args(arguments, "answer", {"answer", "citations"})
        _text(args, "answer", 'answer needs a non-empty "answer" string')
        citations = args.get("citations")
        if not isinstance(citations, list) or not all(isinstance(c, str) for c in citations):
            raise ToolError('answer needs "citations": a list of doc_id strings, e.g. ["d00012"]')
        return "Answer recorded."


def make_tools(backend: SearchBackend, *, best_last: bool = False) -> list[Any]:
    return [SearchTool(backend, best_last), OpenTool(backend), FindTool(), AnswerTool()]
