"""Arithmetic claims in a model's prose, checked exactly: ``72 / 9 = 9`` is wrong.

A trajectory whose boxed answer is right can still teach wrong work: the
embedded model writes ``400 * 50 = 2000`` and then boxes 200, or ``72 ÷ 9 = 9``
and boxes 8 (runs/demo). For mid-training that is worse than no row, so the math
verifier fails such trajectories (they are then cut and re-rolled like any
failure) unless the run config says otherwise.

A *claim* is two neighbouring sides of an ``=`` chain on one line, both purely
numeric (numbers, ``+ - * / ^``, parentheses, ``%``, ``X% of Y``; LaTeX ``\\times \\cdot \\div
\\frac``, ``×``, ``÷`` and ``4 x 5`` are read as operators), at least one side a
computation. Sides are evaluated with exact fractions (``verifiers.expression``,
no ``eval``), so ``0.1 + 0.2 = 0.3`` holds. A side written as a decimal with k
places may be the value rounded or truncated to k places (``2/3 = 0.66`` and
``0.67`` hold, ``1/7 = 0.15`` does not).

Precision over recall, because a false alarm throws away a good trajectory:
code (fenced or inline) is skipped, and a side is only read when nothing can be
glued to it — not after a letter (``6x + 14 = 20``), a closing bracket or an
operator word (``half of 300 = 150``, ``sqrt 16 = 4``, ``choose``), not before
``x``, ``^{...}``, ``times`` or ``remainder``. A sentence that tests, denies or
works modulo an equation (``check if``, ``which is not true``, ``?``, ``mod``) is
not read; list bullets are not minus signs; ``a / b * c`` and space-grouped
``80/39 / 35/39`` count as right if any reading makes them right; a float's
printout may be off by 1e-9 relative. Measured on CHAMP (PyPI ``champ-dataset``):
its 270 human solutions give 40 claims and no alarm; of a sample of 60 alarms
in its 43,475 model solutions, 59 were real errors.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from fractions import Fraction

from verifiers.expression import NUMBER, Unreadable, readings

CONTEXT_CHARS = 120  # how far around a run its context is read (words glued to it, its sentence)
FLOAT_NOISE = 1e-9  # relative difference that decimals may show from being computed in floating point

# Words that make the number beside them part of a larger expression.
OPERATOR_WORDS = frozenset(
    "of times plus minus by over into sqrt root log ln lg exp sin cos tan divided multiplied squared cubed "
    "power powers mod modulo percent half twice double triple thrice quarter third "
    "remainder rem r choose".split()  # "25 ÷ 3 = 8 remainder 1", "(99 + 2) choose 2 = 4950"
)
# A sentence that tests or denies an equation, or works modulo something, is not claiming it:
# "check if 4 * 2506 = 6052", "so 2 = 4 * 8, which is not true", "12 + 4 = 4 (mod 12)",
# "25 ÷ 9 = 2, with a remainder of 7" (integer division).
_NOT_A_CLAIM = re.compile(r"\b(?:check(?:ing)? (?:if|whether)|whether|is not|isn't|not (?:true|equal)|false|"
                          r"contradiction|impossible|mod(?:ulo|ulus)?|remainders?)\b|[?≡≠]", re.I)
_SENTENCE_END = re.compile(r"(?<!\d)[.!?;](?:\s|$)|[.!?;](?=\s+[A-Z])")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_BOUNDARY_BEFORE = set("(:;,=[{$.?") | {"\n"}  # not "!": "8! - 1260" is a factorial
_GLUE_AFTER = set("\\{_^%![")

_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`|<tool_call>.*?(?:</tool_call>|\Z)", re.S)
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_UNWRAP = re.compile(r"\\(?:boxed|mathbf|mathrm|textbf)\s*\{([^{}]*)\}")
_BOLD = re.compile(r"(?<![\w*])\*\*(?=\S)([^*\n]+?)(?<=\S)\*\*(?![\w*])")
_BRACED_POWER = re.compile(r"\^\s*\{\s*([-+]?\d+)\s*\}")
_THOUSANDS = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?![\d,]|\.\d)")
_TIMES_X = re.compile(r"(?<=\d) [xX] (?=\d)")
_PERCENT_OF = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(?:\\%|%)\s+of\s+(\d+(?:\.\d+)?)(?![\d.]*\w)")
_PERCENT = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(?:\\%|%)")
_REPLACE = [
    ("\\left", ""), ("\\right", ""), ("\\times", "*"), ("\\cdot", "*"), ("\\ast", "*"), ("\\div", "/"),
    ("{,}", ""), ("\\,", ""), ("\\;", " "), ("\\!", ""), ("\\(", " "), ("\\)", " "), ("\\[", " "),
    ("\\]", " "), ("$", " "), ("×", "*"), ("∗", "*"), ("·", "*"), ("⋅", "*"), ("÷", "/"), ("∕", "/"),
    ("−", "-"),
]
# A point followed by a space or the line's end closes a sentence ("1. 4 * 5 = 20."), not a number.
_RUN = re.compile(r"(?:[0-9+\-*/()= \t]|\.(?![ \t]|$))+")


@dataclass(frozen=True)
class Claim:
    left: str
    right: str
    left_value: Fraction
    right_value: Fraction
    holds: bool

    def __str__(self) -> str:
        return f"{self.left} = {self.right}"

    def explain(self) -> str:
        """``'72/9 = 9' (72/9 is 8)`` — the side that is a computation, with its value."""
        side, value = (self.left, self.left_value) if _is_computation(self.left) else (self.right, self.right_value)
        return f"'{self}' ({side} is {_show(value)})"


def arithmetic_claims(text: str) -> list[Claim]:
    """Every checkable claim in ``text``, in order (see the module docstring)."""
    claims: list[Claim] = []
    # "- 5^2 = 25" is a list item, not minus 25 (but "\[ - \frac{1}{4} + …" keeps its minus)
    text = "\n".join(_BULLET.sub("", line) for line in _CODE.sub(" ", text).splitlines())
    for line in normalize(text).splitlines():
        runs = [m for m in _RUN.finditer(line) if "=" in m.group(0)]
        if not runs:
            continue
        ends = [m.end() for m in _SENTENCE_END.finditer(line)]
        for match in runs:
            if not _NOT_A_CLAIM.search(_sentence_around(line, ends, match.start(), match.end())):
                claims.extend(_claims_in_run(line, match))
    return claims


def _sentence_around(line: str, ends: list[int], start: int, end: int) -> str:
    """The sentence of ``line`` that holds ``line[start:end]`` (``ends``: where sentences end)."""
    i = bisect.bisect_right(ends, start)
    j = bisect.bisect_left(ends, end)
    lo = max(ends[i - 1] if i else 0, start - CONTEXT_CHARS)
    return line[lo: min(ends[j] if j < len(ends) else len(line), end + CONTEXT_CHARS)]


def wrong_claims(text: str) -> list[Claim]:
    return [c for c in arithmetic_claims(text) if not c.holds]


def normalize(text: str) -> str:
    """LaTeX, Unicode and prose arithmetic rewritten as plain ``+ - * / ** ( )``."""
    text = _BOLD.sub(r"\1", text)
    for _ in range(3):  # nested \frac / \boxed, innermost first
        text = _FRAC.sub(_frac, _UNWRAP.sub(r"\1", text))
    for old, new in _REPLACE:
        text = text.replace(old, new)
    text = _BRACED_POWER.sub(r"**\1", text).replace("^", "**")
    text = _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), text)
    text = _TIMES_X.sub(" * ", text)
    text = _PERCENT_OF.sub(r"(\1/100*\2)", text)  # "25% of 300" is a product
    return _PERCENT.sub(r"(\1/100)", text)


def _frac(match: re.Match) -> str:
    num, den = (part.strip() for part in match.groups())
    wrap = [p if NUMBER.fullmatch(p) else f"({p})" for p in (num, den)]
    return f"({wrap[0]}/{wrap[1]})"


def _claims_in_run(line: str, match: re.Match) -> list[Claim]:
    run = match.group(0)
    if "=" not in run:
        return []
    sides = re.split(r"=+", run)
    values: list[tuple[Fraction, ...] | None] = []
    for i, side in enumerate(sides):
        ok = bool(side.strip())
        if ok and i == 0:
            ok = _complete_before(line, match.start() + len(side) - len(side.lstrip()), side)
        if ok and i == len(sides) - 1:
            ok = _complete_after(line, match.end(), side)
        try:
            values.append(readings(_strip_period(side)) if ok else None)
        except Unreadable:
            values.append(None)
    claims = []
    for i in range(len(sides) - 1):
        a, b = values[i], values[i + 1]
        left, right = _tidy(sides[i]), _tidy(sides[i + 1])
        if a is None or b is None or not (_is_computation(left) or _is_computation(right)):
            continue
        # Wrong only if wrong however an ambiguous "a / b * c" is read.
        pairs = [(x, y) for x in a for y in b]
        holding = next(((x, y) for x, y in pairs if _equal(left, x, right, y)), None)
        x, y = holding or pairs[0]
        claims.append(Claim(left, right, x, y, holding is not None))
    return claims


def _complete_before(line: str, start: int, side: str) -> bool:
    before = line[max(0, start - CONTEXT_CHARS):start]  # bounded: a long line has many runs
    if not before.strip():
        return side.lstrip()[:1] not in "+*/"
    if side.lstrip()[:1] in "+-*/":
        # "6x + 14 = 20", "x - 3 = 5": the run starts mid-expression; a sign only at a boundary
        return side.lstrip()[0] == "-" and before.rstrip()[-1] in _BOUNDARY_BEFORE
    if not before[-1].isspace():
        return before[-1] in _BOUNDARY_BEFORE
    stripped = before.rstrip()
    if stripped[-1].isalpha():
        word = re.search(r"[A-Za-z]+$", stripped).group(0).lower()
        return word not in OPERATOR_WORDS and not stripped[:-len(word)].endswith("\\")
    return stripped[-1] in _BOUNDARY_BEFORE


def _complete_after(line: str, end: int, side: str) -> bool:
    if _strip_period(side).rstrip()[-1:] in "+-*/(":
        return False
    after = line[end:end + CONTEXT_CHARS]
    if not after:
        return True
    if not side[-1:].isspace():
        return not (after[0].isalnum() or after[0] in _GLUE_AFTER)
    word = re.match(r"[A-Za-z]+", after)
    return word is None or word.group(0).lower() not in OPERATOR_WORDS


def _strip_period(side: str) -> str:
    # "... = 75." ends a sentence; "75.5" keeps its point.
    stripped = side.rstrip()
    return stripped[:-1] if stripped.endswith(".") and not stripped.endswith("..") else stripped


def _tidy(side: str) -> str:
    return " ".join(_strip_period(side).split())


def _is_computation(side: str) -> bool:
    return NUMBER.fullmatch(side.lstrip("-+ ").strip()) is None


def _equal(left: str, a: Fraction, right: str, b: Fraction) -> bool:
    if a == b:
        return True
    if "." in left + right and abs(a - b) <= FLOAT_NOISE * max(abs(a), abs(b)):
        return True  # a float's printout: 1 + 21/5.05 = 5.158415841584159
    # A decimal written with k places may be the value rounded (half a unit in the last place
    # off) or truncated (below the value by less than a unit, 2/3 = 0.66).
    for written, shown, value in ((left, a, b), (right, b, a)):
        if _is_computation(written) or "." not in written or not _is_computation(left if written is right else right):
            continue
        unit = Fraction(1, 10 ** len(written.split(".")[1]))
        truncated = shown * value >= 0 and 0 <= abs(value) - abs(shown) < unit
        if abs(value - shown) <= unit / 2 or truncated:
            return True
    return False


def _show(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.6g}"
