"""The code domain plug-in: repo-level bug fixing (and function-level tasks) on real projects.

Seeds: the instances Parquet written by ``make code-tasks``
(``python -m synthesizers.domains.code.instances``) and, optionally, the
function-level tasks of ``function_tasks``. One sandbox holds the checkout for
the whole rollout (``sandbox_scope = "rollout"``), in the project's own image
(``sandbox_image``: the base image plus the project's test deps). The verifier for both kinds
is ``verifiers.code_repo.RepoCodeVerifier`` (task kinds ``repo`` and ``repo-function``).

Critical action (where branching cuts): the first assistant turn that edits
(``edit``, ``submit``, or a ``bash`` command that is not plainly read-only) or
runs tests, whichever comes first; without one, the first assistant turn.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import threading
from pathlib import Path
from typing import Any, Iterator, Literal

from sandboxes.project import ProjectSpec, code_cache_dir
from schemas import Message, Task
from synthesizers.controller import PolicyController
from synthesizers.domains.base import Domain, DomainOptions, Tool
from synthesizers.domains.code.prompts import FUNCTION_PROMPT, SYSTEM_PROMPT
from synthesizers.domains.code.tools import TRACE_MODULE, bash_command, code_tools

BugKind = Literal["compare", "binop", "boolop", "constant", "negate_if", "drop_statement", "wrong_variable"]
TaskKind = Literal["repo", "function"]
_TEST_RUN = re.compile(r"\b(pytest|py\.test|unittest|tox|nox)\b|python3?\s+\S*test", re.IGNORECASE)
_READ_ONLY = {"ls", "cat", "head", "tail", "grep", "egrep", "rg", "find", "wc", "pwd", "echo", "nl", "tree",
              "sort", "uniq", "file", "stat", "diff", "which", "cd", "true", "less", "more", "awk"}
_SEPARATORS = re.compile(r"\|\||&&|[|;\n]")
_images: dict[ProjectSpec, str] = {}
_image_lock = threading.Lock()


class CodeDomainError(ValueError):
    pass


def reproduce_command(project: dict[str, Any], f2p: list[str], shown: int = 3, traceback: str = "short") -> str:
    """The project's pytest command narrowed to the failing tests by name (``-k`` cannot take parameters);
    it stops at the first failure with a short traceback, whose ``path:line`` entries in the library's
    own files are what a guided rollout localizes by (``localize.frame_windows``). ``traceback="line"``
    is the check a guided rollout re-runs after each edit: one line per failure, so several tries
    fit a small model's context."""
    names = list(dict.fromkeys(t.rsplit("::", 1)[-1].split("[", 1)[0] for t in f2p))[:shown]
    words = ["python3", "-m", "pytest", "-q", "-x", f"--tb={traceback}", *project.get("pytest_args", []),
             *project.get("test_paths", [])]
    if names:
        words += ["-k", " or ".join(names)]
    return shlex.join(words)


def trace_command(project: dict[str, Any], f2p: list[str]) -> str:
    """The reproduce command run under the trace plugin (``trace_calls``, staged by ``tools.workspace``),
    no traceback, no warnings summary (small output for a small model's context): it prints which of
    the checkout's functions the failing test ran, fewest calls first.
    A guided rollout runs it when the reproduce run's traceback has no library frame and views windows
    from the functions it lists (``localize.traced_windows``)."""
    words = shlex.split(reproduce_command(project, f2p, traceback="no"))
    return shlex.join([*words[:3], "-p", TRACE_MODULE, "--disable-warnings", *words[3:]])


def is_test_run(command: str) -> bool:
    return bool(_TEST_RUN.search(command))


def is_read_only(command: str) -> bool:
    """True only for commands plainly free of side effects (no redirects, no in-place edits)."""
    if re.search(r"(^|[^0-9&])>|>>|\btee\b|-i\b|--in-place|`|\$\(", command):
        return False
    for part in _SEPARATORS.split(command):
        try:
            words = shlex.split(part)
        except ValueError:
            return False
        if words and words[0] not in _READ_ONLY:
            return False
    return True


