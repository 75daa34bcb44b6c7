"""Repo-level code verifier: does the agent's patch make FAIL_TO_PASS pass and keep PASS_TO_PASS?

Task payload (kind ``repo``): ``project`` (a ``ProjectSpec`` dict), ``bug_patch``
(pristine -> buggy checkout, the state the agent started from),
``FAIL_TO_PASS`` and ``PASS_TO_PASS`` (JUnit test ids). Function-level tasks
cut from the same projects (kind ``repo-function``) use this verifier too
(see ``verifiers.code_repo_function``).

What the agent submitted: the diff printed by the last ``submit`` tool call of
the trajectory (a ``role=tool`` message answering an assistant's ``submit``
call). The ``submit`` tool computed it inside the rollout box against the
starting checkout. Edits made after the last submit do not count; no submit,
no pass. This is exact (no replay of shell commands) and cheap.

Why the agent cannot influence the tests (trust boundary: only the host is
trusted; see ``docs/code-verifier-trust.md``):
- the verifier rebuilds the checkout in a *fresh* box from the sha256-pinned
  sdist + ``bug_patch`` + the agent's diff, so nothing left in the rollout box
  (edited tests, conftest.py, pytest.ini, fake reports, planted processes)
  exists there;
- from the agent's diff only Python files inside the project's source dirs that
  are not tests or test config are applied (``sandboxes.project.change_allowed``); the
  rest is ignored, i.e. test files and config stay pristine;
- before any test runs, a patch that *adds* a means of reaching the test run
  (imports of the harness, dynamic imports and ``exec``/``eval``, ``sys.modules``,
  frames, ``gc``, ``ctypes``, monkeypatching modules the project does not own,
  exit and process control, harness names in strings) is refused
  (``verifiers.code_tamper``);
- the tests run under ``sandboxes.pytest_guard``: twice, in fresh boxes, each
  test made to fail in one run chosen at random, outcomes read from a record
  authenticated by a key only the collector holds, with run-time checks of
  pytest's and the interpreter's integrity. Forged or missing records, a
  poisoned test reported passing, or tampering seen at run time fail the
  submission ("tampering: ..."), as does a test that is skipped, errored,
  never ran or is missing.
"""

from __future__ import annotations

from sandboxes.base import Sandbox
from sandboxes.project import ProjectSpec, ProjectUnavailable, change_allowed, patched_checkout, text_files
from sandboxes.pytest_guard import judge
from sandboxes.tree_diff import PatchError, apply_patch, parse_diff, unframe_diff
from schemas import Message, Task, Verdict
from verifiers.code_tamper import own_packages, refusal

SUBMIT_TOOL = "submit"
MAX_PATCH_CHARS = 200_000


def _fail(reason: str) -> Verdict:
    return Verdict(passed=False, score=0.0, reason=reason)


def submitted_patch(messages: list[Message]) -> str | None:
    """The diff (``tree_diff.frame_diff``) in the last ``submit`` tool observation answering a real ``submit`` call."""
    submit_ids = {c.id for m in messages if m.role == "assistant" for c in m.tool_calls
                  if c.function.name == SUBMIT_TOOL}
    for m in reversed(messages):
        if m.role == "tool" and m.name == SUBMIT_TOOL and m.tool_call_id in submit_ids:
            return unframe_diff(m.content)
    return None


def tampering(spec: ProjectSpec, final: dict[str, str | None], pristine: dict[str, str]) -> str | None:
    """Why the patch is refused before any test runs (None: nothing it adds reaches for the test run)."""
    return refusal(final, pristine, own_packages(spec.source))


