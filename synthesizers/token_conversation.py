"""A conversation kept as the engine's exact token ids (token-in/token-out rollouts).

The agent loop holds one ``TokenConversation`` per rollout. Assistant turns are
the ids the engine sampled, never re-rendered; everything else is the chat
template's rendering of only what is new, appended as ids:

- ``add_messages`` renders each new message (a tool result, a user reply) as the
  text the template adds after the conversation so far;
- ``open_turn`` adds the generation prompt (context) and an opener the framework
  writes (``assistant_prefix``: inserted);
- ``sampled`` / ``insert`` / ``continue_turn`` grow the open assistant turn;
- ``close_turn`` ends it with the template's end of turn: an end token the model
  did not sample is inserted, what follows it (a newline) is context.

This needs a template whose rendering of ``messages[:k]`` is a prefix of its
rendering of ``messages[:k+1]`` and whose assistant turns end alike whatever
their content; ``probe_template`` checks that once per run, and a template that
fails it runs the rollout in text mode (rows marked not token-exact).
"""

from __future__ import annotations

import math
from typing import Any

from schemas import Message
from schemas.tokens import TokenSource, TokenTrace

_SENTINEL = "\u2063TRAJFORGE-TURN\u2063"
_NOT_PREFIX_STABLE = "the chat template is not prefix-stable (rendering messages[:k] is not a prefix of messages[:k+1])"


class TemplateNotIncremental(ValueError):
    """The chat template cannot be extended message by message (not prefix-stable)."""


class TokenConversation:
    def __init__(self, tokenizer: Any, messages: list[Message], tools: list[dict[str, Any]] | None = None,
                 trace: TokenTrace | None = None):
        self.tokenizer = tokenizer
        self.tools = tools or None
        self.messages: list[Message] = []
        self.trace = TokenTrace()
        self._rendered = ""
        self._open: int | None = None  # index of the assistant message being written
        self._special = set(getattr(tokenizer, "all_special_ids", []) or [])
        self._closing_ids: tuple[list[int], list[int]] | None = None  # the same for every turn (checked)
        if trace is not None and len(trace):
            covered = max(trace.message_index) + 1
            if covered != len(messages):
                raise ValueError(f"token trace covers {covered} messages, the conversation has {len(messages)}")
            self.trace = trace.model_copy(deep=True)
            self.messages = list(messages)
            self._rendered = self._render(self.messages, False)
        else:
            self.add_messages(messages)

    # ---- reading ------------------------------------------------------------

    @property
    def ids(self) -> list[int]:
        return self.trace.ids

    @property
    def is_open(self) -> bool:
        return self._open is not None

    def turn_text(self) -> str:
        """The open assistant turn as text: what the framework inserted and the model sampled
        (an end token it sampled left out)."""
        if self._open is None:
            return ""
        ids = [t for t, m, s in zip(self.trace.ids, self.trace.message_index, self.trace.sources)
               if m == self._open and s != TokenSource.CONTEXT]
        if ids and ids[-1] in self._special:
            ids = ids[:-1]
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ---- growing ------------------------------------------------------------

    def add_messages(self, messages: list[Message]) -> None:
        if self._open is not None:
            raise RuntimeError("close the assistant turn before adding messages")
        for message in messages:
            after = self._render(self.messages + [message], False)
            self._append_text(after, TokenSource.CONTEXT, len(self.messages))
            self.messages.append(message)
            self._rendered = after

    def open_turn(self, prefix: str = "") -> None:
        if self._open is not None:
            raise RuntimeError("an assistant turn is already open")
        index = len(self.messages)
        # ``_rendered`` stays the text without the generation prompt: the closed turn's
        # rendering (``close_turn``) extends that one.
        self._append_text(self._render(self.messages, True), TokenSource.CONTEXT, index)
        self._open = index
        if prefix:
            self.insert(prefix)

    def sampled(self, ids: list[int], logprobs: list[float] | None, guided: bool) -> None:
        self._require_open()
        source = TokenSource.GUIDED if guided else TokenSource.SAMPLED
        self.trace.append(list(ids), source, self._open, _clean(logprobs, len(ids)))

    def insert(self, text: str) -> None:
        """Text the framework writes into the open assistant turn."""
        self._require_open()
        if text:
            self.trace.append(self._encode(text), TokenSource.INSERTED, self._open)

    def continue_turn(self, text: str) -> None:
        """The turn goes on after ``text`` (answer forcing, a phase opener): an end token the
        model sampled is taken back first, since the turn did not end there."""
        self._require_open()
        if self.trace.ids and self.trace.message_index[-1] == self._open and self.trace.ids[-1] in self._special \
                and self.trace.sources[-1] != TokenSource.CONTEXT:
            self.trace.truncate(len(self.trace) - 1)
        self.insert(text)

    def abandon_turn(self) -> None:
        """Forget an open turn that produced nothing (an engine error, no room left)."""
        if self._open is None:
            return
        keep = next((i for i, m in enumerate(self.trace.message_index) if m >= self._open), len(self.trace))
        self.trace.truncate(keep)
        self._open = None

    def close_turn(self, message: Message) -> None:
        """End the open turn as ``message`` (its parsed form, kept for the rendering of later turns)."""
        self._require_open()
        index = self._open
        end, after = self._closing()
        tail = self.trace.ids[len(self.trace) - len(end):] if end else []
        sampled_end = bool(end) and tail == end and self.trace.message_index[-1] == index \
            and self.trace.sources[-1] != TokenSource.CONTEXT
        if not sampled_end and end:
            self.trace.append(end, TokenSource.INSERTED, index)
        if after:
            self.trace.append(after, TokenSource.CONTEXT, index)
        self.messages.append(message)
        self._open = None
        rendered = self._render(self.messages, False)
        closing = self.tokenizer.decode(end + after, skip_special_tokens=False)
        if not rendered.startswith(self._rendered):
            raise TemplateNotIncremental(_NOT_PREFIX_STABLE)
        if not rendered.endswith(closing):
            raise TemplateNotIncremental("an assistant turn does not end with the template's usual closing")
        self._rendered = rendered

    # ---- internals ----------------------------------------------------------

    def _require_open(self) -> None:
        if self._open is None:
            raise RuntimeError("no assistant turn is open")

    def _render(self, messages: list[Message], generation_prompt: bool) -> str:
        if not messages:
            return ""
        return self.tokenizer.apply_chat_template(
            [m.to_openai() for m in messages], tools=self.tools, tokenize=False, add_generation_prompt=generation_prompt
        )

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _append_text(self, rendered: str, source: TokenSource, index: int) -> None:
        if not rendered.startswith(self._rendered):
            raise TemplateNotIncremental(_NOT_PREFIX_STABLE)
        piece = rendered[len(self._rendered):]
        if piece:
            self.trace.append(self._encode(piece), source, index)

    def _closing(self) -> tuple[list[int], list[int]]:
        """The template's end of an assistant turn, split after its first special token:
        (the turn's end, what follows it). Worked out once per conversation: ``close_turn``
        checks every turn's real rendering against it."""
        if self._closing_ids is None:
            self._closing_ids = self._find_closing()
        return self._closing_ids

    def _find_closing(self) -> tuple[list[int], list[int]]:
        text = self._render(self.messages + [Message(role="assistant", content=_SENTINEL)], False)
        at = text.rfind(_SENTINEL)
        if at < 0:
            raise TemplateNotIncremental("the chat template does not render an assistant message's content")
        ids = self._encode(text[at + len(_SENTINEL):])
        cut = next((i + 1 for i, t in enumerate(ids) if t in self._special), len(ids))
        return ids[:cut], ids[cut:]