def _default_instances() -> Path:
    return code_cache_dir() / "instances" / "instances.parquet"


def _read_rows(path: Path, name: str = "instances.parquet") -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    if path.is_dir():
        path = path / name
    if not path.is_file():
        what = "function tasks" if name == "function_tasks.parquet" else "code instances"
        raise CodeDomainError(f"no {what} at {path}: run `make code-starter` (a small checked set for "
                              "configs/code.yaml, minutes) or `make code-tasks` (many, about an hour)")
    return _checked(pq.read_table(path).to_pylist(), path, name)


def _checked(rows: list[dict[str, Any]], path: Path, name: str) -> list[dict[str, Any]]:
    """Only tasks whose gold fix passed and bug failed in every run under the verifier's own conditions
    (``pipelines.env_qa``): a flaky or condition-bound task would mislabel every rollout of it."""
    unchecked = sum(r.get("qa_outcome") not in ("passed", "flaky", "condition_bound") for r in rows)
    if unchecked:
        flag = "" if name == "instances.parquet" else "--function-tasks "
        raise CodeDomainError(f"{unchecked} of {len(rows)} tasks in {path} were never checked under the verifier's "
                              f"conditions: run `python -m pipelines.env_qa {flag}{path.parent}`")
    return [r for r in rows if r["qa_outcome"] == "passed"]


class CodeOptions(DomainOptions):
    """``instances`` (Parquet file or folder; default .cache/code/instances), ``function_tasks``
    (Parquet from ``function_tasks``), ``kinds`` (add "function" for function-level tasks),
    ``projects`` (only these), ``shuffle``, ``guided`` (for models that do not call tools on their
    own; configs/code.yaml turns it on for the embedded model): every turn of a repo-level rollout
    is one guided call (``controller``, see ``controllers``), a function-level answer opens with
    the function's header (the model writes the body), at ``function_temperature`` when set.
    ``kind_limits`` ({kind: n}) caps each kind before ``limit`` (a cache of some 200 repo instances
    would otherwise crowd out a few dozen function tasks). ``bug_kinds`` keeps only repo instances of
    these injected-bug kinds (``mutate``; e.g. the one-token slips whose fix is among a guided
    edit's repairs, ``repairs``)."""

    instances: str | None = None
    function_tasks: str | None = None
    kinds: list[TaskKind] = ["repo"]
    shuffle: bool = True
    projects: list[str] | None = None
    guided: bool = False
    function_temperature: float | None = None
    kind_limits: dict[TaskKind, int] | None = None
    bug_kinds: list[BugKind] | None = None


