"""Arithmetic claims: wrong steps are caught, right ones and non-claims are left alone."""

from __future__ import annotations

import pytest

from verifiers.arithmetic import arithmetic_claims, wrong_claims


def claims(text: str) -> list[tuple[str, bool]]:
    return [(str(c), c.holds) for c in arithmetic_claims(text)]


# Taken from the embedded model's own passing math trajectories (runs/demo): right box, wrong work.
@pytest.mark.parametrize("text, wrong", [
    ("You can find the answer by multiplying 400 by 50. 400 * 50 = 2000. Therefore", "400 * 50 = 2000"),
    ("72 ÷ 9 = 9.", "72 / 9 = 9"),
    ("6x = 72 * 6 = 480", "72 * 6 = 480"),
    ("This is because 49 = 2*60 + 1, which means", "49 = 2*60 + 1"),
    (r"$\frac{1}{4} = 2$", "(1/4) = 2"),
    (r"so $3 \times 4 + 2 = 24$", "3 * 4 + 2 = 24"),
    ("1/7 = 0.15", "1/7 = 0.15"),
    ("10 / 3 = 3.4", "10 / 3 = 3.4"),
    (r"\boxed{2 + 2 = 5}", "2 + 2 = 5"),
    ("**4 + 4 = 9**", "4 + 4 = 9"),
    ("-2/3 = 0.66", "-2/3 = 0.66"),
    ("25% of 300 = 7", "(25/100*300) = 7"),
])
def test_wrong_steps_are_caught(text, wrong):
    found = wrong_claims(text)
    assert [str(c) for c in found] == [wrong]
    assert "is" in found[0].explain()


def test_every_link_of_a_chain_is_checked():
    assert claims("6 * 6 = 480 / 6 = 10") == [("6 * 6 = 480 / 6", False), ("480 / 6 = 10", False)]
    assert claims("4 * 2 + 2 = 8 + 2 = 10") == [("4 * 2 + 2 = 8 + 2", True), ("8 + 2 = 10", True)]


@pytest.mark.parametrize("text", [
    "0.25 * 300 = 75.",
    "0.1 + 0.2 = 0.3",  # exact fractions, not floats
    "2/3 = 0.66 and 2/3 = 0.67 and 22/7 = 3.14 and 1/3 = 0.3333",  # truncated or rounded
    "-2/3 = -0.66",
    r"$\dfrac{10}{4} = 2.5$ and $10 \div 4 = 2.5$ and $2 \cdot 3 = 6$",
    "1,000 * 3 = 3,000 and 4 x 5 = 20",
    "$3^2 + 4^{2} = 5^2$ and 2^{10} = 1024 and 10^{-2} = 0.01 and (-3)^2 = 9",
    "50% = 0.5 and 25% of 300 = 75 and 12.5% of 80 = 10",
    "1. 4 * 5 = 20. 2. 3 + 3 = 6",
])
def test_right_steps_hold(text):
    assert claims(text) and all(holds for _, holds in claims(text)), claims(text)


