"""Tool-call forcing for small models: the deep-research domain's turn policy.

A 135M model asked a research question answers from memory, in prose, or
copies the worked example's doc ids. With ``forcing`` on, every turn is one
guided call (``guided_calls.required_call``: the chat template's exact format,
arguments valid against the tool's schema) and the choices are narrowed to
what a rollout can sensibly do at that point:

- before any search: only ``search``;
- on the last turn (or when little room is left): only ``answer``, so a
  rollout ends with an answer instead of running out of turns;
- no tool twice in a row (the model otherwise repeats one search until its
  turns run out): a search is followed by ``open`` or ``answer``;
- ``open`` takes only doc ids that this rollout's latest search listed and
  that it has not opened yet (a made-up id can never be evidence anyway; the
  model otherwise reopened one document, or opened the worked example's ids);
- a later ``search`` never repeats an earlier query: while a title the
  question quotes is unsearched, its query is such a title (the documents the
  question names come first), then one of the question's names or a name read
  so far (the next hop) (the model repeated its first query up to five times);
- the answer cites one document first and then names something read *in that
  document* (``candidates_by_doc``) -- the verifier's evidence rule, stated as
  a grammar: an ``anyOf`` with one branch per document read. The answer is of
  the kind the question asks for (a year for "which year"/"when", otherwise a
  name), never one the question itself names, never the cited document's own
  title, never a capitalised word that only opens sentences ("It", "Later").
  For a question about what the summaries of "A" and "B" both mention: once A
  or B has been seen, one of them is cited, and the name is one both mention
  when both were seen (``_shared``). Before anything answer-like is read, a
  short free string citing seen doc ids.

Why the per-document answer: from a flat list of every name read (about forty)
the small model picks at chance; the cited document's names of the asked kind
leave a few choices (one to eight). What was measured, with and without these
rules: see docs/small-model-assists.md (research-forcing).

The model still chooses the tool, the query, the document, the answer and its
citation, wherever there is a choice: a turn narrowed to one possible call (the
answer when one document offers one answer) is written by the framework
(``required_call`` makes it ``forced_text``), recorded as inserted, not as the
model's. The verifier is the same with forcing on or off.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from typing import Any

from schemas import Message
from synthesizers.controller import TurnInfo
from synthesizers.guided_calls import required_call

ANSWER_MAX_CHARS = 60
MAX_CITATIONS = 3
# Room a final answer call needs (tokens): below it, the turn must be the answer.
ANSWER_ROOM = 96
MAX_PER_DOC = 24
MAX_DOCS = 16
# A run of capitalised words, joined by the small words of names ("Republic of the Congo").
_NAME = re.compile(r"[A-Z][\w'’-]*(?: +(?:(?:of|the|and|de|del|da|du|la|le|von|van|al|bin) +)*[A-Z][\w'’-]*)*")
_YEAR = re.compile(r"\b(?:1[0-9]{3}|20[0-9]{2})\b")
_ASKS_YEAR = re.compile(r"\b(?:year|when)\b", re.IGNORECASE)
_ASKS_SHARED = re.compile(r"\bboth\b", re.IGNORECASE)
_QUOTED = re.compile(r'"([^"]{2,80})"')
_QUESTION_WORDS = {"Which", "What", "Who", "When", "Where", "How", "In", "The"}
MAX_QUERIES = 48
_JOINERS = re.compile(r"^(?:(?:of|the|and|de|del|da|du|la|le|von|van|al|bin) +)*")
_NEXT = {"search": ("open", "answer"), "open": ("search", "find", "answer"), "find": ("search", "open", "answer")}


def has_searched(messages: list[Message]) -> bool:
    return any(m.role == "assistant" and any(c.function.name == "search" for c in m.tool_calls) for m in messages)


def _question(messages: list[Message]) -> str:
    return next((m.content for m in messages if m.role == "user"), "")


def doc_texts(messages: list[Message]) -> dict[str, tuple[str, str]]:
    """doc_id -> (title, everything read of it) from this rollout's ``search`` snippets and
    ``open`` pages, in first-seen order, located by the calls' results (``SearchTool``,
    ``OpenTool`` fields), not by the wording of the observations."""
    found: dict[str, tuple[str, str]] = {}
    for message in messages:
        result = message.result
        if message.role != "tool" or result is None or not result.ok:
            continue
        if message.name == "search":
            pieces = [(h.get("doc_id"), h.get("title"), h.get("snippet_span")) for h in result.fields.get("hits") or []]
        elif message.name == "open":
            pieces = [(result.fields.get("doc_id"), result.fields.get("title"), result.fields.get("text_span"))]
        else:
            continue
        for doc_id, title, span in pieces:
            if not isinstance(doc_id, str):
                continue
            read = message.content[span[0]:span[1]] if isinstance(span, list) and len(span) == 2 else ""
            known_title, text = found.get(doc_id, (str(title or ""), ""))
            found[doc_id] = (known_title, text + "\n" + read)
    return found


def seen_doc_ids(messages: list[Message]) -> list[str]:
    """Doc ids shown by a ``search``/``open`` result, first-seen order."""
    return list(doc_texts(messages))


def _spans(text: str, want_year: bool) -> list[str]:
    """Years, or names, in order of appearance. A name is a run of capitalised words ("A and B"
    also gives A and B; no possessive 's; a leading "The" optional). Capitals that only open
    sentences are not names: a one-word "name" seen only at a sentence start ("It", "They",
    "Later") is dropped, and a run that opens a sentence also yields itself without its
    first word ("Like Saturn" -> "Saturn")."""
    if want_year:
        return list(dict.fromkeys(_YEAR.findall(text)))
    found: dict[str, None] = {}
    mid_sentence: set[str] = set()
    openers: set[str] = set()  # one-word runs seen at a sentence start
    for match in _NAME.finditer(text):
        name = match.group()
        before = text[max(0, match.start() - 3):match.start()].rstrip(" \t\"'“‘(")
        at_start = not before or before[-1] in ".!?:;\n…"
        variants = [name, *name.split(" and "), name.removeprefix("The ")]
        if at_start and " " in name:
            variants.append(_JOINERS.sub("", name.split(" ", 1)[1]))
        elif at_start:
            openers.add(name)
        else:
            mid_sentence.add(name)
        for variant in variants:
            found[re.sub(r"['’]s?$", "", _JOINERS.sub("", variant.strip()))] = None
    return [n for n in found if n not in openers or n in mid_sentence]


def candidates_by_doc(messages: list[Message]) -> dict[str, list[str]]:
    """doc_id -> the answers that document offers for this rollout's question (see the
    module docstring); documents that offer none are left out."""
    question = _question(messages)
    asked = question.lower()
    want_year = bool(_ASKS_YEAR.search(question))
    docs = doc_texts(messages)
    by_doc = {doc_id: [s for s in _spans(text, want_year)
                       if 1 < len(s) <= ANSWER_MAX_CHARS and s.lower() not in asked and s != title]
              for doc_id, (title, text) in docs.items()}
    if _ASKS_SHARED.search(question):
        by_doc = _shared(by_doc, {d: title for d, (title, _) in docs.items()}, question)
    return {d: spans[:MAX_PER_DOC] for d, spans in by_doc.items() if spans}


def _shared(by_doc: dict[str, list[str]], titles: dict[str, str], question: str) -> dict[str, list[str]]:
    """Answers to 'which X do the summaries of "A" and "B" both mention': once A's or B's
    document has been seen, only those may be cited, with a name both mention when both are
    seen (else any name of the one seen); before, a name that two documents read mention."""
    quoted = set(_QUOTED.findall(question))
    named = [d for d, title in titles.items() if title in quoted]
    if named:
        common = set.intersection(*(set(by_doc[d]) for d in named))
        return {d: [s for s in by_doc[d] if s in common] or by_doc[d] for d in named}
    count = Counter(s for spans in by_doc.values() for s in set(spans))
    shared = {d: [s for s in spans if count[s] >= 2] for d, spans in by_doc.items()}
    return shared if any(shared.values()) else by_doc


def _answer_parameters(by_doc: dict[str, list[str]], doc_ids: list[str]) -> dict[str, Any]:
    """The answer's arguments: cite one document, then an answer that document offers; or,
    when none offers one, a short free answer citing documents seen."""
    if by_doc:
        branches = [{
            "type": "object",
            "properties": {
                "citations": {"type": "array", "items": {"type": "string", "enum": [doc_id]}, "minItems": 1, "maxItems": 1},
                "answer": {"type": "string", "enum": spans},
            },
            "required": ["citations", "answer"],
            "additionalProperties": False,
        } for doc_id, spans in list(by_doc.items())[-MAX_DOCS:]]
        return {"anyOf": branches}
    citations: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
    if doc_ids:
        citations = {"type": "array", "items": {"type": "string", "enum": doc_ids}, "minItems": 1, "maxItems": MAX_CITATIONS}
    return {"type": "object", "required": ["citations", "answer"], "additionalProperties": False,
            "properties": {"citations": citations,
                           "answer": {"type": "string", "minLength": 1, "maxLength": ANSWER_MAX_CHARS}}}


def _calls(messages: list[Message], name: str) -> list[dict[str, Any]]:
    """Arguments of this rollout's calls to ``name``, in order."""
    found = []
    for m in messages:
        for call in m.tool_calls if m.role == "assistant" else ():
            if call.function.name == name:
                try:
                    found.append(call.parsed_arguments())
                except ValueError:  # a malformed call (the loop already told the model)
                    continue
    return found


