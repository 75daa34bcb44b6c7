"""Tools shared by the τ² environments: a safe calculator and the human hand-off,
plus the JSON-schema shorthands their tool lists use."""

from __future__ import annotations

import ast
import operator
from typing import Any

from environments.base import EnvError, EnvTool, obj

STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
STR_LIST = {"type": "array", "items": STR}

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def s(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


def _evaluate(node: ast.AST) -> float:
    # Walk the parsed tree ourselves: no eval(), only numbers and + - * / and unary minus.
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    raise EnvError("calculate accepts numbers, + - * / and parentheses only")


def calculate(env: Any, expression: str) -> str:
    if len(expression) > 200:
        raise EnvError("expression too long (at most 200 characters)")
    try:
        value = _evaluate(ast.parse(expression, mode="eval"))
    except SyntaxError:
        raise EnvError(f"cannot parse expression {expression!r}") from None
    except ZeroDivisionError:
        raise EnvError("division by zero") from None
    return str(round(value, 2))


def transfer(env: Any, summary: str) -> str:
    return "Transfer successful"


CALCULATE = EnvTool(
    "calculate", "Calculate the result of an arithmetic expression such as '2 * (3 + 4.5)'.",
    obj(expression=s("The expression, with numbers, + - * / and parentheses.")), calculate,
)
TRANSFER = EnvTool(
    "transfer_to_human_agents",
    "Transfer the user to a human agent, with a summary of the issue. Only when the request cannot be "
    "handled within the scope of your actions.",
    obj(summary=s("A summary of the user's issue.")), transfer,
)


def address_schema() -> dict[str, Any]:
    return obj(address1=STR, address2=STR, city=STR, state=STR, country=STR, zip=STR)
