"""The code agent's per-turn sampling policy for guided rollouts (a ``controller.TurnPolicy``, run by a
``PolicyController``).

Why: SmolLM2-135M, left free, never made a tool call in a code rollout (it
wrote prose or a python block and the rollout ended at turn one). A
``first_call_forced`` grammar did not help either: after the ``<tool_call>``
prefix it also admitted free text. So each turn of a guided rollout is
``guided_calls.required_call``: exactly one schema-valid call; the model still
picks the tool and writes every argument (the command, the path, the strings
of an edit). The policy only narrows *which* calls a turn may make:

* ``submit`` is withheld until the rollout has changed the checkout (a
  successful ``edit``, or a ``bash`` command that is not plainly read-only):
  an unchanged checkout cannot pass, so an early submit only wastes a rollout;
* the last turn (``turns_left == 1``) or a turn with little room left in the
  token budget may only ``submit``, so a rollout that edited gets judged
  instead of running out mid-exploration;
* a turn after two identical calls in a row is sampled hotter (``REPEAT_TEMPERATURE``):
  the small model otherwise repeats one call until the budget runs out
  (see docs/small-model-assists.md);
* localized turns (``repo_turns.localized_calls``; the domain passes the task's reproduce and
  check commands): reproduce, view a traceback frame (or trace the functions the test ran and view one), edit
  a shown line into one of its single-token repairs, check, then submit or undo and try the next;
* after a ``submit`` the next turn is free text that stops before any
  ``<tool_call>``: a call-free turn is final for the code domain
  (``CodeDomain.is_final``), so the rollout ends with the model's own closing
  words (possibly empty) and the verifier reads the last submit.

A turn whose narrowing leaves one possible call (``submit``, which takes no
arguments; the reproduce and check runs; an undo) is written by the framework
(``forced_text``, via ``required_call`` / ``one_of``), not sampled: its tokens
are recorded as inserted and carry no loss.

Function-level tasks have no tools; their guided turn (``function_policy``) is
answer forcing: the reply opens with a ```` ```python ```` block holding the
function's header exactly as the prompt shows it (signature and docstring), so
the model writes the body; a regex holds the continuation to body lines (each
indented like the docstring, or blank; the first one not blank), so it ends
where the function ends, and the stops end it at a fence. Why: left free, the
model wrote prose or test code instead of the function; given only the header,
it copied the prompt and closed the block at once (docs/small-model-assists.md).
"""

from __future__ import annotations

import re
from typing import Any

from schemas import Message
from synthesizers.controller import TurnInfo, TurnPolicy
from synthesizers.domains.code.localize import calls_and_results, is_real_edit
from synthesizers.domains.code.repo_turns import SUBMIT, localized_calls, one_of
from synthesizers.guided_calls import TRIGGER, required_call

# A submit call is ~20 tokens; below this much room only submit is offered (a longer call would be cut).
SUBMIT_ROOM_TOKENS = 96
CLOSING_MAX_TOKENS = 48
REPEAT_TEMPERATURE = 1.0


def _changed_checkout(messages: list[Message], is_read_only) -> bool:
    """True once an edit changed a file, or a non-read-only bash command ran."""
    for step in calls_and_results(messages):
        if is_real_edit(step):
            return True
        command = str(step.args.get("command", ""))
        if step.name == "bash" and command.strip() and not is_read_only(command):
            return True
    return False


def _just_submitted(messages: list[Message]) -> bool:
    """The latest assistant turn called ``submit`` (and its observation is in)."""
    last = next((m for m in reversed(messages) if m.role == "assistant"), None)
    return last is not None and any(c.function.name == SUBMIT for c in last.tool_calls)


def _repeating(messages: list[Message]) -> bool:
    """The last two assistant turns made the same calls (names and arguments)."""
    turns = [m for m in messages if m.role == "assistant"][-2:]
    if len(turns) < 2 or not turns[0].tool_calls:
        return False
    a, b = ([(c.function.name, c.function.arguments) for c in t.tool_calls] for t in turns)
    return a == b


def guided_policy(tool_schemas: list[dict[str, Any]], is_read_only, reproduce: str | None = None,
                  check: str | None = None, trace: str | None = None) -> TurnPolicy:
    """The policy for one rollout's tools (see the module docstring); ``is_read_only(command)``
    decides whether a bash command could have changed the checkout; ``reproduce`` (the task's
    failing-test command) turns on the localized turns, ``check`` (the same tests, a terse report)
    re-runs them after an edit; ``trace`` (the same tests under the ``trace_calls`` plugin) lists
    the functions they ran, for a failure without a library frame."""
    names = tuple(t.get("function", t)["name"] for t in tool_schemas)
    explore = required_call(tool_schemas, only=tuple(n for n in names if n != SUBMIT))
    anything = required_call(tool_schemas)
    submit_only = required_call(tool_schemas, only=(SUBMIT,))
    closing = {"assistant_prefix": "", "structured_outputs": None, "stop": (TRIGGER,),
               "max_tokens": CLOSING_MAX_TOKENS}

    def unchanged(command: str) -> bool:  # the task's own test runs change nothing
        return command in (reproduce, check, trace) or is_read_only(command)

    def policy(messages: list[Message], info: TurnInfo) -> dict[str, Any]:
        if _just_submitted(messages):
            return closing
        if info.turns_left <= 1 or info.tokens_left < SUBMIT_ROOM_TOKENS:
            return submit_only
        localized = localized_calls(messages, reproduce, check, trace) if reproduce else None
        if localized == SUBMIT:
            return submit_only
        if localized:
            fields = one_of(localized)
        else:
            fields = anything if _changed_checkout(messages, unchanged) else explore
        return {**fields, "temperature": REPEAT_TEMPERATURE} if _repeating(messages) else fields

    return policy


# Where a completed top-level function ends: its block's fence or the next top-level statement.
FUNCTION_STOPS = ("```", "\ndef ", "\nclass ", "\n@", "\nif __name__")
FUNCTION_MAX_TOKENS = 256  # a body longer than this from a small model is cut, and a cut body cannot compile
_HEADER = re.compile(r"```python\n(.*?)```", re.DOTALL)


def function_header(prompt: str) -> str:
    """The signature and docstring block of a function task's prompt (``function_tasks.prompt_for``)."""
    found = _HEADER.search(prompt)
    if found is None:
        raise ValueError("function task prompt has no ```python header block")
    return found.group(1)


def body_regex(header: str) -> str:
    """Lines of a function body under ``header``: indented as its last line (the docstring's
    close), or blank, the first one code; then the block's closing fence (a stop) or nothing.
    Without the fence the model, wanting to close the block, wrote more (indented) defs until
    max_tokens cut it mid-line."""
    last = [line for line in header.splitlines() if line.strip()][-1]
    indent = (last[:len(last) - len(last.lstrip())] or "    ").replace("\t", "\\t")  # spaces need no escape
    return f"{indent}[^\\s][^\\n]*\\n(({indent}[^\\n]*)?\\n)*(```)?"


def function_policy(prompt: str, temperature: float | None = None) -> TurnPolicy:
    """Every turn opens the answer block with the task's own header and writes body lines only;
    ``temperature`` (optional) for these turns only."""
    header = function_header(prompt)
    fields: dict[str, Any] = {"assistant_prefix": "```python\n" + header, "stop": FUNCTION_STOPS,
                              "structured_outputs": {"regex": body_regex(header)}, "max_tokens": FUNCTION_MAX_TOKENS}
    if temperature is not None:
        fields["temperature"] = float(temperature)

    def policy(messages: list[Message], info: TurnInfo) -> dict[str, Any]:
        return dict(fields)

    return policy
