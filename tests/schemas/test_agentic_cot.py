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


def test_the_domain_package_uses_the_schema_format_not_a_copy():
    import schemas.agentic_cot as contract
    from synthesizers.domains.agentic_cot import controllers, prompts

    assert controllers.parse_text is contract.parse_text and prompts.PHASES is contract.PHASES


def test_a_phase_that_restates_another_word_for_word_fails():
    from schemas.agentic_cot import check_structure, render_phases

    same = "The remainder is 1. The final answer is 1."
    phases = [("analysis", "When a number is divided by 3, the remainder is 1."), ("plan", same),
              ("action", "1. " + same.lower()), ("reflection", "Check: 3 * 16 + 1 = 49."), ("summary", "\\boxed{1}")]
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": render_phases(phases)}]
    report = check_structure(messages)
    assert not report.ok and report.reason == "<action> in message 1 repeats the <plan> word for word"
    assert check_structure(messages, allow_repeats=True).ok
    distinct = [p if p[0] != "action" else ("action", "49 = 3 * 16 + 1.") for p in phases]
    assert check_structure([messages[0], {"role": "assistant", "content": render_phases(distinct)}]).ok


def test_two_steps_of_a_loop_may_say_the_same():
    from schemas.agentic_cot import check_structure, render_phases

    phases = [("analysis", "Two files to fix."), ("plan", "Fix each, then test."), ("action", "Run the tests."),
              ("reflection", "One fails."), ("action", "Run the tests."), ("reflection", "All pass."),
              ("summary", "Both fixed.")]
    assert check_structure([{"role": "user", "content": "q"},
                            {"role": "assistant", "content": render_phases(phases)}]).ok
