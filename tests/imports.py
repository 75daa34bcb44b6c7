"""The import graph of a source file, for the room-rule tests (DESIGN.md: which room may
import which). Read with ``ast``, not by importing: a lazy import inside a function counts
as much as one at the top, and nothing runs."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOMS = frozenset({"schemas", "environments", "synthesizers", "sandboxes", "verifiers", "pipelines", "trainer", "bench"})


def imported_modules(path: Path) -> set[str]:
    """Every absolute module ``path`` imports (``from a.b import c`` gives ``a.b``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def imported_tops(path: Path) -> set[str]:
    """The top-level packages ``path`` imports (project rooms and third-party alike)."""
    return {name.split(".")[0] for name in imported_modules(path)}
