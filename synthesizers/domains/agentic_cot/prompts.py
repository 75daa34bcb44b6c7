"""The five phases, their tags, and the prompts that ask a model for them.

Two construction paths share these texts: direct generation (the underlying
domain's own system prompt plus ``FORMAT_INSTRUCTIONS``) and the rewrite of
existing material (``REWRITE_SYSTEM`` + ``rewrite_user``). The underlying
domain decides how a final answer must look (``ANSWER_FORMATS``), because its
verifier reads the answer from the summary.
"""

from __future__ import annotations

from schemas.agentic_cot import PHASES, render_phases  # noqa: F401  (the format contract)

# How each underlying domain's verifier expects the final answer to be written
# (the summary must state it in that form). Unknown domains get the generic hint.
ANSWER_FORMATS = {
    "math": "the final answer in \\boxed{}, e.g. \\boxed{42}",
    "code": "the complete final solution in one ```python code block",
    "deep-research": "a line 'Final answer: <short answer>' and a line 'Citations: <doc_id>, ...'",
    "tool-use": "what was done and the outcome, in one or two sentences",
}
GENERIC_ANSWER_FORMAT = "the final answer, stated plainly"

FORMAT_INSTRUCTIONS = """\
Write your whole answer in five phases, each wrapped in its tag, in this order:
<analysis>what the task asks, the givens, what is unknown</analysis>
<plan>the numbered steps you will take</plan>
<action>carry out a step; call a tool here if you need one</action>
<reflection>check the result of the actions: is it right, is anything missing?</reflection>
<summary>the conclusion, with {answer_format}</summary>
You may write several <action> phases (one per tool call) before the <reflection>. \
Write nothing outside the tags."""

EXAMPLE = """\
Example:
<analysis>We need the sum of 17 and 25.</analysis>
<plan>1. Add the numbers. 2. Check the sum.</plan>
<action>17 + 25 = 42.</action>
<reflection>42 - 25 = 17, so the sum is right.</reflection>
<summary>The sum is \\boxed{42}.</summary>"""

REWRITE_SYSTEM = """\
You reorganize a worked solution into five phases without changing its result. \
Use only the reasoning in the given solution; keep every number and the final answer exactly.
""" + FORMAT_INSTRUCTIONS


def answer_format(domain: str) -> str:
    return ANSWER_FORMATS.get(domain, GENERIC_ANSWER_FORMAT)


def format_instructions(domain: str, *, example: bool = True) -> str:
    text = FORMAT_INSTRUCTIONS.format(answer_format=answer_format(domain))
    # The worked example is math-shaped; other domains only get the schema.
    return text + ("\n" + EXAMPLE if example and domain == "math" else "")


def rewrite_system(domain: str) -> str:
    return REWRITE_SYSTEM.format(answer_format=answer_format(domain)) + "\n" + EXAMPLE


def rewrite_user(problem: str, solution: str) -> str:
    return f"Problem:\n{problem.strip()}\n\nSolution to reorganize:\n{solution.strip()}\n\nNow write the five phases."

