"""The five-phase format is a contract in ``schemas``: it imports nothing of the
project, and the Agentic-CoT verifier takes it from there, not from synthesizers."""

from __future__ import annotations

import sys

from tests.imports import ROOMS, ROOT, imported_modules, imported_tops


def test_format_module_imports_only_the_standard_library():
    mods = imported_tops(ROOT / "schemas" / "agentic_cot.py")
    assert not mods & ROOMS
    assert mods <= set(sys.stdlib_module_names) | {"__future__"}


def test_agentic_cot_verifier_does_not_import_synthesizers():
    mods = imported_modules(ROOT / "verifiers" / "agentic_cot.py")
    assert "schemas.agentic_cot" in mods
    assert not any(m.split(".")[0] == "synthesizers" for m in mods)


def test_synthesizer_package_reexports_the_schema_format():
    import schemas.agentic_cot as contract
    import synthesizers.agentic_cot as package

    assert package.check_structure is contract.check_structure and package.parse_text is contract.parse_text