class RepoCodeVerifier:
    domain = "code"
    kind = "repo"
    needs_sandbox = True

    def __init__(self, per_test_timeout_s: float = 20.0, total_timeout_s: float = 300.0):
        self.per_test_timeout_s = per_test_timeout_s
        self.total_timeout_s = total_timeout_s

    def verify(self, task: Task, messages: list[Message], sandbox: Sandbox | None = None) -> Verdict:
        payload = task.payload
        f2p, p2p = list(payload.get("FAIL_TO_PASS") or []), list(payload.get("PASS_TO_PASS") or [])
        if not f2p or not isinstance(payload.get("project"), dict):
            return _fail("task lacks project or FAIL_TO_PASS")
        if sandbox is None:
            return _fail("repo-level code needs a sandbox")
        try:
            spec = ProjectSpec.from_dict(payload["project"])
            raw, buggy = patched_checkout(spec, str(payload.get("bug_patch", "")))
        except (ProjectUnavailable, PatchError, KeyError) as exc:
            return _fail(f"task unusable: {exc}")
        candidate = self._candidate(task, messages, spec, buggy)
        if isinstance(candidate, Verdict):
            return candidate
        changes, note = candidate
        pristine = text_files(raw)
        if (why := tampering(spec, changes, pristine)) is not None:
            return _fail(why)
        return self._run(sandbox, spec, raw, buggy, changes, f2p, p2p, note)

    def _candidate(self, task: Task, messages: list[Message], spec: ProjectSpec, buggy: dict[str, str]
                   ) -> Verdict | tuple[dict[str, str | None], str]:
        """{path: new content | None} to lay over the buggy checkout, plus a note for the reason."""
        if task.kind == "repo-function":
            from verifiers.code_repo_function import function_candidate

            return function_candidate(task, messages, buggy)
        patch = submitted_patch(messages)
        if patch is None:
            return _fail("no patch submitted (no submit tool result with a <patch> block)")
        if "...[truncated" in patch:
            return _fail("submitted patch was truncated in the trajectory (raise agent.max_tool_output_chars)")
        if len(patch) > MAX_PATCH_CHARS:
            return _fail("submitted patch too large")
        try:
            patches = parse_diff(patch)
        except PatchError as exc:
            return _fail(f"malformed patch: {exc}")
        allowed = [fp for fp in patches if all(change_allowed(spec, p) for p in (fp.old_path, fp.new_path) if p)]
        ignored = sorted({fp.path for fp in patches} - {fp.path for fp in allowed})
        try:
            changes = apply_patch(buggy, allowed)
        except PatchError as exc:
            return _fail(f"patch does not apply to the starting checkout: {exc}")
        note = f"; ignored changes to {', '.join(ignored[:5])}" if ignored else ""
        return changes, note

    def _run(self, box: Sandbox, spec: ProjectSpec, raw: dict[str, bytes], buggy: dict[str, str],
             changes: dict[str, str | None], f2p: list[str], p2p: list[str], note: str) -> Verdict:
        files: dict[str, bytes | str] = dict(raw)
        files.update(buggy)
        for path, content in changes.items():
            if content is None:
                files.pop(path, None)
            else:
                files[path] = content
        run = judge(box, spec, files, sorted(p for p, c in changes.items() if c is not None), f2p, p2p,
                    per_test_timeout_s=self.per_test_timeout_s, total_timeout_s=self.total_timeout_s)
        if run.tampering:
            return _fail(f"tampering: {run.tampering}{note}")
        if run.no_record:
            return _fail(f"{run.no_record}{note}")
        bad_f2p = [t for t in f2p if not run.passed(t)]
        bad_p2p = [t for t in p2p if not run.passed(t)]
        total = len(f2p) + len(p2p)
        score = (total - len(bad_f2p) - len(bad_p2p)) / total if total else 0.0
        if bad_f2p or bad_p2p:
            worst = (bad_f2p + bad_p2p)[0]
            return Verdict(passed=False, score=score,
                           reason=f"FAIL_TO_PASS failing {len(bad_f2p)}/{len(f2p)}, PASS_TO_PASS failing "
                                  f"{len(bad_p2p)}/{len(p2p)} (e.g. {worst}: {run.outcomes.get(worst, 'not run')})"
                                  f"{note}")
        return Verdict(passed=True, score=1.0,
                       reason=f"all {len(f2p)} FAIL_TO_PASS and {len(p2p)} PASS_TO_PASS pass{note}")
