"""Function-level tasks cut from real projects: splice the model's function into the checkout.

The task's checkout (pristine + ``bug_patch``) has the function's body blanked.
The model's answer is the last ```` ```python ```` block of its last assistant
message; the top-level ``def`` named ``function.name`` in it (plus any
top-level imports of the block, put just above) replaces the blanked def in
``function.path``. ``RepoCodeVerifier`` then runs FAIL_TO_PASS / PASS_TO_PASS
exactly as for repo-level tasks (tests pristine, JUnit at a random path).
"""

from __future__ import annotations

import ast
import threading

from schemas import Message, Task, Verdict
from verifiers.base import last_assistant_text
from verifiers.code_function import extract_code_block

MAX_SOLUTION_CHARS = 50_000
# CPython 3.11's AST conversion keeps its recursion counter per interpreter, so two threads
# parsing at once can fail with "SystemError: AST constructor recursion depth mismatch"
# (seen with concurrent verifications here; python/cpython#106905). Verifiers run in threads.
_AST_LOCK = threading.Lock()


def splice_function(source: str, name: str, block: str) -> str:
    """``source`` with its top-level ``def name`` replaced by the one in ``block``; ValueError if impossible."""
    with _AST_LOCK:
        return _splice(source, name, block)


def _splice(source: str, name: str, block: str) -> str:
    new_tree = ast.parse(block)
    new_def = next((n for n in new_tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and n.name == name), None)
    if new_def is None:
        raise ValueError(f"no top-level `def {name}` in the answer")
    imports = [ast.get_source_segment(block, n) for n in new_tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    block_lines = block.splitlines(keepends=True)
    start = (new_def.decorator_list[0].lineno if new_def.decorator_list else new_def.lineno) - 1
    replacement = "".join(block_lines[start:new_def.end_lineno])
    if not replacement.endswith("\n"):
        replacement += "\n"
    old_tree = ast.parse(source)
    old_def = next((n for n in old_tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and n.name == name), None)
    if old_def is None:
        raise ValueError(f"`def {name}` not found in the checkout")
    lines = source.splitlines(keepends=True)
    first = (old_def.decorator_list[0].lineno if old_def.decorator_list else old_def.lineno) - 1
    head = "".join(f"{imp}\n" for imp in imports if imp)
    out = "".join(lines[:first]) + head + replacement + "".join(lines[old_def.end_lineno:])
    compile(out, "<spliced>", "exec")
    return out


def function_candidate(task: Task, messages: list[Message], buggy: dict[str, str]
                       ) -> Verdict | tuple[dict[str, str | None], str]:
    spec = task.payload["function"]
    code = extract_code_block(last_assistant_text(messages))
    if not code or not code.strip():
        return Verdict(passed=False, score=0.0, reason="no code block")
    if len(code) > MAX_SOLUTION_CHARS:
        return Verdict(passed=False, score=0.0, reason="solution too long")
    path = spec["path"]
    if path not in buggy:
        return Verdict(passed=False, score=0.0, reason=f"task unusable: {path} not in the checkout")
    try:
        spliced = splice_function(buggy[path], spec["name"], code)
    except (SyntaxError, ValueError) as exc:
        return Verdict(passed=False, score=0.0, reason=f"answer cannot be used: {exc}")
    return {path: spliced}, ""
