"""The localized turns of a guided repo-level rollout: which calls a turn may make, as grammars.

A small model left free looped (views of one file again and again, made-up paths, echoes; it
fixed nothing: docs/small-model-assists.md), so a guided repo rollout follows the steps of a SWE-smith agent, each turn
narrowed to what the rollout itself has seen (``localize``):

1. run the task's reproduce command (the one its prompt names; ``--tb=short``);
2. ``view`` a window around one of the traceback's frames in the library's own files (the model
   picks the frame; a window seen already is not offered again); without a library frame (the
   failure is an assertion in the test) run the failing tests again under the ``trace_calls``
   plugin, which lists the checkout's functions they ran, fewest calls first, and view a window
   from one of the first 4 listed (``localize.traced_windows``). Why not ``grep`` for the names the
   test calls: it showed the buggy line far less often than the trace windows
   (docs/small-model-assists.md);
3. ``edit`` one shown line into one of its single-token repairs (``repairs``: the model picks the
   line and the repair; a pair tried already in this rollout is not offered again);
4. run the *check* command (the reproduce command with a one-line traceback, so retries stay
   within a small model's context);
5. passed: ``submit``. Failed: the next call undoes the edit (the same ``edit`` reversed), and the
   rollout goes on at 2 or 3 with the next choice; once every window was seen and every repair in
   it tried, the windows just above and below the ones viewed are offered.

Why repairs and not a written ``new_str``: the 135M model's own replacement lines were noise or a
copy of the line (they fixed nothing: docs/small-model-assists.md). Nothing here reads the gold patch or the mutation: only the rollout's own
observations and the text of the lines it was shown. With nothing to offer, the turn explores
freely (``None``).

A turn with one possible call (the reproduce and check runs, an undo, one window or one repair
left) is not sampled: ``one_of`` makes it ``forced_text`` (``guided_calls.resolve_single_choice``),
so its tokens are recorded as inserted by the framework, not as the model's.
"""

from __future__ import annotations

import json
from typing import Any

from schemas import Message
from synthesizers.domains.code.localize import (Step, Window, calls_and_results, editable_lines, frame_windows,
                                                 is_real_edit, latest_snapshot, parse_view, traced_windows)
from synthesizers.domains.code.repairs import repairs
from synthesizers.guided_calls import TRIGGER, resolve_single_choice

SUBMIT = "submit"
Edit = tuple[str, str, str]  # (path, old_str, new_str)


def tag(name: str, content: dict[str, Any]) -> dict[str, Any]:
    """One call's tag in the format of ``guided_calls.required_call`` (the prefix wrote ``<tool_call>``)."""
    return {"type": "tag", "begin": f'\n{{"name": {json.dumps(name)}, "arguments": ', "content": content,
            "end": "}\n</tool_call>"}