@pytest.mark.parametrize("text", [
    # Not claims: a side glued to a variable, a function, an operator word or a bracket.
    "6x + 14 - 14 = 74 - 14",
    "x - 3 = 5 and 2x + 3 = 7 and (x) - 3 = 5",
    "f(2) = 7",
    "sqrt 16 = 5",
    "half of 10 = 6",
    "10% of the 300 = 3",
    "3 times 4 = 13",
    "5 = 2 + 3 times 2",
    "2 = 2^{x}",
    "x = 10 and y = 3",
    # Unreadable sides: not a claim either.
    "3.333... = 10/3",
    "1/0 = 5",
    "9 9 = 81",
    "2(3 + 4) = 15",
    "5! = 121",
    # Code is code, not prose: assignments and asserts are skipped.
    "```python\nx = 4 * 5 = 21\nassert 2 + 2 == 5\n```",
    "Run `y = 2 + 2 = 5` to see.",
    "<tool_call>{\"code\": \"2 + 2 = 5\"}</tool_call>",
    # Approximations are not equalities.
    "22/7 ≈ 3",
    # Seen in CHAMP's model solutions, where a flag would have been wrong:
    "- \\( 749 + 1 = 750 \\) is not a multiple of 8.",  # a list bullet, not a minus
    "25 ÷ 3 = 8 remainder 1",
    "25 divided by 9: 25 ÷ 9 = 2, with a remainder of 7.",
    "(99 + 3 - 1) choose (3 - 1) = 101 choose 2 = 5050",
    "Let's check if \\( 4 \\times 2506 = 6052 \\):",  # a test, not a claim
    "so 2 = 4 * 8, which is not true.",
    "Is 2 + 2 = 5?",
    "12 + 4 = 4 (mod 12)",
    "$8! - 1260 - 6720 = 120$",  # a factorial, not the end of a sentence
    "w_3 = 0010010 = 001 \\cdot 001 \\cdot 0",  # strings of digits
])
def test_non_claims_are_left_alone(text):
    assert wrong_claims(text) == []


def test_a_b_times_c_is_wrong_only_if_wrong_both_ways():
    # 12*11*10*9*8 / 5*4*3*2*1 means 12*11*10*9*8 / (5*4*3*2*1) to whoever writes C(12, 5) like that
    assert claims("C(12, 5) = 12*11*10*9*8 / 5*4*3*2*1 = 792.") == [("12*11*10*9*8 / 5*4*3*2*1 = 792", True)]
    assert claims("1/2 * 4 = 2") == [("1/2 * 4 = 2", True)]
    assert claims("1/2 * 4 = 3") == [("1/2 * 4 = 3", False)]


def test_spacing_groups_fractions_and_floats_may_show_their_noise():
    assert claims("x = 80/39 / 35/39 = 80/35 = 16/7") == [("80/39 / 35/39 = 80/35", True), ("80/35 = 16/7", True)]
    assert claims("x_21 = 1 + 21/5.05 = 5.158415841584159.") == [("1 + 21/5.05 = 5.158415841584159", True)]
    assert claims("80/39 / 35/39 = 80/36") == [("80/39 / 35/39 = 80/36", False)]


def test_a_leading_minus_in_display_math_is_a_minus():
    text = r"\[ - \frac{1}{4} + \frac{1}{5} = \frac{-5 + 4}{20} \]"
    assert claims(text) == [("- (1/4) + (1/5) = ((-5 + 4)/20)", True)]


def test_a_claim_beside_a_denied_one_is_still_read():
    assert claims("so 2 = 4 * 8, which is not true. Then 3 * 3 = 10.") == [("3 * 3 = 10", False)]
    assert claims("- 5^2 = 26") == [("5**2 = 26", False)]


def test_two_bare_numbers_are_not_a_claim():
    assert claims("Step 3 = 5") == []


def test_adversarial_text_never_raises_and_reads_bounded_context(monkeypatch):
    from verifiers import arithmetic

    hostile = ("(" * 500 + "1" + ")" * 500 + " = 1\n") + ("9**9**9**9 = 1 " * 200) + ("1+" * 5000 + "1 = 3\n")
    hostile += "2 + 2 = 4. " * 5000 + "\n" + "a 1 = 1 " * 5000  # one long line, many runs
    # No quadratic reads: the context read around each run is bounded, however long its line (the
    # speed itself is a benchmark's business, not a test's).
    extra: list[int] = []
    real = arithmetic._sentence_around

    def spy(line, ends, start, end):
        context = real(line, ends, start, end)
        extra.append(len(context) - (end - start))
        return context

    monkeypatch.setattr(arithmetic, "_sentence_around", spy)
    wrong_claims(hostile)
    assert len(extra) > 5000 and max(extra) <= 2 * arithmetic.CONTEXT_CHARS
