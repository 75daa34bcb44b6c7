"""What a guided code rollout has seen so far, read back from its own messages: the library
frames of the failing test's traceback, the functions its trace listed (``trace_calls``), and the
lines of the latest ``view`` of a file. What a call came to (an edit landed or was refused, a
command's exit code, the lines a view showed) is read from its typed result (``Message.result``),
never from the wording of the observation; only program output (tracebacks, the trace listing)
is read as text.

Why: the policy (``controllers.guided_policy``) narrows each turn's call to what the rollout has
already seen, SWE-smith style localization: the model chooses which traceback frame to open,
which shown line to change and which of its single-token repairs (``repairs``) to apply. Everything here comes from tool
observations in the conversation (the test run the agent made, the views it asked for); never
from the instance's gold patch or mutation metadata.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from schemas import Message, ToolResult
from sandboxes.project import is_test_path

# A pytest traceback entry (--tb=short "path:line: in func", the long style's last "path:line: Error").
_FRAME = re.compile(r"^([\w][\w./-]*\.py):(\d+): ", re.MULTILINE)
# ``synthesizers.clip.clip`` keeps an output's head and tail: the tail's first line is cut mid-way.
_CUT = re.compile(r"\[\.\.\. \d+ characters cut \.\.\.\]\n[^\n]*")
WINDOW_BEFORE, WINDOW_AFTER = 12, 4  # lines shown around a frame: a bug usually precedes where it fails
MAX_FRAMES = 4  # the innermost library frames offered
# A ``trace_calls`` listing line: "  path:first-last qualname (n calls)".
_TRACED = re.compile(r"^  ([\w][\w./-]*\.py):(\d+)-(\d+) \S+ \(\d+ calls?\)$", re.MULTILINE)
TRACED_COUNT, TRACED_SPAN = 4, 40  # functions offered from a trace listing; lines from each one's first


@dataclass(frozen=True)
class Window:
    path: str
    start_line: int
    end_line: int

    def arguments(self) -> dict[str, object]:
        return {"path": self.path, "start_line": self.start_line, "end_line": self.end_line}


def library_frames(output: str) -> list[tuple[str, int]]:
    """(path, line) of the traceback entries in the checkout's own non-test files, innermost
    last, deduplicated; absolute paths (installed packages, the stdlib) are left out."""
    seen: list[tuple[str, int]] = []
    for match in _FRAME.finditer(_CUT.sub("", output)):
        path, line = match.group(1), int(match.group(2))
        if path.startswith(("/", "..")) or is_test_path(path) or (path, line) in seen:
            continue
        seen.append((path, line))
    return seen


def frame_windows(output: str) -> list[Window]:
    """The view windows around the innermost ``MAX_FRAMES`` library frames of ``output``."""
    frames = library_frames(output)[-MAX_FRAMES:]
    return [Window(p, max(1, line - WINDOW_BEFORE), line + WINDOW_AFTER) for p, line in frames]


def traced_windows(output: str, count: int = TRACED_COUNT, span: int = TRACED_SPAN) -> list[Window]:
    """View windows of the first ``count`` functions a ``trace_calls`` listing names (fewest calls
    first, tests left out): each from its first line to its last, at most ``span`` lines after the
    first (a long function is shown from its head). Why 4 and 40: more windows reach more bug
    lines but make a uniform pick likelier wrong; 4 windows of 40 lines reach most of them at about
    the best odds a try (measured: docs/small-model-assists.md, guided-code-turns)."""
    hits = [(m.group(1), int(m.group(2)), int(m.group(3))) for m in _TRACED.finditer(_CUT.sub("", output))
            if not is_test_path(m.group(1))]
    return [Window(p, first, max(first, min(last, first + span))) for p, first, last in hits[:count]]


def _arguments(message: Message, call_id: str | None) -> tuple[str, dict]:
    for call in message.tool_calls:
        if call.id == call_id:
            try:
                return call.function.name, json.loads(call.function.arguments or "{}")
            except ValueError:
                return call.function.name, {}
    return "", {}


@dataclass(frozen=True)
class Step:
    """One answered call of the rollout: the tool, its arguments, the observation the model read,
    and the call's outcome as data. A message stored without a result (a store older than results)
    counts as an error, so nothing is built on it."""

    name: str
    args: dict
    text: str
    result: ToolResult

    def field(self, key: str, default: object = None) -> object:
        return self.result.fields.get(key, default)


_NO_RESULT = ToolResult(status="error", fields={"reason": "no_result"})


def calls_and_results(messages: list[Message]) -> list[Step]:
    """Every answered call, in order."""
    by_id = {c.id: m for m in messages if m.role == "assistant" for c in m.tool_calls}
    out = []
    for m in messages:
        if m.role == "tool" and m.tool_call_id in by_id:
            name, args = _arguments(by_id[m.tool_call_id], m.tool_call_id)
            out.append(Step(name, args if isinstance(args, dict) else {}, m.content, m.result or _NO_RESULT))
    return out


def is_real_edit(step: Step) -> bool:
    """An edit that landed and changed something (an old_str written back unchanged is not a fix)."""
    return step.name == "edit" and step.result.ok and step.args.get("old_str") != step.args.get("new_str")


def parse_view(step: Step) -> tuple[str, list[tuple[int, str]]] | None:
    """(path, [(line number, text)]) of a ``view`` of a file; None for anything else."""
    if step.name != "view" or not step.result.ok or step.field("kind") != "file":
        return None
    first, lines = step.field("start_line"), step.field("lines")
    if not isinstance(first, int) or not isinstance(lines, list):
        return None
    return str(step.field("path")), [(first + i, str(text)) for i, text in enumerate(lines)]


def latest_snapshot(messages: list[Message]) -> tuple[str, list[str]] | None:
    """The file of the latest successful ``view`` and its shown lines, with the edits the
    rollout made to that file since applied (so the lines are what the file holds now)."""
    snapshot: tuple[str, list[str]] | None = None
    for step in calls_and_results(messages):
        if (parsed := parse_view(step)) is not None and parsed[1]:
            snapshot = (parsed[0], [text for _, text in parsed[1]])
        elif snapshot is not None and is_real_edit(step) and step.args.get("path") == snapshot[0]:
            joined = "\n".join(snapshot[1]).replace(str(step.args["old_str"]), str(step.args["new_str"]), 1)
            snapshot = (snapshot[0], joined.split("\n"))
    return snapshot


_NOT_CODE = ("#", '"', "'", ">>>", ")", "]", "}")


def editable_lines(lines: list[str]) -> list[str]:
    """Lines an ``edit`` may name as old_str: code (not blank, a comment, a string or docstring
    line, a closing bracket), shown once (so the choice is unambiguous)."""
    return [line for line in dict.fromkeys(lines)
            if line.strip() and not line.strip().startswith(_NOT_CODE) and lines.count(line) == 1]
