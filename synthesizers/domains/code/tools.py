"""The code agent's tools: ``bash``, ``view``, ``edit``, ``submit``, all in the rollout's sandbox.

The first call of a rollout stages the buggy checkout (pinned sdist +
``bug_patch``) at ``/work/repo`` and a copy at ``/work/.tf/base`` (what
``submit`` diffs against), plus the project's test deps when the box's image
lacks them. ``bash`` runs in ``/work/repo`` with ``PYTHONPATH`` set so
``python3 -m pytest`` tests the checkout. ``submit`` prints the diff of the
project's source files (tests, config and scratch files are left out and
named); the verifier applies exactly that diff to a fresh checkout.

The pytest plugin ``trace_calls`` is staged too, as ``/work/.tf/plugins/tf_trace_calls.py`` (on
``PYTHONPATH``), so ``python3 -m pytest -p tf_trace_calls ...`` lists the functions the failing tests
ran (``domain.trace_command``). It lies outside the checkout: ``submit`` (a diff of
``/work/.tf/base`` against ``/work/repo``) never sees it, and the verifier builds its own fresh
checkout without it.
"""

from __future__ import annotations

import json
import posixpath
import re
import secrets
import threading
from pathlib import Path
from typing import Any

from sandboxes import tree_diff
from sandboxes.project import (CHECKOUT_DIR, ProjectSpec, change_allowed, patched_checkout, python_path,
                               stage_deps, stage_files)
from synthesizers.clip import clip
from synthesizers.domains.base import ToolContext, ToolError, ToolOutput

REPO, BASE = CHECKOUT_DIR, ".tf/base"
PLUGINS, TRACE_MODULE = ".tf/plugins", "tf_trace_calls"  # the trace plugin, outside the checkout
_TRACE_PLUGIN = (Path(__file__).parent / "trace_calls.py").read_text()
MAX_OUTPUT_CHARS = 2500  # per observation: small models have small windows
VIEW_MAX_LINES = 120
# Bounds on argument strings; a guided call's grammar enforces them, so a small model's runaway
# command or path ends as a valid call instead of being cut by max_tokens (then no call at all).
COMMAND_MAX_CHARS, PATH_MAX_CHARS = 400, 200
_PATCH_SCRIPT = Path(tree_diff.__file__).read_text()
# pytest's closing tally ends with the session's wall time ("2 failed, 5 passed in 0.62s"): in every
# test run, it alone makes identical rollouts differ (and miss exact dedupe), so it is left out.
_PYTEST_TIME = re.compile(r"^(=* ?(?:\d+ (?:passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?|"
                          r"subtests passed|rerun)(?:, )?)+|=* ?no tests ran) in \d+(?:\.\d+)?s"
                          r"(?: \(\d+:\d{2}:\d{2}\))?", re.MULTILINE)
_setup_lock = threading.Lock()


def bash_command(call: Any) -> str:
    """The ``command`` argument of a ``bash`` ToolCall ("" when its arguments do not parse)."""
    try:
        return str(json.loads(call.function.arguments or "{}").get("command", ""))
    except (ValueError, AttributeError):
        return ""


def without_run_times(output: str) -> str:
    """``output`` with the wall time cut from pytest's closing tally line(s)."""
    return _PYTEST_TIME.sub(r"\1", output)


def submission_text(patch: str) -> str:
    """The ``submit`` tool's observation: the diff framed so the verifier can read it back."""
    if not patch.strip():
        return f"Submitted an empty patch (no source file changed).\n{tree_diff.frame_diff('')}"
    return f"Submitted. Your patch against the starting checkout:\n{tree_diff.frame_diff(patch)}"


def _schema(name: str, description: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": description,
                                             "parameters": {"type": "object", "properties": props,
                                                            "required": required}}}