class CodeDomain(Domain):
    """Repo-level bug fixing and function-level tasks cut from the same projects (``CodeOptions``).
    Why guided turns: SmolLM2-135M, unguided or with only its first turn opened by ``<tool_call>``,
    made no call in a code rollout (see docs/small-model-assists.md)."""

    name = "code"
    Options = CodeOptions
    needs_sandbox = True
    sandbox_scope = "rollout"  # the checkout lives in one box for the whole rollout
    repetition_check = False  # source code repeats lines legitimately (verifiers.repetition)
    # Guided turns (reproduce, view, listed repairs, check, submit) and function headers as openers.
    assists = ("guided-code-turns", "function-header")
    verifier_kinds = ("repo", "repo-function")

    def seed_tasks(self, *, limit: int | None, seed: int) -> Iterator[Task]:
        from synthesizers.domains.code.function_tasks import function_task_from_row
        from synthesizers.domains.code.instances import instance_to_task

        options = self.options
        tasks: list[Task] = []
        if "repo" in options.kinds:
            rows = _read_rows(Path(options.instances or _default_instances()))
            if options.bug_kinds:  # e.g. the one-token slips a guided small model can undo
                rows = [r for r in rows if r.get("mutation_kind") in set(options.bug_kinds)]
            tasks += [instance_to_task(r) for r in rows]
        if "function" in options.kinds:
            path = options.function_tasks or code_cache_dir() / "function_tasks" / "function_tasks.parquet"
            tasks += [function_task_from_row(r) for r in _read_rows(Path(path), "function_tasks.parquet")]
        if options.projects:
            tasks = [t for t in tasks if t.payload["project"]["name"] in set(options.projects)]
        if options.shuffle:
            tasks.sort(key=lambda t: hashlib.sha256(f"{seed}:{t.id}".encode()).hexdigest())
        if caps := options.kind_limits:  # {kind: most tasks of it}, in the order above
            taken: dict[str, int] = {}
            kept = []
            for t in tasks:
                kind = "function" if t.kind == "repo-function" else "repo"
                if kind not in caps or taken.get(kind, 0) < int(caps[kind]):
                    taken[kind] = taken.get(kind, 0) + 1
                    kept.append(t)
            tasks = kept
        return iter(tasks[:limit] if limit is not None else tasks)

    def sandbox_image(self, task: Task) -> str | None:
        """The project's image (its test deps baked in), built once per project and process;
        None (the base image) for a task of no project (a standalone function task)."""
        from synthesizers.domains.code.images import ensure_project_image

        if "project" not in task.payload:
            return None

        spec = ProjectSpec.from_dict(task.payload["project"])
        with _image_lock:
            if spec not in _images:
                _images[spec] = ensure_project_image(spec)
            return _images[spec]

    def initial_messages(self, task: Task) -> list[Message]:
        payload = task.payload
        if task.kind == "repo-function":
            return [Message(role="system", content=FUNCTION_PROMPT),
                    Message(role="user", content=payload["function"]["prompt"])]
        project = payload["project"]
        user = (f"Repository: {project['name']} {project['version']} at /work/repo.\n\n"
                f"{payload.get('problem_statement', '').strip()}\n\n"
                f"To see the failure: `{reproduce_command(project, list(payload.get('FAIL_TO_PASS') or []))}`")
        return [Message(role="system", content=SYSTEM_PROMPT), Message(role="user", content=user)]

    def tools(self, task: Task) -> list[Tool]:
        return [] if task.kind == "repo-function" else code_tools()

    def controller(self, task: Task) -> PolicyController | None:
        """Guided tasks only (option ``guided``; see ``synthesizers.domains.code.controllers``): a repo-level
        turn is one schema-valid call, narrowed to what the rollout has seen (its run of the task's
        reproduce command, the traceback's library frames or else the functions its trace command
        lists, the lines it viewed), ``submit`` withheld
        until the checkout changed and alone on the last turn; a function-level answer opens with
        the function's header in a python block."""
        if not self.options.guided:
            return None
        from synthesizers.domains.code.controllers import function_policy, guided_policy

        if task.kind == "repo-function":
            return PolicyController(function_policy(task.payload["function"]["prompt"],
                                                    self.options.function_temperature))
        project, f2p = task.payload["project"], list(task.payload.get("FAIL_TO_PASS") or [])
        return PolicyController(guided_policy(
            [t.schema for t in self.tools(task)], is_read_only, reproduce_command(project, f2p),
            reproduce_command(project, f2p, traceback="line"), trace_command(project, f2p)))

    def is_final(self, message: Message) -> bool:
        """A turn without tool calls ends a code rollout (after ``submit``, or an answer block)."""
        return message.role == "assistant" and not message.tool_calls

    def first_critical_step(self, messages: list[Message]) -> int | None:
        for index, message in enumerate(messages):
            if message.role != "assistant":
                continue
            for call in message.tool_calls:
                name = call.function.name
                if name in ("edit", "submit"):
                    return index
                if name == "bash" and (is_test_run(bash_command(call)) or not is_read_only(bash_command(call))):
                    return index
        return super().first_critical_step(messages)
