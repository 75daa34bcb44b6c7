"""Agentic-CoT construction: prompts (``format``), rewrite material (``sources``)
and phase-by-phase generation (``phased``).

The format itself — phase names, parser, structure check — is a contract shared
with the verifier and lives in ``schemas.agentic_cot``; it is re-exported here.
"""

from schemas.agentic_cot import (
    PHASES,
    ParseResult,
    Phase,
    StructureReport,
    check_structure,
    first_action_message,
    mask_code,
    parse_messages,
    parse_text,
    render_phases,
)

__all__ = [
    "PHASES",
    "render_phases",
    "Phase",
    "ParseResult",
    "mask_code",
    "parse_messages",
    "parse_text",
    "StructureReport",
    "check_structure",
    "first_action_message",
]
