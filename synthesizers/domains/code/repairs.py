"""Single-token repairs of one line of Python: the replacement lines a guided ``edit`` may offer.

Why: the embedded 135M model, asked to write an edit's ``new_str``, wrote noise or a copy of the
line and fixed nothing (see docs/small-model-assists.md), so a small-model rollout instead picks
its replacement among the lines that differ from the shown one by one token: another comparison
or arithmetic operator, ``and``/``or`` swapped, an integer shifted by one, a ``not`` dropped or
added, ``is``/``in`` negated. These are the slips a careful reader checks first; nothing here
knows the task's bug (the generator sees one line of text and nothing else). A capable model
(``guided: false``) writes its own edits.

Edits are made on the text at a token's span, so the rest of the line keeps its formatting.
"""

from __future__ import annotations

import ast
import io
import keyword
import tokenize

_COMPARE = ("<", "<=", ">", ">=", "==", "!=")
_ARITHMETIC = ("+", "-", "*", "//", "%")
_SWAPS = {"&": ("|",), "|": ("&",), "<<": (">>",), ">>": ("<<",), "and": ("or",), "or": ("and",),
          "True": ("False",), "False": ("True",)}
MAX_CONSTANT = 64  # an integer literal above this is a magic number, not a bound or an index


def _tokens(line: str) -> list[tokenize.TokenInfo]:
    """The tokens of one (stripped) line; a line that opens a block or a bracket it does not close
    still tokenizes, as far as it goes."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline):
            out.append(tok)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return [t for t in out if t.type in (tokenize.OP, tokenize.NAME, tokenize.NUMBER, tokenize.STRING)]


def _alternatives(tok: tokenize.TokenInfo, before: tokenize.TokenInfo | None,
                  after: tokenize.TokenInfo | None) -> list[str]:
    text = tok.string
    if text in _COMPARE:
        return [op for op in _COMPARE if op != text]
    unary = before is None or before.string in "([{,=:" or before.string in _COMPARE or keyword.iskeyword(before.string)
    if text in _ARITHMETIC and not unary and (before is None or before.string not in ("*", "**")):
        return [op for op in _ARITHMETIC if op != text]
    if text in _SWAPS:
        return list(_SWAPS[text])
    if tok.type == tokenize.NUMBER and text.isdigit() and int(text) <= MAX_CONSTANT:
        return [str(v) for v in (int(text) - 1, int(text) + 1) if v >= 0]
    if text == "is":
        return ["is not"] if not (after and after.string == "not") else []
    if text == "in" and before is not None and before.string not in ("for", "not"):
        return ["not in"]
    return []


_BLOCK_OPENERS = {"else", "elif", "except", "finally"}  # parse only after their block's head


def is_code(line: str) -> bool:
    """Whether one line can be Python: it parses, alone or completed (a block opener given a body,
    open brackets closed). Why: inside a window, a docstring's prose ("to sign in a diff") tokenizes
    like code, and the model spent its tries turning its "in" into "not in"."""
    text = line.strip()
    first = text.split(None, 1)[0].rstrip(":") if text else ""
    if first == "elif":
        text = "if" + text[4:]
    elif first in _BLOCK_OPENERS:
        text = ("if x:\n pass\n" if first == "else" else "try:\n pass\n") + text
    # a continuation line of a bracketed expression: "and b < 0)", "x, f(1))"
    for head in ("", "f(", "f(x "):
        opened: list[str] = []
        for tok in _tokens(head + text):
            if tok.string in "([{":
                opened.append({"(": ")", "[": "]", "{": "}"}[tok.string])
            elif tok.string in ")]}" and opened and opened[-1] == tok.string:
                opened.pop()
        closed = head + text + "".join(reversed(opened))
        for candidate in (closed, closed + "\n pass"):
            try:
                ast.parse(candidate)
                return True
            except SyntaxError:
                continue
    return False


def repairs(line: str, limit: int = 24) -> list[str]:
    """Lines that differ from ``line`` by one token (see the module docstring), at most ``limit``,
    in the order the tokens appear; ``line`` itself is never among them, and a line that is not
    code (``is_code``) has none."""
    if not is_code(line):
        return []
    indent = line[:len(line) - len(line.lstrip())]
    body = line.strip()
    toks = _tokens(body)
    out: list[str] = []

    def put(start: int, end: int, text: str) -> None:
        candidate = indent + body[:start] + text + body[end:]
        if candidate != line and candidate not in out:
            out.append(candidate)

    for i, tok in enumerate(toks):
        before = toks[i - 1] if i else None
        after = toks[i + 1] if i + 1 < len(toks) else None
        start, end = tok.start[1], tok.end[1]
        for text in _alternatives(tok, before, after):
            put(start, end, text)
        if tok.string == "not":  # drop it: `not x` -> `x`, `is not` -> `is`, `not in` -> `in`
            nxt = after.start[1] if after is not None else end
            put(start, nxt, "")
            if after is not None and after.string == "(" and body.endswith("):"):  # `if not (a or b):`
                put(start, len(body), body[after.end[1]:-2] + ":")
        if tok.string in ("if", "elif", "while") and i == 0 and after is not None and after.string != "not":
            put(after.start[1], after.start[1], "not ")
    return out[:limit]
