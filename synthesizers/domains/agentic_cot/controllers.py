"""Phase-by-phase generation: the framework writes the tags, the model writes each phase.

A small model asked for five tagged phases in one go mostly ignores the tags
(SmolLM2-135M wrote none; docs/small-model-assists.md). Here the assistant turn starts with ``<analysis>``
(``SamplingParams.assistant_prefix``) and every phase is cut at the next tag
the model starts (``SamplingParams.stop`` on the opening tags and on the closing
tags of the first four phases). The ``PhaseStepper`` (the rollout's controller)
then continues the model's own turn: it closes the phase the
model was writing and opens the next one — analysis, plan, action, reflection,
summary — so the whole five-phase text is one assistant message whose every
phase body the model wrote. ``</summary>`` is not a stop: the model closes the
summary itself (the domain's ``is_final``), or the stepper closes it once.

Nothing here loosens the check: a phase the model left empty ends the rollout
(the structure check would reject it; a phase cut right after its tag, where
the model opened with a line break that a stop string removed, gets that line
break back once), text the model writes outside a phase
(e.g. after a tool result) stays there and fails the check, and the summary
must still state an answer the underlying verifier accepts.
"""

from __future__ import annotations

from typing import Any

from schemas import Message
from synthesizers.controller import Continue, Controller, End, TurnInfo
from schemas.agentic_cot import PHASES, mask_code, parse_messages, parse_text

FIRST_PREFIX = "<analysis>"  # inline, like the prompt's worked example
STOPS = tuple(f"<{p}>" for p in PHASES) + tuple(f"</{p}>" for p in PHASES if p != "summary")
NEXT = {"analysis": "plan", "plan": "action", "action": "reflection", "reflection": "summary"}


def phase_fields(extra_stops: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """SamplingParams fields for a phased rollout; ``extra_stops`` also end a phase (e.g. a
    blank line, which keeps a small model's phases to one paragraph)."""
    return {"assistant_prefix": FIRST_PREFIX, "stop": STOPS + tuple(s for s in extra_stops if s not in STOPS)}


def open_phase(text: str) -> tuple[str | None, str]:
    """``(name, body)`` of the phase left open at the end of ``text`` (the model was cut
    or stopped inside it), or ``(None, "")`` when every phase in it is closed."""
    parsed = parse_text(text)
    if parsed.errors and parsed.errors[-1].endswith("is never closed"):
        name = parsed.errors[-1][1 : parsed.errors[-1].index(">")]
        start = mask_code(text).rfind(f"<{name}>")
        return name, text[start + len(name) + 2 :].strip()
    return None, ""


class PhaseStepper(Controller):
    """The controller of a phased rollout: every turn stops at the next tag; when the model stops,
    close its phase and open the next (a continuation of its own turn, inserted).

    ``summary_opener`` is text the summary starts with (answer forcing, e.g.
    ``"The final answer is \\\\boxed{"``); the model writes the rest. The rollout ends when the
    model left a phase empty, when the tags no longer parse, or after ``max_steps`` continuations.
    """

    def __init__(self, summary_opener: str = "", max_steps: int = 8, extra_stops: tuple[str, ...] = ()):
        self.summary_opener = summary_opener
        self.left = max_steps
        self.fields = phase_fields(extra_stops)
        self._given_breaks: set[str] = set()  # texts already given their line break back

    def next_turn(self, messages: list[Message], info: TurnInfo) -> dict[str, Any]:
        """The stops on every turn; the rollout's first turn starts inside ``<analysis>``."""
        if info.turn == 0 and not info.continuing:
            return dict(self.fields)
        return {"stop": self.fields["stop"]}

    def after_turn(self, messages: list[Message]) -> Continue | End:
        step = self.step(messages)
        return Continue(step.content) if step is not None else End()

    def step(self, messages: list[Message]) -> Message | None:
        if self.left <= 0 or not messages or messages[-1].role != "assistant":
            return None
        self.left -= 1
        text = messages[-1].content
        name, body = open_phase(text)
        if name is not None:
            if not body:
                if text.endswith(f"<{name}>") and text not in self._given_breaks:
                    self._given_breaks.add(text)
                    # Cut before writing anything: the model began with a line break (a
                    # stop string, dropped from its text). Give it back once and go on.
                    return Message(role="assistant", content="\n")
                return None  # an empty phase: the structure check rejects it anyway
            if name == "summary":
                return Message(role="assistant", content="</summary>")
            return Message(role="assistant", content=f"</{name}>\n<{NEXT[name]}>" + self._opener(NEXT[name]))
        parsed = parse_messages(messages)
        if parsed.errors:
            return None
        current = parsed.phases[-1].name if parsed.phases else None
        if current == "summary":
            return None  # closed summary: nothing more to write
        following = NEXT[current] if current else "analysis"
        lead = "" if not text or text.endswith("\n") else "\n"
        return Message(role="assistant", content=f"{lead}<{following}>" + self._opener(following))

    def _opener(self, phase: str) -> str:
        return self.summary_opener if phase == "summary" else ""
