"""The code agent's per-turn sampling policy (``agent_loop.TurnPolicy``) for guided rollouts.

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
  the small model otherwise repeats one call until the budget runs out (2026-11-23, runs/code-h1:
  ``echo`` eleven times, a missing file six times);
* localized turns (``localized_calls``; the domain passes the task's reproduce command): free
  exploration looped (views of one file again and again, made-up paths, echoes; 0 of 18 in
  runs/code-h1), so a repo rollout follows the steps of a SWE-smith agent and each turn's call is
  narrowed to what the rollout itself has seen (``localize``): the first turn runs the reproduce
  command its prompt names; then a ``view`` of a window around one of the traceback's frames in
  the library's own files (the model picks the frame; a window seen already is not offered again),
  or an ``edit`` of the latest viewed file whose ``old_str`` is one of the lines shown (so it
  exists; the model picks the line and writes ``new_str``, bounded by ``NEW_STR_MAX_CHARS``);
  after an edit that changed a line, the reproduce command again; once it passes, ``submit``.
  Without a library frame (the failure is an assertion in the test) the turn may instead ``grep``
  for the definition of a name the test calls (or of the test's own name less ``test_``) in the
  project's source, and view a window from a definition found; with nothing to offer, the turn
  explores freely.
  Nothing here reads the gold patch or the mutation: only the rollout's own observations;
  measured 2026-11-23 (runs/code, 24 repo rollouts): the buggy line was shown in 15, a line was
  changed in 11, fixed in none (new_str is noise like "1 1 1 1" or a copy of the line);
* after a ``submit`` the next turn is free text that stops before any
  ``<tool_call>``: a call-free turn is final for the code domain
  (``CodeDomain.is_final``), so the rollout ends with the model's own closing
  words (possibly empty) and the verifier reads the last submit.

Function-level tasks have no tools; their guided turn (``function_policy``) is
answer forcing: the reply opens with a ```` ```python ```` block holding the
function's header exactly as the prompt shows it (signature and docstring), so
the model writes the body; a regex holds the continuation to body lines (each
indented like the docstring, or blank; the first one not blank), so it ends
where the function ends, and the stops end it at a fence. Why: left free, the
model wrote prose or test code instead of the function; given only the header,
it copied the prompt and closed the block at once (2026-11-23, runs/code-h1-fn).
"""

from __future__ import annotations

import json
import re
from typing import Any

from schemas import Message
from synthesizers.agent_loop import TurnInfo, TurnPolicy
from synthesizers.domains.code.localize import (MAX_FRAMES, Window, calls_and_results, definition_windows,
                                                 editable_lines, frame_windows, is_real_edit, latest_snapshot,
                                                 search_commands)
from synthesizers.guided_calls import TRIGGER, required_call

SUBMIT = "submit"
# A submit call is ~20 tokens; below this much room only submit is offered (a longer call would be cut).
SUBMIT_ROOM_TOKENS = 96
CLOSING_MAX_TOKENS = 48
REPEAT_TEMPERATURE = 1.0
NEW_STR_MAX_CHARS = 240
NEW_STR_SLACK = 16
EDIT_TEMPERATURE = 0.4  # an edit turn; a repeated call still goes hotter


def _changed_checkout(messages: list[Message], is_read_only) -> bool:
    """True once an edit changed a file, or a non-read-only bash command ran."""
    for name, args, result in calls_and_results(messages):
        if is_real_edit(name, args, result):
            return True
        if name == "bash" and str(args.get("command", "")).strip() and not is_read_only(str(args["command"])):
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


def _tag(name: str, content: dict[str, Any]) -> dict[str, Any]:
    """One call's tag in the format of ``guided_calls.required_call`` (the prefix wrote ``<tool_call>``)."""
    return {"type": "tag", "begin": f'\n{{"name": {json.dumps(name)}, "arguments": ', "content": content,
            "end": "}\n</tool_call>"}


