"""Function-level code verifier (HumanEval convention), run in a sandbox.

Task payload: ``{"prompt", "entry_point", "test"}`` where ``test`` defines
``check(candidate)``. The solution is the last ```` ```python ```` block of the
last assistant message (falling back to the last fenced block of any kind).
It is judged by ``function_harness.py`` inside the sandbox: a pass is only the
line ``TRAJFORGE-PASS <nonce>`` with a fresh 128-bit nonce the solution never
sees, printed after ``check(candidate)`` returned, with exit code 0. Early
exits, fake output, tampering and timeouts therefore all read as failures.
"""

from __future__ import annotations

import re
import secrets
import uuid
from pathlib import Path

from sandboxes.base import Sandbox
from schemas import Message, Task, Verdict
from verifiers.base import last_assistant_text

HARNESS_SOURCE = (Path(__file__).parent / "function_harness.py").read_text()
DEFAULT_TIMEOUT_S = 10.0
MAX_SOLUTION_CHARS = 200_000

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)```", re.DOTALL)
_UNCLOSED_PYTHON = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\n(.*)\Z", re.DOTALL | re.IGNORECASE)
_PYTHON_TAGS = {"python", "python3", "py"}


def extract_code_block(text: str) -> str | None:
    """The last ```python block; else the last fenced block; else an unclosed trailing ```python block."""
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]
    python = [code for tag, code in blocks if tag in _PYTHON_TAGS]
    if python:
        return python[-1]
    if blocks:
        return blocks[-1][1]
    # A reply cut off by the token budget often ends inside its code block.
    tail = _UNCLOSED_PYTHON.search(text)
    return tail.group(1) if tail else None


def _fail(reason: str) -> Verdict:
    return Verdict(passed=False, score=0.0, reason=reason)


class FunctionCodeVerifier:
    domain = "code"
    kind = "function"
    needs_sandbox = True

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.timeout_s = timeout_s

    def verify(self, task: Task, messages: list[Message], sandbox: Sandbox | None = None) -> Verdict:
        payload = task.payload
        missing = [k for k in ("entry_point", "test") if not payload.get(k)]
        if missing:
            return _fail(f"task lacks {', '.join(missing)}")
        code = extract_code_block(last_assistant_text(messages))
        if code is None or not code.strip():
            return _fail("no code block")
        if len(code) > MAX_SOLUTION_CHARS:
            return _fail("solution too long")
        if sandbox is None:
            return _fail("function-level code needs a sandbox")
        return self._run(sandbox, payload, code)

    def _run(self, sandbox: Sandbox, payload: dict, code: str) -> Verdict:
        nonce = secrets.token_hex(16)
        run_dir = f".verify-{uuid.uuid4().hex[:12]}"
        sandbox.put_files({
            f"{run_dir}/nonce": nonce,
            f"{run_dir}/prompt.py": str(payload.get("prompt", "")),
            f"{run_dir}/test.py": str(payload["test"]),
            f"{run_dir}/solution.py": code,
            f"{run_dir}/entry_point": str(payload["entry_point"]),
            f"{run_dir}/harness.py": HARNESS_SOURCE,
        })
        result = sandbox.exec(["python3", "-I", "-B", f"{run_dir}/harness.py", run_dir], timeout_s=self.timeout_s)
        if result.timed_out:
            return _fail("timeout")
        lines = result.stdout.splitlines()
        if result.exit_code == 0 and f"TRAJFORGE-PASS {nonce}" in lines:
            return Verdict(passed=True, score=1.0, reason="passed")
        return _fail(_failure_reason(lines, result.stderr, result.exit_code))


def _failure_reason(stdout_lines: list[str], stderr: str, exit_code: int | None) -> str:
    # The harness's own FAIL line is the most precise; a solution may fake one, but
    # a reason is only a message, never a pass.
    for line in reversed(stdout_lines):
        if line.startswith("TRAJFORGE-FAIL "):
            return line[len("TRAJFORGE-FAIL "):]
    tail = stderr.strip().splitlines()[-1:] or [""]
    return f"no pass signal (exit code {exit_code}){': ' + tail[0][:200] if tail[0] else ''}"
