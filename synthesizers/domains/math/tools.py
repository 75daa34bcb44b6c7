"""The math domain's one tool: ``python``, run in the rollout's sandbox."""

from __future__ import annotations

import hashlib
import posixpath
import re
from typing import Any

from synthesizers.clip import clip
from synthesizers.domains.base import ToolContext, ToolError

_CODE_FENCE = re.compile(r"^\s*```(?:python|py)?\s*\n(.*?)\n?```\s*$", re.DOTALL)
MAX_CODE_CHARS = 20_000
MAX_OUTPUT_CHARS = 2_000  # per stream, as the model sees it (small context windows)


class PythonTool:
    """Runs a Python 3 program in the rollout's sandbox and reports what it printed."""

    name = "python"
    needs_sandbox = True
    schema = {
        "type": "function",
        "function": {
            "name": "python",
            "description": "Run a Python 3 program and return its exit code, stdout and stderr. "
            "Use print() to see values.",
            "parameters": {
                "type": "object",
                "properties": {"code": {"type": "string", "description": "A complete Python 3 program."}},
                "required": ["code"],
            },
        },
    }

    def __init__(self, timeout_s: float = 10.0):
        self.timeout_s = timeout_s

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        code = self._code(arguments)
        if ctx.sandbox is None:
            raise ToolError("the python tool has no sandbox to run in (none was given to this rollout)")
        # Content-addressed name: re-runs of the same code reuse the file, different code never clobbers.
        file_name = f"snippet_{hashlib.sha256(code.encode()).hexdigest()[:12]}.py"
        ctx.sandbox.put_files({file_name: code})
        path = posixpath.join(ctx.sandbox.workdir, file_name)
        result = ctx.sandbox.exec(["python3", path], timeout_s=self.timeout_s, workdir=ctx.sandbox.workdir)
        if result.timed_out:
            head = f"timed out after {self.timeout_s:g} s (killed)"
        else:
            head = f"exit code: {result.exit_code}"
        parts = [head, "stdout:", clip(result.stdout, MAX_OUTPUT_CHARS)]
        if result.stderr:
            parts += ["stderr:", clip(result.stderr, MAX_OUTPUT_CHARS)]
        if result.truncated:
            parts.append("[output was cut by the sandbox's size limit]")
        return "\n".join(parts)

    def _code(self, arguments: dict[str, Any]) -> str:
        if not isinstance(arguments, dict):
            raise ToolError("python takes a JSON object like {\"code\": \"print(1 + 1)\"}")
        extra = sorted(set(arguments) - {"code"})
        if extra:
            raise ToolError(f"python takes only the argument 'code'; unexpected: {', '.join(extra)}")
        code = arguments.get("code")
        if not isinstance(code, str) or not code.strip():
            raise ToolError("python needs 'code': a non-empty string holding a Python 3 program")
        fenced = _CODE_FENCE.match(code)
        if fenced:  # small models often wrap the program in a markdown fence
            code = fenced.group(1)
        if len(code) > MAX_CODE_CHARS:
            raise ToolError(f"code is too long ({len(code)} chars; at most {MAX_CODE_CHARS})")
        return code


