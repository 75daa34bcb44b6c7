"""What a guided code rollout has seen so far, read back from its own messages: the library
frames of the failing test's traceback, the functions its trace listed (``trace_calls``), and the
lines of the latest ``view`` of a file.

Why: the policy (``policy.guided_policy``) narrows each turn's call to what the rollout has
already seen, SWE-smith style localization: the model chooses which traceback frame to open
and which shown line to replace, and writes the replacement. Everything here comes from tool
observations in the conversation (the test run the agent made, the views it asked for); never
from the instance's gold patch or mutation metadata.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from schemas import Message
from sandboxes.project import is_test_path

# A pytest traceback entry (--tb=short "path:line: in func", the long style's last "path:line: Error").
_FRAME = re.compile(r"^([\w][\w./-]*\.py):(\d+): ", re.MULTILINE)
# ``synthesizers.clip.clip`` keeps an output's head and tail: the tail's first line is cut mid-way.
_CUT = re.compile(r"\[\.\.\. \d+ characters cut \.\.\.\]\n[^\n]*")
_VIEW_HEAD = re.compile(r"^(\S+) \(lines (\d+)-(\d+) of (\d+)\):$")
_NUMBERED = re.compile(r"^\s*(\d+)  (.*)$")
WINDOW_BEFORE, WINDOW_AFTER = 12, 4  # lines shown around a frame: a bug usually precedes where it fails
MAX_FRAMES = 4  # the innermost library frames offered
# A ``trace_calls`` listing line: "  path:first-last qualname (n calls)".
_TRACED = re.compile(r"^  ([\w][\w./-]*\.py):(\d+)-(\d+) \S+ \(\d+ calls?\)$", re.MULTILINE)
TRACED_COUNT, TRACED_SPAN = 4, 40  # functions offered from a trace listing; lines from each one's first (s6)


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
    first (a long function is shown from its head). Why 4 and 40 (2026-11-23: 77 traced
    instances without a library frame): the bug line editable in an offered window in 41, a uniform
    pick of window then repair right 0.026 a try; 8 windows: 50 and 0.024; 3: 36 and 0.027; 4 of
    24 lines: 31 and 0.026. The greps this replaced: 11 and 0.0055."""
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


def calls_and_results(messages: list[Message]) -> list[tuple[str, dict, str]]:
    """(tool name, arguments, observation) of every answered call, in order."""
    by_id = {c.id: m for m in messages if m.role == "assistant" for c in m.tool_calls}
    out = []
    for m in messages:
        if m.role == "tool" and m.tool_call_id in by_id:
            name, args = _arguments(by_id[m.tool_call_id], m.tool_call_id)
            out.append((name, args, m.content))
    return out


def is_real_edit(name: str, args: dict, result: str) -> bool:
    """An edit that landed and changed something (an old_str written back unchanged is not a fix)."""
    return name == "edit" and result.startswith("Edited ") and args.get("old_str") != args.get("new_str")


def parse_view(result: str) -> tuple[str, list[tuple[int, str]]] | None:
    """(path, [(line number, text)]) of a ``view`` observation of a file; None for anything else."""
    head, _, body = result.partition("\n")
    found = _VIEW_HEAD.match(head)
    if found is None:
        return None
    lines = [(int(m.group(1)), m.group(2)) for m in map(_NUMBERED.match, body.splitlines()) if m]
    return found.group(1), lines


def latest_snapshot(messages: list[Message]) -> tuple[str, list[str]] | None:
    """The file of the latest successful ``view`` and its shown lines, with the edits the
    rollout made to that file since applied (so the lines are what the file holds now)."""
    snapshot: tuple[str, list[str]] | None = None
    for name, args, result in calls_and_results(messages):
        if name == "view" and (parsed := parse_view(result)) is not None and parsed[1]:
            snapshot = (parsed[0], [text for _, text in parsed[1]])
        elif snapshot is not None and is_real_edit(name, args, result) and args.get("path") == snapshot[0]:
            joined = "\n".join(snapshot[1]).replace(str(args["old_str"]), str(args["new_str"]), 1)
            snapshot = (snapshot[0], joined.split("\n"))
    return snapshot


_NOT_CODE = ("#", '"', "'", ">>>", ")", "]", "}")


def editable_lines(lines: list[str]) -> list[str]:
    """Lines an ``edit`` may name as old_str: code (not blank, a comment, a string or docstring
    line, a closing bracket), shown once (so the choice is unambiguous)."""
    return [line for line in dict.fromkeys(lines)
            if line.strip() and not line.strip().startswith(_NOT_CODE) and lines.count(line) == 1]
