"""Verifier lookup and the run config's ``verifier.options``."""

from __future__ import annotations

import pytest

from verifiers.registry import check_options, get_verifier


def test_options_reach_the_verifiers_that_take_them():
    assert get_verifier("math", options={"arithmetic": "flag"}).arithmetic == "flag"
    assert get_verifier("math").arithmetic == "reject"
    # code's two kinds take different options: each gets its own, the other is not an error
    repo = get_verifier("code", "repo", options={"per_test_timeout_s": 7.0, "timeout_s": 3.0})
    function = get_verifier("code", "function", options={"per_test_timeout_s": 7.0, "timeout_s": 3.0})
    assert repo.per_test_timeout_s == 7.0 and function.timeout_s == 3.0


def test_an_option_no_verifier_of_the_domain_takes_is_refused():
    with pytest.raises(ValueError, match=r"verifier.options: arithmetic not taken by the code verifiers"):
        check_options("code", {"arithmetic": "flag"})


def test_a_bad_value_is_refused_before_the_run():
    with pytest.raises(ValueError, match="arithmetic must be one of"):
        check_options("math", {"arithmetic": "strict"})
    check_options("math", {"arithmetic": "off"})  # a good one passes


def test_the_judging_keywords_domains_pass_are_taken_and_others_refused_in_one_line():
    check_options("deep-research", {"threshold": 0.6, "require_retrieved": False})
    check_options("agentic-cot", {"allow_stray": True, "allow_repeats": True, "underlying_options": {}})
    with pytest.raises(ValueError) as refused:
        check_options("deep-research", {"f1_threshold": 0.6})  # the domain option's name, not the verifier's
    assert "\n" not in str(refused.value)
    assert str(refused.value).startswith("verifier.options: f1_threshold not taken by the deep-research verifiers")
    assert "require_retrieved, threshold" in str(refused.value)
    with pytest.raises(ValueError, match="threshold must be a number from 0 to 1"):
        check_options("deep-research", {"threshold": 2})
    with pytest.raises(ValueError, match="allow_stray must be true or false"):
        check_options("agentic-cot", {"allow_stray": "sometimes"})
