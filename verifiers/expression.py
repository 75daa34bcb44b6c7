"""Exact arithmetic over a side of a claim: ``+ - * / ** ( )`` on decimals, as fractions.

A small recursive-descent parser (no ``eval``): literals, exponents, sizes,
nesting and length are capped, so hostile text (``9**9**9**9``, 5,000-term sums)
is refused quickly instead of computed. ``readings`` also gives the other ways a
writer may have meant an expression (``a / b * c`` as ``a / (b * c)``, space-free
chunks as groups), for ``verifiers.arithmetic`` to give a claim the benefit of
the doubt.
"""

from __future__ import annotations

import re
from fractions import Fraction

MAX_DIGITS = 30  # a longer literal is not a hand computation
MAX_BITS = 4096  # stop evaluating before fractions get huge (2 ** 10 ** 6)
MAX_EXPONENT = 64
MAX_SIDE_CHARS = 200  # and parentheses nest at most MAX_DEPTH deep: hand computations are short
MAX_DEPTH = 20

NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_TOKEN = re.compile(r"\s*(\*\*|\d+(?:\.\d*)?|\.\d+|[-+*/()])")


class Unreadable(ValueError):
    """Not a complete numeric expression (or one too big to compute): not a claim."""


def evaluate(expr: str) -> Fraction:
    """The exact value of ``+ - * / ** ( )`` over decimals; ``Unreadable`` otherwise."""
    return readings(expr)[0]


def readings(expr: str) -> tuple[Fraction, ...]:
    """The value of ``expr`` by the usual precedence, then the other ways its writer may have
    meant it: ``a / b * c`` as ``a / (b * c)`` (``12*11*10 / 5*4*3``), and space-free chunks as
    groups (``80/39 / 35/39``). A claim is wrong only if it is wrong under every reading."""
    tokens, pos = [], 0
    expr = expr.rstrip()
    if len(expr) > MAX_SIDE_CHARS or expr.count("(") > MAX_DEPTH:
        raise Unreadable("too long")
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise Unreadable(expr)
        tokens.append(m.group(1))
        pos = m.end()
    values = [_parse(tokens, grouped=False)]
    for other in (lambda: _parse(tokens, grouped=True), lambda: readings(_spaced(expr))[0]):
        try:
            value = other()
        except (Unreadable, RecursionError):
            continue
        if value not in values:
            values.append(value)
    return tuple(values)


def _parse(tokens: list[str], grouped: bool) -> Fraction:
    parser = _Parser(tokens, grouped)
    value = parser.expression()
    if parser.pos != len(tokens):
        raise Unreadable(" ".join(tokens))
    return value


def _spaced(expr: str) -> str:
    """``expr`` with each space-free chunk that computes something in parentheses: written
    ``80/39 / 35/39``, spacing groups ``(80/39) / (35/39)``. Unchanged when nothing groups."""
    chunks = expr.split()
    if len(chunks) < 2:
        raise Unreadable("nothing grouped by spaces")
    wrapped = [f"({c})" if re.search(r"\d[-+*/]", c) and c.count("(") == c.count(")") else c for c in chunks]
    if wrapped == chunks:
        raise Unreadable("nothing grouped by spaces")
    return " ".join(wrapped)


class _Parser:
    """Recursive descent: expression := term (+|- term)*; term := unary (*|/ unary)*;
    unary := (+|-) unary | power; power := atom (** unary)?; atom := number | ( expression )."""

    def __init__(self, tokens: list[str], grouped: bool = False):
        self.tokens, self.pos = tokens, 0
        self.grouped = grouped  # a divisor takes the factors after it: a / b * c = a / (b * c)

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise Unreadable("ends early")
        self.pos += 1
        return token

    def expression(self) -> Fraction:
        value = self.term()
        while self._peek() in ("+", "-"):
            op, rhs = self._take(), self.term()
            value = _checked(value + rhs if op == "+" else value - rhs)
        return value

    def term(self) -> Fraction:
        value = self.unary()
        while self._peek() in ("*", "/"):
            op, rhs = self._take(), self.unary()
            if op == "/" and self.grouped:
                while self._peek() == "*":
                    self._take()
                    rhs = _checked(rhs * self.unary())
            if op == "/" and rhs == 0:
                raise Unreadable("division by zero")
            value = _checked(value * rhs if op == "*" else value / rhs)
        return value

    def unary(self) -> Fraction:
        if self._peek() in ("+", "-"):
            sign = -1 if self._take() == "-" else 1
            return sign * self.unary()
        return self.power()

    def power(self) -> Fraction:
        base = self.atom()
        if self._peek() != "**":
            return base
        self._take()
        exponent = self.unary()
        if exponent.denominator != 1 or abs(exponent) > MAX_EXPONENT or (base == 0 and exponent < 0):
            raise Unreadable("exponent")
        return _checked(base ** int(exponent))

    def atom(self) -> Fraction:
        token = self._take()
        if token == "(":
            value = self.expression()
            if self._take() != ")":
                raise Unreadable("unbalanced")
            return value
        if not NUMBER.fullmatch(token) or len(token.replace(".", "")) > MAX_DIGITS:
            raise Unreadable(token)
        if len(token) > 1 and token[0] == "0" and token[1].isdigit():
            raise Unreadable(token)  # "0010010" is a string of digits, not a number
        return Fraction(token)


def _checked(value: Fraction) -> Fraction:
    if value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
        raise Unreadable("too large")
    return value
