"""The Agentic-CoT five-phase format: tags, prompts, parser and structure check.

Assistant text carries five phases as tags, in order — ``<analysis>``,
``<plan>``, ``<action>``, ``<reflection>``, ``<summary>`` — where action may
repeat with tool calls between. This package is a leaf (it imports only the
standard library and ``schemas``) because the verifier uses the same parser
and structure check as the synthesizer: the format is a contract, like schemas.
"""

from synthesizers.agentic_cot.format import PHASES, render_phases
from synthesizers.agentic_cot.parser import Phase, ParseResult, parse_messages, parse_text
from synthesizers.agentic_cot.structure import StructureReport, check_structure, first_action_message

__all__ = [
    "PHASES",
    "render_phases",
    "Phase",
    "ParseResult",
    "parse_messages",
    "parse_text",
    "StructureReport",
    "check_structure",
    "first_action_message",
]
