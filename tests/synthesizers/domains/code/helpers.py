"""Shared by the code-domain and repo-verifier tests: one small real project (cachetools),
one known bug in it (LRU evicts the most recent key), its true fix, and submissions."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

from sandboxes.project import ProjectSpec, pristine_files
from sandboxes.tree_diff import file_diff
from schemas import Message, Task, ToolCall, ToolResult
from synthesizers.domains.base import ToolOutput
from synthesizers.domains.code.tools import submission_text

PROJECT = "cachetools"
LRU_FILE = "src/cachetools/__init__.py"
GOOD_LINE = "            key = next(iter(self.__order))\n"
BUG_LINE = "            key = next(reversed(self.__order))\n"


def project_spec() -> ProjectSpec:
    from synthesizers.domains.code.projects import fetch, load_projects

    spec = load_projects(names=[PROJECT])[0]
    fetch(spec)
    return spec


def pristine_lru(spec: ProjectSpec) -> str:
    return pristine_files(spec)[LRU_FILE].decode()


def buggy_lru(spec: ProjectSpec) -> str:
    text = pristine_lru(spec)
    head, sep, tail = text.partition("class LRUCache(Cache):")  # FIFO pops the same way: change LRU only
    assert sep and GOOD_LINE in tail
    return head + sep + tail.replace(GOOD_LINE, BUG_LINE, 1)


def bug_patch(spec: ProjectSpec) -> str:
    return file_diff(LRU_FILE, pristine_lru(spec), buggy_lru(spec))


def fix_patch(spec: ProjectSpec) -> str:
    return file_diff(LRU_FILE, buggy_lru(spec), pristine_lru(spec))


def make_task(spec: ProjectSpec, f2p: list[str], p2p: list[str]) -> Task:
    return Task(id="code-repo-test-lru", domain="code", kind="repo", source="test",
                payload={"project": spec.to_dict(), "bug_patch": bug_patch(spec), "FAIL_TO_PASS": f2p,
                         "PASS_TO_PASS": p2p, "problem_statement": "LRUCache evicts the wrong key."})


def submit_messages(patch: str, call_id: str = "call_submit") -> list[Message]:
    call = ToolCall.make(call_id, "submit", {})
    return [Message(role="system", content="fix the bug"), Message(role="user", content="LRU is broken"),
            Message(role="assistant", content="Submitting.", tool_calls=[call]),
            Message(role="tool", name="submit", tool_call_id=call_id, content=submission_text(patch))]


@contextlib.contextmanager
def project_pool(spec: ProjectSpec, size: int = 1):
    from sandboxes.base import SandboxLimits
    from sandboxes.docker_backend import DockerSandboxPool
    from synthesizers.domains.code.images import ensure_project_image

    pool = DockerSandboxPool(ensure_project_image(spec), size=size,
                             limits=SandboxLimits(memory_mb=768, timeout_s=60, output_bytes=256 * 1024))
    try:
        yield pool
    finally:
        pool.close()


def observation(call_id: str, content: str, *, name: str | None = None, status: str = "ok", **fields: Any) -> Message:
    """A tool message as the agent loop writes it: the text the model read and the call's result
    (status and the tool's fields, e.g. ``exit_code`` of a ``bash`` run, ``reason`` of a refused edit)."""
    return Message(role="tool", content=content, tool_call_id=call_id, name=name,
                   result=ToolResult(status=status, fields=fields))


def answered(call_id: str, output: ToolOutput, name: str | None = None) -> Message:
    """The tool message for a tool's own answer (its text and fields), e.g. ``tools.view_output``."""
    return observation(call_id, str(output), name=name, **output.fields)


def ran(text: str, exit_code: int) -> ToolOutput:
    """A ``bash`` answer with its exit code (``text`` starts as the real tool's does)."""
    return ToolOutput(text, {"exit_code": exit_code, "timed_out": False})


@dataclass
class ScriptedTool:
    """A code tool's real schema; its result is a fixed string or a function of the call's arguments."""

    inner: Any
    result: str | Callable[[dict[str, Any]], str]
    needs_sandbox: bool = False

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def schema(self) -> dict[str, Any]:
        return self.inner.schema

    def run(self, arguments, ctx):
        return self.result(arguments) if callable(self.result) else self.result


def measure_lru_bug(project: ProjectSpec, pool: Any) -> tuple[list[str], list[str]]:
    """(FAIL_TO_PASS, PASS_TO_PASS) of the LRU bug, measured for real: the pristine suite, then the
    buggy one, in one box of ``pool``."""
    from sandboxes.project import stage_deps, stage_files
    from sandboxes.pytest_junit import run_pytest

    files = pristine_files(project)
    with pool.acquire() as box:
        repo = stage_files(box, files, "repo")
        deps = stage_deps(box, project)
        good = run_pytest(box, project, repo, deps)
        box.put_files({f"{repo}/{LRU_FILE}": buggy_lru(project)})
        bad = run_pytest(box, project, repo, deps)
    passing = [t for t, o in good.outcomes.items() if o == "passed"]
    f2p = [t for t in passing if not bad.passed(t)]
    p2p = [t for t in passing if bad.passed(t)]
    assert f2p and p2p and len(passing) > len(f2p) + 50, (f2p, len(p2p))
    return f2p, p2p
