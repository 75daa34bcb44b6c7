"""Bug injection by AST mutation of a project's non-test source (SWE-smith style, offline).

Each candidate changes one spot inside a function: flip a comparison, swap an
arithmetic or boolean operator, shift an integer constant by one, negate an
``if``, drop a simple statement (a ``return`` included), or use the wrong
variable (another argument of the same function). The edit is made on the
source *text* at the node's span, so the rest of the file (comments,
formatting) is untouched and the diff is as small as a real bug's. Only
single-line nodes are mutated; every mutant must still compile.

Candidates are ordered deterministically by (seed, project, file, line, kind)
so the same seed gives the same bugs; whether a bug is *kept* is decided by
running the tests (``instances``).
"""

from __future__ import annotations

import ast
import copy
import hashlib
from dataclasses import dataclass
from typing import Iterator

from sandboxes.project import ProjectSpec, in_source, is_test_path

_CMP_FLIP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
             ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
_BIN_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv,
             ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd, ast.LShift: ast.RShift, ast.RShift: ast.LShift}
_DROPPABLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return, ast.Raise, ast.Delete)


@dataclass(frozen=True)
class Mutation:
    path: str
    line: int  # 1-based
    kind: str  # compare | binop | boolop | constant | negate_if | drop_statement | wrong_variable
    function: str  # qualified name of the enclosing function
    before: str  # the original line(s), stripped
    after: str  # the mutated line, stripped ('' for a dropped statement)
    mutated_source: str  # the whole file after the mutation

    @property
    def id(self) -> str:
        key = f"{self.path}:{self.line}:{self.kind}:{self.after}"
        return hashlib.sha256(key.encode()).hexdigest()[:12]


def source_files(spec: ProjectSpec, files: dict[str, str]) -> list[str]:
    return sorted(p for p in files if p.endswith(".py") and in_source(spec, p) and not is_test_path(p))


def _functions(tree: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    stack = [("", tree)]
    while stack:
        prefix, node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                yield name, child
                stack.append((name + ".", child))
            elif isinstance(child, ast.ClassDef):
                stack.append((f"{prefix}{child.name}.", child))


def _own_nodes(func: ast.AST) -> Iterator[ast.AST]:
    """Nodes of ``func`` itself, not of nested functions or classes (those get their own turn)."""
    stack = list(ast.iter_child_nodes(func))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _replace_span(lines: list[str], node: ast.AST, text: str) -> str | None:
    if node.lineno != node.end_lineno:
        return None
    raw = lines[node.lineno - 1].encode()
    new = raw[:node.col_offset] + text.encode() + raw[node.end_col_offset:]
    out = list(lines)
    out[node.lineno - 1] = new.decode()
    return "".join(out)


def _expression_mutants(func: ast.AST) -> Iterator[tuple[str, ast.AST, ast.AST]]:
    """(kind, original node, mutated copy) for one-spot expression changes."""
    args = [a.arg for a in func.args.posonlyargs + func.args.args + func.args.kwonlyargs
            if a.arg not in ("self", "cls")]
    for node in _own_nodes(func):
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP_FLIP:
            new = copy.deepcopy(node)
            new.ops = [_CMP_FLIP[type(node.ops[0])]()]
            yield "compare", node, new
        elif isinstance(node, ast.BinOp) and type(node.op) in _BIN_SWAP:
            if any(isinstance(side, ast.JoinedStr) or (isinstance(side, ast.Constant)
                   and isinstance(side.value, (str, bytes))) for side in (node.left, node.right)):
                continue  # "%s" % x and b"." + y are formatting, not arithmetic
            new = copy.deepcopy(node)
            new.op = _BIN_SWAP[type(node.op)]()
            yield "binop", node, new
        elif isinstance(node, ast.BoolOp):
            new = copy.deepcopy(node)
            new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            yield "boolop", node, new
        elif (isinstance(node, ast.Constant) and type(node.value) is int and 0 <= node.value <= 64):
            yield "constant", node, ast.Constant(node.value + 1)
        elif isinstance(node, ast.If) and node.test.lineno == node.test.end_lineno:
            yield "negate_if", node.test, ast.UnaryOp(ast.Not(), copy.deepcopy(node.test))
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in args and len(args) > 1:
            other = args[(args.index(node.id) + 1) % len(args)]
            yield "wrong_variable", node, ast.Name(other, ast.Load())


def _drop_mutants(func: ast.AST) -> Iterator[tuple[ast.AST, list[ast.stmt]]]:
    for node in _own_nodes(func):
        for field in ("body", "orelse"):
            body = getattr(node, field, None)
            if not isinstance(body, list) or len(body) < 2:
                continue
            for stmt in body:
                if isinstance(stmt, _DROPPABLE) and stmt.lineno == stmt.end_lineno:
                    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                        continue  # a docstring
                    yield stmt, body
    body = func.body
    if len(body) >= 2:
        for stmt in body:
            if isinstance(stmt, _DROPPABLE) and stmt.lineno == stmt.end_lineno and not (
                    isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
                yield stmt, body


def file_mutations(path: str, source: str) -> list[Mutation]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    lines = source.splitlines(keepends=True)
    found: dict[str, Mutation] = {}
    for qualname, func in _functions(tree):
        for kind, node, new in _expression_mutants(func):
            text = _replace_span(lines, node, ast.unparse(new))
            if text is not None:
                _add(found, path, node.lineno, kind, qualname, lines, text)
        for stmt, _body in _drop_mutants(func):
            out = list(lines)
            out[stmt.lineno - 1] = ""
            _add(found, path, stmt.lineno, "drop_statement", qualname, lines, "".join(out))
    return sorted(found.values(), key=lambda m: (m.line, m.kind, m.after))


def _add(found: dict[str, Mutation], path: str, line: int, kind: str, function: str, lines: list[str],
         mutated: str) -> None:
    new_lines = mutated.splitlines(keepends=True)
    after = new_lines[line - 1].strip() if kind != "drop_statement" and line - 1 < len(new_lines) else ""
    if mutated == "".join(lines):
        return
    try:
        compile(mutated, path, "exec")
    except (SyntaxError, ValueError):
        return
    m = Mutation(path, line, kind, function, lines[line - 1].strip(), after, mutated)
    found.setdefault(m.id, m)


def candidate_mutations(spec: ProjectSpec, files: dict[str, str], seed: int) -> list[Mutation]:
    """Every candidate of the project in a deterministic seeded order, kinds taken in turn
    (so the common kinds, wrong variable and dropped statement, do not crowd out the rest)."""
    by_kind: dict[str, list[Mutation]] = {}
    for path in source_files(spec, files):
        for m in file_mutations(path, files[path]):
            by_kind.setdefault(m.kind, []).append(m)
    key = lambda m: hashlib.sha256(f"{seed}:{spec.name}:{m.id}".encode()).hexdigest()  # noqa: E731
    queues = [sorted(ms, key=key) for _, ms in sorted(by_kind.items())]
    out = []
    for i in range(max((len(q) for q in queues), default=0)):
        out.extend(q[i] for q in queues if i < len(q))
    return out
