"""Room rules by the import graph (AST, so a lazy import inside a function counts too):
environments/ imports nothing of the project but schemas, and verifiers/ imports no
synthesizer — a verifier replays on environments/, it never runs a domain plug-in."""

from __future__ import annotations

import sys

from environments.base import ENVIRONMENTS
from tests.imports import ROOMS, ROOT, imported_tops


def test_environments_import_only_schemas_and_the_standard_library():
    files = sorted((ROOT / "environments").rglob("*.py"))
    assert len(files) >= 7
    for path in files:
        names = imported_tops(path)
        assert names & ROOMS <= {"schemas", "environments"}, path
        outside = {n for n in names - ROOMS if n not in sys.stdlib_module_names and n != "__future__"}
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
        assert not imported_tops(path) & {"synthesizers", "pipelines", "trainer"}, path
