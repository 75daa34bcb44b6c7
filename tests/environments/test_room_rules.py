"""Room rules by the import graph (AST, so a lazy import inside a function counts too):
environments/ imports nothing of the project but schemas, and verifiers/ imports no
synthesizer — a verifier replays on environments/, it never runs a domain plug-in."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from environments.base import ENVIRONMENTS

ROOT = Path(__file__).resolve().parents[2]
PROJECT_ROOMS = {"schemas", "environments", "synthesizers", "sandboxes", "verifiers", "pipelines", "trainer", "bench"}


def imported_rooms(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
    return names


def test_environments_import_only_schemas_and_the_standard_library():
    files = sorted((ROOT / "environments").rglob("*.py"))
    assert len(files) >= 7
    for path in files:
        names = imported_rooms(path)
        assert names & PROJECT_ROOMS <= {"schemas", "environments"}, path
        outside = {n for n in names - PROJECT_ROOMS if n not in sys.stdlib_module_names and n != "__future__"}
        assert not outside, (path, outside)


def test_every_registered_environment_lives_in_the_room():
    """``make_env`` imports by name: a registry entry outside environments/ would be a
    dependency the import check cannot see."""
    assert set(ENVIRONMENTS) == {"tau2-airline", "tau2-retail", "tau2-telecom", "files"}
    for target in ENVIRONMENTS.values():
        assert target.startswith("environments."), target


def test_verifiers_import_no_synthesizer_or_pipeline():
    files = sorted((ROOT / "verifiers").rglob("*.py"))
    assert len(files) >= 10
    for path in files:
        assert not imported_rooms(path) & {"synthesizers", "pipelines", "trainer"}, path