def query_candidates(messages: list[Message]) -> list[str]:
    """Queries a later search may run, never one already run (compared case-insensitively):
    while a title the question quotes is unsearched, only such titles (the documents the
    question names come first); then the question's names and the names read so far."""
    question = _question(messages)
    run = {str(a.get("query", "")).strip().lower() for a in _calls(messages, "search")}
    quoted = [q.strip() for q in _QUOTED.findall(question) if q.strip().lower() not in run]
    if quoted:
        return list(dict.fromkeys(quoted))
    names = [n.split(" ", 1)[1] if n.split(" ", 1)[0] in _QUESTION_WORDS and " " in n else n
             for n in _spans(question, want_year=False)]
    read = [s for _, text in doc_texts(messages).values() for s in _spans(text, want_year=False)]
    found = dict.fromkeys(q.strip() for q in [*names, *read])
    return [q for q in found if 1 < len(q) <= ANSWER_MAX_CHARS and q.lower() not in run
            and q not in _QUESTION_WORDS and q != "Wikipedia"][:MAX_QUERIES]


def openable(messages: list[Message]) -> list[str]:
    """Doc ids the latest search listed that no ``open`` call has asked for yet."""
    opened = {str(a.get("doc_id", "")).strip("[] ") for a in _calls(messages, "open")}
    latest = next((m for m in reversed(messages) if m.role == "tool" and m.name == "search"), None)
    result = latest.result if latest is not None else None
    hits = (result.fields.get("hits") or []) if result is not None else []
    listed = [str(h.get("doc_id")) for h in hits if h.get("doc_id")]
    return [d for d in dict.fromkeys(listed) if d not in opened]