def _clean(logprobs: list[float] | None, n: int) -> list[float]:
    if logprobs is None:
        return [math.nan] * n
    values = [float(x) if x is not None else math.nan for x in logprobs]
    return values + [math.nan] * (n - len(values))


def probe_template(tokenizer: Any, tools: list[dict[str, Any]] | None = None) -> str | None:
    """None when ``tokenizer``'s chat template supports token-in/token-out rollouts, else why not
    (one line). Runs a small conversation with a tool call, a tool result and a user reply."""
    from schemas import ToolCall

    try:
        conv = TokenConversation(tokenizer, [Message(role="system", content="You help."),
                                             Message(role="user", content="What is 2 + 2?")], tools)
        conv.open_turn()
        conv.insert("Let me check.")
        call = ToolCall.make("call_0_0", "python", {"code": "print(2 + 2)"})
        conv.close_turn(Message(role="assistant", content="Let me check.", tool_calls=[call]))
        conv.add_messages([Message(role="tool", content="4", tool_call_id="call_0_0", name="python"),
                           Message(role="user", content="And 3 + 3?")])
        conv.open_turn()
        conv.insert("6")
        conv.close_turn(Message(role="assistant", content="6"))
    except TemplateNotIncremental as exc:
        return str(exc)
    except Exception as exc:  # a template that raises on this conversation cannot run token mode either
        return f"the chat template failed on a probe conversation ({type(exc).__name__}: {exc})"
    return None


def rebase(trace: TokenTrace, messages: list[Message], view: list[Message], tokenizer: Any,
           tools: list[dict[str, Any]] | None = None) -> TokenTrace | None:
    """``trace`` (of ``messages``) carried onto ``view``, which replaces the context messages before
    a shared tail of ``messages`` (a rewrite trained as an answer to another prompt): the new
    context is rendered, the tail keeps its ids and sources. Logprobs are dropped (the engine
    sampled the tail in the old context) and the result is marked not exact. None when the view
    shares no assistant turn with the rollout or the template cannot be extended."""
    shared = 0
    while shared < min(len(messages), len(view)) and messages[-1 - shared] == view[-1 - shared]:
        shared += 1
    old_start, new_start = len(messages) - shared, len(view) - shared
    if not any(m.role == "assistant" for m in view[new_start:]):
        return None
    try:
        head = TokenConversation(tokenizer, view[:new_start], tools).trace
    except TemplateNotIncremental:
        return None
    out = TokenTrace(ids=list(head.ids), sources=list(head.sources), logprobs=list(head.logprobs),
                     message_index=list(head.message_index), exact=False)
    for token, source, index in zip(trace.ids, trace.sources, trace.message_index):
        if index >= old_start:
            out.append([token], TokenSource(source), index - old_start + new_start)
    return out
