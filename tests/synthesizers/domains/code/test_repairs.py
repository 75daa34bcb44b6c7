"""Single-token repairs (``repairs.repairs``): every slip the bug injector makes is undone by one
of a line's repairs, and a repair never changes more than one token."""

from __future__ import annotations

import ast

import pytest

from synthesizers.domains.code.mutate import file_mutations
from synthesizers.domains.code.repairs import repairs


@pytest.mark.parametrize("line, fixed", [
    ("        if x <= len(seq):", "        if x < len(seq):"),
    ("    return a - b", "    return a + b"),
    ("    n = count // 8", "    n = count % 8"),
    ("    ok = x is not None or y", "    ok = x is not None and y"),
    ("    lo = mid + 2", "    lo = mid + 1"),
    ("    if not (a and b):", "    if a and b:"),
    ("    elif not ready:", "    elif ready:"),
    ("    while node:", "    while not node:"),
    ("    if key not in cache:", "    if key in cache:"),
    ("    if value is None:", "    if value is not None:"),
    ("    flags = a & b", "    flags = a | b"),
    ("    return False", "    return True"),
])
def test_the_fix_of_a_one_token_slip_is_among_the_repairs(line, fixed):
    assert fixed in repairs(line)


def test_repairs_keep_the_rest_of_the_line_and_leave_strings_unary_signs_and_big_numbers_alone():
    line = '    label = "a < b" + name  # keep <'
    out = repairs(line)
    assert '    label = "a < b" - name  # keep <' in out
    assert all(r.endswith("  # keep <") and '"a < b"' in r for r in out)  # the string and the comment untouched
    assert repairs("    x = -1") == ["    x = -0", "    x = -2"]  # a sign is no operator: only the number moves
    assert repairs("    port = 8080") == []
    assert repairs("    return f(*args, **kwargs)") == []
    assert line not in out and len(out) == len(set(out))
    assert "    total = f(a - b," in repairs("    total = f(a + b,")  # a line that opens a bracket still has its tokens


def test_every_kept_kind_of_injected_bug_is_undone_by_a_repair_of_its_line():
    """The injector's one-line kinds except a wrong variable (which needs a name from elsewhere)
    and a dropped statement (a line to write anew): the original line, or one with the same
    meaning, is a repair of the mutated line."""
    source = '''def f(a, b, items):
    if a < b and b:
        return a + b
    total = 0
    for x in items:
        if not x:
            continue
        total += x * 2
    return total >= 3 or a in items
'''
    seen = set()
    for m in file_mutations("m.py", source):
        if m.kind in ("wrong_variable", "drop_statement"):
            continue
        seen.add(m.kind)
        buggy = m.mutated_source.splitlines()[m.line - 1]
        original = source.splitlines()[m.line - 1]
        indent = original[:len(original) - len(original.lstrip())]
        same = [r for r in repairs(buggy) if _meaning(r) == _meaning(original)]
        assert same, (m.kind, buggy)
    assert seen == {"compare", "binop", "boolop", "constant", "negate_if"}


def _meaning(line: str) -> str:
    text = line.strip()
    text = text + " pass" if text.endswith(":") else text
    try:
        return ast.dump(ast.parse(text))
    except SyntaxError:
        return text


@pytest.mark.parametrize("line, code", [
    ("        to distinguish signing in diff", False),  # a docstring's prose tokenizes like code
    ("    be saved to code or version control", False),
    ("    The secret key should be a random", False),
    ("    elif a <= b:", True),
    ("    except (KeyError, ValueError) as e:", True),  # code, but no token to repair: checked below
    ("            and (index.start is not None or index.start < 0)", True),  # a continuation line
    ("        token_types, self._lookahead_token(1))", True),
    ("    x = [1,", True),
])
def test_only_lines_that_can_be_code_have_repairs(line, code):
    from synthesizers.domains.code.repairs import is_code

    assert is_code(line) is code
    assert bool(repairs(line)) is (code and "except" not in line)