def _narrowed(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """A call whose arguments are held to the JSON schema ``parameters`` for one turn."""
    return _tag(name, {"type": "json_schema", "json_schema": parameters})


def one_of(tags: list[dict[str, Any]]) -> dict[str, Any]:
    """Sampling fields for a turn that is exactly one of these calls and nothing else."""
    fmt = {"type": "structural_tag", "format": {"type": "or", "elements": tags}}
    return {"assistant_prefix": TRIGGER, "structured_outputs": {"structural_tag": json.dumps(fmt)}}


def run_tests_call(command: str) -> dict[str, Any]:
    """The turn runs the task's own reproduce command (the one its prompt names)."""
    return _narrowed("bash", {"type": "object", "properties": {"command": {"type": "string", "enum": [command]}},
                              "required": ["command"]})


def view_call(windows: list[Window]) -> dict[str, Any]:
    """A ``view`` of one of ``windows`` (the traceback's library frames): the model picks the frame."""
    return _narrowed("view", {"anyOf": [
        {"type": "object", "properties": {k: {"enum": [v]} for k, v in w.arguments().items()},
         "required": ["path", "start_line", "end_line"]} for w in windows]})


def _ebnf(text: str) -> str:
    """An EBNF string literal matching ``text`` exactly."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


# A character of a JSON string (an escaped quote or backslash included); new_str's first one after
# the indentation is not blank, so the line holds code at exactly that indentation.
_JSON_CHARS = (r'jfirst ::= [^"\\\x00-\x20] | "\\\"" | "\\\\"' "\n"
               r'jchar ::= [^"\\\x00-\x1f] | "\\\"" | "\\\\"' "\n")


def edit_call(path: str, lines: list[str]) -> dict[str, Any]:
    """An ``edit`` of ``path`` whose old_str is one of ``lines`` (shown, so it exists) and whose
    new_str is one line at that line's indentation, at most ``NEW_STR_SLACK`` characters longer.
    The model picks the line and writes the code. Why the bounds: at 0.8 the model ran a line on
    into noise ("build=None  build=None ...") and wrote new lines at a random indentation, so most
    edits broke the module (runs/code-s4a)."""
    branches = []
    for i, line in enumerate(lines):
        indent = line[:len(line) - len(line.lstrip())]
        old = json.dumps(line, ensure_ascii=False)
        room = min(NEW_STR_MAX_CHARS, len(line.strip()) + NEW_STR_SLACK)
        branches.append(f'b{i} ::= {_ebnf(old + ", " + chr(34) + "new_str" + chr(34) + ": " + chr(34) + indent)} '
                        f'jfirst jchar{{0,{room}}} "\\""')
    head = _ebnf("{" + json.dumps("path") + ": " + json.dumps(path, ensure_ascii=False) + ", "
                 + json.dumps("old_str") + ": ")
    root = f'root ::= {head} ({" | ".join(f"b{i}" for i in range(len(lines)))}) "}}"'
    return _tag("edit", {"type": "grammar", "grammar": "\n".join([root, *branches]) + "\n" + _JSON_CHARS})


def localized_calls(messages: list[Message], reproduce: str, tests: list[str] = (), source: list[str] = ()
                    ) -> list[dict[str, Any]] | str | None:
    """The narrowed calls a localized turn may make (see the module docstring), ``SUBMIT`` when
    the rollout's fix passed its own test run, or None when nothing is localized (no traceback
    frame in the library, nothing found by a search, nothing viewed): then the turn explores freely."""
    history = calls_and_results(messages)
    if not history:
        return [run_tests_call(reproduce)]
    name, args, result = history[-1]
    if is_real_edit(name, args, result):
        return [run_tests_call(reproduce)]
    runs = [(i, r) for i, (n, a, r) in enumerate(history) if n == "bash" and a.get("command") == reproduce]
    if not runs:
        return None
    last_run, output = runs[-1]
    if last_run == len(history) - 1 and output.startswith("exit code: 0") and any(
            is_real_edit(*h) for h in history[:last_run]):
        return SUBMIT
    calls = []
    commands = {str(a.get("command")) for n, a, _ in history if n == "bash"}
    windows = frame_windows(output)
    if not windows:  # an assertion in the test itself: search for what it calls, view what was found
        if searches := [c for c in search_commands(output, list(tests), list(source)) if c not in commands]:
            calls.append(_narrowed("bash", {"type": "object", "properties": {
                "command": {"type": "string", "enum": searches}}, "required": ["command"]}))
        found = [r for n, a, r in history if n == "bash" and str(a.get("command", "")).startswith("grep ")]
        windows = [w for r in found for w in definition_windows(r)][:2 * MAX_FRAMES]
    viewed = {(str(a.get("path")), a.get("start_line"), a.get("end_line")) for n, a, _ in history if n == "view"}
    if windows := [w for w in windows if (w.path, w.start_line, w.end_line) not in viewed]:
        calls.append(view_call(windows))
    ambiguous = {str(a.get("old_str")) for n, a, r in history if n == "edit" and r.startswith("Error: old_str occurs")}
    if (snapshot := latest_snapshot(messages)) is not None and (
            lines := [line for line in editable_lines(snapshot[1]) if line not in ambiguous]):
        calls.append(edit_call(snapshot[0], lines))
    return calls or None


def guided_policy(tool_schemas: list[dict[str, Any]], is_read_only, reproduce: str | None = None,
                  tests: list[str] = (), source: list[str] = ()) -> TurnPolicy:
    """The policy for one rollout's tools (see the module docstring); ``is_read_only(command)``
    decides whether a bash command could have changed the checkout; ``reproduce`` (the task's
    failing-test command) turns on the localized turns; ``tests`` (the failing test ids its prompt
    names) and ``source`` (the project's source folders) make the searches of a failure without
    a library frame."""
    names = tuple(t.get("function", t)["name"] for t in tool_schemas)
    explore = required_call(tool_schemas, only=tuple(n for n in names if n != SUBMIT))
    anything = required_call(tool_schemas)
    submit_only = required_call(tool_schemas, only=(SUBMIT,))
    closing = {"assistant_prefix": "", "structured_outputs": None, "stop": (TRIGGER,),
               "max_tokens": CLOSING_MAX_TOKENS}

    def unchanged(command: str) -> bool:  # the task's own test run changes nothing
        return command == reproduce or is_read_only(command)

    def policy(messages: list[Message], info: TurnInfo) -> dict[str, Any]:
        if _just_submitted(messages):
            return closing
        if info.turns_left <= 1 or info.tokens_left < SUBMIT_ROOM_TOKENS:
            return submit_only
        localized = localized_calls(messages, reproduce, tests, source) if reproduce else None
        if localized == SUBMIT:
            return submit_only
        if localized:
            fields = one_of(localized)
            if any(tag["begin"].endswith('"edit", "arguments": ') for tag in localized):
                fields["temperature"] = EDIT_TEMPERATURE
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
    max_tokens cut it mid-line (runs/code-h1-fn, second run: 47 of 48 answers cut)."""
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
