"""Exact evaluation of a claim's side, and its refusals."""

from __future__ import annotations

from fractions import Fraction

import pytest

from verifiers.expression import Unreadable, evaluate, readings


@pytest.mark.parametrize("expr, value", [
    ("2 + 3 * 4", 14), ("(2 + 3) * 4", 20), ("2 ** 3 ** 2", 512), ("-3 ** 2", -9), ("7 / 2", Fraction(7, 2)),
    ("0.1 + 0.2", Fraction(3, 10)), ("((1)/(3))", Fraction(1, 3)),
])
def test_evaluate_is_exact(expr, value):
    assert evaluate(expr) == value


@pytest.mark.parametrize("expr", ["2 ** 100000", "9 ** 9 ** 9", "1" * 40 + " * 2", "2 ** 0.5", "0 ** -1", "(1 + 2", "+"])
def test_evaluate_refuses_what_is_huge_or_malformed(expr):
    with pytest.raises(Unreadable):
        evaluate(expr)



def test_other_readings_come_after_the_usual_one():
    assert readings("12*11*10*9*8 / 5*4*3*2*1") == (456192, 792)
    assert readings("80/39 / 35/39") == (Fraction(16, 10647), Fraction(16, 7))
    assert readings("2 + 3") == (5,)