def narrowed(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """A call whose arguments are held to the JSON schema ``parameters`` for one turn."""
    return tag(name, {"type": "json_schema", "json_schema": parameters})


def one_of(tags: list[dict[str, Any]]) -> dict[str, Any]:
    """Sampling fields for a turn that is exactly one of these calls and nothing else; when that
    leaves one possible text (one tag, every argument fixed), the turn is that text, forced."""
    fmt = {"type": "structural_tag", "format": {"type": "or", "elements": tags}}
    return resolve_single_choice({"assistant_prefix": TRIGGER, "structured_outputs": {"structural_tag": json.dumps(fmt)}})


def _constants(name: str, values: dict[str, str]) -> dict[str, Any]:
    return narrowed(name, {"type": "object", "properties": {k: {"type": "string", "enum": [v]} for k, v in values.items()},
                           "required": list(values)})


def command_call(commands: list[str]) -> dict[str, Any]:
    """A ``bash`` call running one of ``commands`` (the model picks)."""
    return narrowed("bash", {"type": "object", "properties": {"command": {"type": "string", "enum": commands}},
                             "required": ["command"]})


def view_call(windows: list[Window]) -> dict[str, Any]:
    """A ``view`` of one of ``windows``: the model picks the frame or definition."""
    return narrowed("view", {"anyOf": [
        {"type": "object", "properties": {k: {"enum": [v]} for k, v in w.arguments().items()},
         "required": ["path", "start_line", "end_line"]} for w in windows]})


def _ebnf(text: str) -> str:
    """An EBNF string literal matching ``text`` exactly."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def edit_call(path: str, choices: dict[str, list[str]]) -> dict[str, Any]:
    """An ``edit`` of ``path`` turning one line (a key of ``choices``: shown, so it exists) into one
    of its repairs (the key's list): the model picks both. An EBNF grammar, one branch per line, so
    a line is only ever paired with its own repairs. One line with one repair is a call with
    every argument fixed (a JSON schema of constants, so ``one_of`` can force it)."""
    if len(choices) == 1 and len(only := next(iter(choices.values()))) == 1:
        return _constants("edit", {"path": path, "old_str": next(iter(choices)), "new_str": only[0]})
    dump = lambda text: json.dumps(text, ensure_ascii=False)  # noqa: E731
    branches = [f'b{i} ::= {_ebnf(dump(old) + ", " + dump("new_str") + ": ")} ({" | ".join(_ebnf(dump(n)) for n in new)})'
                for i, (old, new) in enumerate(choices.items())]
    head = _ebnf("{" + dump("path") + ": " + dump(path) + ", " + dump("old_str") + ": ")
    root = f'root ::= {head} ({" | ".join(f"b{i}" for i in range(len(choices)))}) "}}"'
    return tag("edit", {"type": "grammar", "grammar": "\n".join([root, *branches]) + "\n"})


def open_edits(history: list[Step]) -> list[Edit]:
    """The rollout's edits that landed and were not undone since (an edit undoes the latest open
    one when it swaps that one's strings back)."""
    stack: list[Edit] = []
    for step in history:
        if is_real_edit(step):
            edit = (str(step.args.get("path")), str(step.args.get("old_str")), str(step.args.get("new_str")))
            if stack and stack[-1] == (edit[0], edit[2], edit[1]):
                stack.pop()
            else:
                stack.append(edit)
    return stack


_HEADERS = ("def ", "async def ", "class ")


def _undo(edit: Edit) -> dict[str, Any]:
    path, old, new = edit
    return _constants("edit", {"path": path, "old_str": new, "new_str": old})


def _windows(history: list[Step], reproduced: Step, trace: str | None) -> tuple[list[Window], list[str]]:
    """The windows to view (unseen ones) and the commands to run, from the ``reproduced`` run's
    output: its library frames; without one (an assertion in the test itself), the ``trace`` command
    first, then windows from the functions the failing test ran, as its listing ranks them (a run
    that passed has nothing to trace)."""
    windows, commands = frame_windows(reproduced.text), []
    if not windows and trace and reproduced.field("exit_code") != 0:
        traced = [s for s in history if s.name == "bash" and s.args.get("command") == trace]
        if traced:
            windows = traced_windows(traced[-1].text)
        else:
            commands = [trace]
    viewed = {(str(s.args.get("path")), s.args.get("start_line"), s.args.get("end_line"))
              for s in history if s.name == "view"}
    return [w for w in windows if (w.path, w.start_line, w.end_line) not in viewed], commands


def _edit_choices(messages: list[Message], history: list[Step]) -> tuple[str, dict[str, list[str]]] | None:
    """The latest viewed file and, per editable line shown, its repairs not tried yet. Left out: a
    ``def``/``class`` header (its defaults are the API; the model spent tries on them), a line the
    edit tool found more than once in the file, and a repair that equals another line shown (the
    undo could not name the line again)."""
    snapshot = latest_snapshot(messages)
    if snapshot is None:
        return None
    shown = set(snapshot[1])
    tried = {(str(s.args.get("old_str")), str(s.args.get("new_str"))) for s in history if is_real_edit(s)}
    ambiguous = {str(s.args.get("old_str")) for s in history if s.name == "edit" and s.field("reason") == "ambiguous"}
    choices = {line: fresh for line in editable_lines(snapshot[1])
               if line not in ambiguous and not line.lstrip().startswith(_HEADERS)
               if (fresh := [r for r in repairs(line) if (line, r) not in tried and r not in shown])}
    return (snapshot[0], choices) if choices else None


def localized_calls(messages: list[Message], reproduce: str, check: str | None = None, trace: str | None = None
                    ) -> list[dict[str, Any]] | str | None:
    """The calls a localized turn may make (see the module docstring), ``SUBMIT`` when the
    rollout's open edit passed its check, or None when nothing is localized (no library frame and
    no function traced, or an undo that did not land): then the turn explores freely."""
    check = check or reproduce
    history = calls_and_results(messages)
    if not history:
        return [command_call([reproduce])]
    pending = open_edits(history)
    last = history[-1]
    old, new = last.args.get("old_str"), last.args.get("new_str")
    if is_real_edit(last) and pending and pending[-1][1:] == (old, new):
        return [command_call([check])]
    if last.name == "edit" and not is_real_edit(last) and pending and old == pending[-1][2]:
        return None  # the undo did not land (the repaired line occurs twice in the file)
    first_runs = [s for s in history if s.name == "bash" and s.args.get("command") == reproduce]
    if not first_runs:
        return None
    if last.name == "bash" and last.args.get("command") in (reproduce, check) and pending:
        return SUBMIT if last.field("exit_code") == 0 else [_undo(pending[-1])]
    windows, commands = _windows(history, first_runs[-1], trace)
    calls = [command_call(commands)] if commands else []
    if windows:
        calls.append(view_call(windows))
    if (edit := _edit_choices(messages, history)) is not None:
        calls.append(edit_call(*edit))
    if not calls and (more := _neighbour_windows(history)):
        calls.append(view_call(more))
    return calls or None


def _neighbour_windows(history: list[Step]) -> list[Window]:
    """When every offered window was seen and every repair in them tried: the windows just above
    and below the ones viewed, not seen yet (the bug may sit a little outside a frame's window).
    Why: with nothing left to offer the turn went free, and the model repeated its last call
    until the budget ran out (the same undo ten times)."""
    viewed = [(str(s.args.get("path")), int(s.args["start_line"]), int(s.args["end_line"])) for s in history
              if isinstance(s.args.get("start_line"), int) and isinstance(s.args.get("end_line"), int)
              and parse_view(s) is not None]
    seen = {(p, s, e) for p, s, e in viewed}
    out: list[Window] = []
    for path, start, end in reversed(viewed):  # the latest view's neighbours first
        size = end - start + 1
        for w in (Window(path, max(1, start - size), start - 1), Window(path, end + 1, end + size)):
            if w.end_line >= w.start_line and (w.path, w.start_line, w.end_line) not in seen and w not in out:
                out.append(w)
    return out[:4]