def workspace(ctx: ToolContext) -> dict[str, Any]:
    """The rollout's checkout, staged on first use: {repo, spec, env}."""
    if ctx.sandbox is None:
        raise ToolError("this tool needs a sandbox, and none was given to this rollout")
    state = ctx.state if ctx.state is not None else {}
    with _setup_lock:
        if "code_ws" not in state:
            spec = ProjectSpec.from_dict(ctx.task.payload["project"])
            raw, buggy = patched_checkout(spec, str(ctx.task.payload.get("bug_patch", "")))
            files: dict[str, bytes | str] = {**raw, **buggy}
            repo = stage_files(ctx.sandbox, files, REPO)
            stage_files(ctx.sandbox, files, BASE)
            deps = stage_deps(ctx.sandbox, spec)
            plugins = stage_files(ctx.sandbox, {f"{TRACE_MODULE}.py": _TRACE_PLUGIN}, PLUGINS)
            env = {"PYTHONPATH": ":".join([*python_path(spec, repo, deps), plugins]), "HOME": "/tmp",
                   "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
            state["code_ws"] = {"repo": repo, "spec": spec, "env": env}
    return state["code_ws"]


def _repo_path(ws: dict[str, Any], path: Any) -> tuple[str, str]:
    """(relative, absolute) path inside the checkout; anything outside is refused."""
    if not isinstance(path, str) or not path.strip():
        raise ToolError("'path' must be a file path inside the repository, e.g. 'src/pkg/module.py'")
    root = ws["repo"]
    raw = path.strip()
    full = posixpath.normpath(raw if raw.startswith("/") else posixpath.join(root, raw))
    if full != root and not full.startswith(root + "/"):
        raise ToolError(f"{path!r} is outside the repository ({root})")
    return posixpath.relpath(full, root), full


class BashTool:
    name = "bash"
    needs_sandbox = True
    schema = _schema("bash", "Run a bash command in the repository folder (/work/repo) and get its exit code "
                     "and output. Use it to explore and to run tests, e.g. `python3 -m pytest tests/test_x.py -q`.",
                     {"command": {"type": "string", "description": "the bash command",
                                  "maxLength": COMMAND_MAX_CHARS}}, ["command"])

    def __init__(self, timeout_s: float = 45.0):
        self.timeout_s = timeout_s

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        """Fields: ``exit_code`` (None when killed), ``timed_out``."""
        command = arguments.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolError("bash needs 'command': a non-empty string")
        ws = workspace(ctx)
        result = ctx.sandbox.exec(["bash", "-c", command], timeout_s=self.timeout_s, workdir=ws["repo"],
                                  env=ws["env"])
        head = (f"timed out after {self.timeout_s:g} s (killed)" if result.timed_out
                else f"exit code: {result.exit_code}")
        body = without_run_times(result.stdout + (("\n[stderr]\n" + result.stderr) if result.stderr.strip() else ""))
        return ToolOutput(f"{head}\n{clip(body, MAX_OUTPUT_CHARS)}",
                          {"exit_code": None if result.timed_out else result.exit_code, "timed_out": result.timed_out})


class ViewTool:
    name = "view"
    needs_sandbox = True
    schema = _schema("view", f"Show a file with line numbers (at most {VIEW_MAX_LINES} lines at a time), or list "
                     "a directory.", {"path": {"type": "string", "description": "path relative to the repository",
                                               "maxLength": PATH_MAX_CHARS},
                                      "start_line": {"type": "integer", "description": "first line (1-based)"},
                                      "end_line": {"type": "integer", "description": "last line (inclusive)"}},
                     ["path"])

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        """Fields: ``path`` and ``kind`` ("dir" or "file"); a file's ``start_line``, ``end_line``,
        ``total_lines`` and the shown ``lines`` (controllers rebuild the file's state from them)."""
        ws = workspace(ctx)
        rel, full = _repo_path(ws, arguments.get("path"))
        listing = ctx.sandbox.exec(["sh", "-c", 'test -d "$1" && ls -1Ap "$1"', "sh", full], timeout_s=10)
        if listing.exit_code == 0:
            return ToolOutput(f"{rel}/ contains:\n{clip(listing.stdout, MAX_OUTPUT_CHARS)}", {"path": rel, "kind": "dir"})
        try:
            text = ctx.sandbox.get_file(full).decode("utf-8", errors="replace")
        except FileNotFoundError:
            raise ToolError(f"no such file or directory: {rel}") from None
        lines = text.splitlines()
        try:
            start = max(1, int(arguments.get("start_line") or 1))
            end = int(arguments.get("end_line") or start + VIEW_MAX_LINES - 1)
        except (TypeError, ValueError):
            raise ToolError("start_line and end_line must be integers") from None
        return view_output(rel, lines, start, min(end, len(lines), start + VIEW_MAX_LINES - 1))


def view_output(rel: str, lines: list[str], start: int, end: int) -> ToolOutput:
    """``view``'s answer for lines ``start``..``end`` (1-based, inclusive) of the file ``lines``."""
    shown = "\n".join(f"{i:5d}  {lines[i - 1]}" for i in range(start, end + 1))
    more = f"\n[{len(lines) - end} more lines; view with start_line={end + 1}]" if end < len(lines) else ""
    text = clip(f"{rel} (lines {start}-{end} of {len(lines)}):\n{shown}{more}", MAX_OUTPUT_CHARS + 1500)
    return ToolOutput(text, {"path": rel, "kind": "file", "start_line": start, "end_line": end,
                             "total_lines": len(lines), "lines": lines[start - 1:end]})


class EditTool:
    name = "edit"
    needs_sandbox = True
    schema = _schema("edit", "Replace one exact, unique occurrence of old_str in a file with new_str.",
                     {"path": {"type": "string", "description": "path relative to the repository"},
                      "old_str": {"type": "string", "description": "text to replace; must occur exactly once"},
                      "new_str": {"type": "string", "description": "the replacement text"}},
                     ["path", "old_str", "new_str"])

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        """Fields: ``path``, ``line`` (where the change starts). Refused as ``reason`` "ambiguous"
        (old_str occurs more than once) or "not_found", with ``occurrences``."""
        ws = workspace(ctx)
        rel, full = _repo_path(ws, arguments.get("path"))
        old, new = arguments.get("old_str"), arguments.get("new_str")
        if not isinstance(old, str) or not old or not isinstance(new, str):
            raise ToolError("edit needs 'old_str' (non-empty) and 'new_str' strings")
        try:
            text = ctx.sandbox.get_file(full).decode("utf-8")
        except FileNotFoundError:
            raise ToolError(f"no such file: {rel}") from None
        except UnicodeDecodeError:
            raise ToolError(f"{rel} is not a text file") from None
        count = text.count(old)
        if count != 1:
            raise ToolError(f"old_str occurs {count} times in {rel}; it must occur exactly once "
                            "(include more surrounding lines to make it unique)",
                            reason="ambiguous" if count > 1 else "not_found", occurrences=count)
        updated = text.replace(old, new, 1)
        ctx.sandbox.put_files({full: updated})
        line = text[:text.index(old)].count("\n") + 1
        snippet = updated.splitlines()[max(0, line - 3):line + new.count("\n") + 3]
        numbered = "\n".join(f"{i:5d}  {s}" for i, s in enumerate(snippet, start=max(1, line - 2)))
        return ToolOutput(f"Edited {rel}. The lines around the change now read:\n{numbered}", {"path": rel, "line": line})


class SubmitTool:
    name = "submit"
    needs_sandbox = True
    schema = _schema("submit", "Submit your fix: the diff of the project's source files against the starting "
                     "checkout is recorded and judged by the project's tests. Call it once, when done.", {}, [])

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        ws = workspace(ctx)
        script = f"/tmp/tf-submit-{secrets.token_hex(6)}.py"
        ctx.sandbox.put_files({script: _PATCH_SCRIPT})
        base = posixpath.join(ctx.sandbox.workdir, BASE)
        result = ctx.sandbox.exec(["python3", "-I", script, base, ws["repo"]], timeout_s=60)
        ctx.sandbox.exec(["rm", "-f", script], timeout_s=10)
        if result.exit_code != 0 or result.truncated:
            why = "the diff is too large" if result.truncated else clip(result.stderr, 500)
            raise ToolError(f"could not compute your patch: {why}")
        spec: ProjectSpec = ws["spec"]
        kept, left_out = [], []
        for path, chunk in tree_diff.split_diff(result.stdout):
            (kept if change_allowed(spec, path) else left_out).append((path, chunk))
        text = submission_text("".join(chunk for _, chunk in kept))
        if left_out:
            names = ", ".join(p for p, _ in left_out[:8])
            text += f"\nNot part of the submission (only the project's source files count): {names}"
        return text


def code_tools() -> list[Any]:
    return [BashTool(), ViewTool(), EditTool(), SubmitTool()]