def _last_tool(messages: list[Message]) -> str | None:
    for message in reversed(messages):
        if message.role == "assistant" and message.tool_calls:
            return message.tool_calls[-1].function.name
    return None


def _narrowed(schemas: list[dict[str, Any]], messages: list[Message]) -> list[dict[str, Any]]:
    """Copies of the tool schemas narrowed as the module docstring says."""
    doc_ids = seen_doc_ids(messages)
    out = copy.deepcopy(schemas)
    for schema in out:
        fn = schema.get("function", schema)
        props = (fn.get("parameters") or {}).get("properties", {})
        if fn["name"] == "open" and (ids := openable(messages)):
            props["doc_id"] = {"type": "string", "enum": ids}
            props.pop("offset", None)  # the summaries fit on one page
        if fn["name"] == "search" and has_searched(messages) and (queries := query_candidates(messages)):
            props["query"] = {"type": "string", "enum": queries}
        if fn["name"] == "answer":
            fn["parameters"] = _answer_parameters(candidates_by_doc(messages), doc_ids)
    return out


class ForcedCalls:
    """``TurnPolicy`` for one rollout (see the module docstring)."""

    def __init__(self, tool_schemas: list[dict[str, Any]]) -> None:
        self.tool_schemas = tool_schemas

    def __call__(self, messages: list[Message], info: TurnInfo) -> dict[str, Any]:
        schemas = _narrowed(self.tool_schemas, messages)
        if not has_searched(messages):
            return required_call(schemas, only=("search",))
        if info.turns_left <= 1 or info.tokens_left < ANSWER_ROOM:
            return required_call(schemas, only=("answer",))
        allowed = _NEXT.get(_last_tool(messages) or "", ("search", "open", "find", "answer"))
        if not seen_doc_ids(messages):  # nothing found yet: nothing to open or cite
            allowed = ("search", "answer")
        if not openable(messages):
            allowed = tuple(a for a in allowed if a != "open") or ("answer",)
        if not query_candidates(messages):
            allowed = tuple(a for a in allowed if a != "search") or ("answer",)
        return required_call(schemas, only=tuple(dict.fromkeys(allowed)))
