"""Problem statements for repo-level instances: written by an LLM from the failing tests' output,
with a templated fallback.

Neither reveals the patch: the inputs are the project, the failing test ids
and the ``E ...`` lines of their failures (what a user filing an issue would
see), never the diff or the mutated source line. An LLM statement that
fails ``acceptable`` (length, quotes the changed line, writes code, echoes the
prompt, repeats itself, or names neither the project nor a failing test) is
discarded for the template. The embedded SmolLM2-135M's statements fail it
(see docs/small-model-assists.md), so the embedded default ends with template
statements; a real model gets through.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from schemas import Message

MAX_TESTS_SHOWN = 3
_E_LINE = re.compile(r"^E\s{1,5}(.*)$", re.MULTILINE)

SYSTEM = ("You write GitHub issues for Python libraries. Given failing tests and their errors, write a short "
          "bug report (3-8 sentences) as a user of the library would: what they did, what they expected, what "
          "happened. Do not guess the cause, do not propose a fix, and do not quote the library's source code.")


def error_lines(message: str, limit: int = 6) -> str:
    lines = [m.group(1).rstrip() for m in _E_LINE.finditer(message)]
    if not lines:  # no pytest "E" lines: keep the first line of the message
        lines = message.strip().splitlines()[:1]
    return "\n".join(line[:200] for line in lines[:limit])


def _short(test_id: str) -> str:
    module, _, name = test_id.partition("::")
    return f"{module.rsplit('.', 1)[-1]}::{name}" if name else test_id


def evidence(f2p: list[str], messages: dict[str, str]) -> str:
    parts = []
    for test_id in f2p[:MAX_TESTS_SHOWN]:
        err = error_lines(messages.get(test_id, "")) or "(no error message)"
        parts.append(f"{test_id}\n{err}")
    return "\n\n".join(parts)


def template_statement(project: str, version: str, f2p: list[str], messages: dict[str, str]) -> str:
    shown = ", ".join(f"`{_short(t)}`" for t in f2p[:MAX_TESTS_SHOWN])
    more = f" (and {len(f2p) - MAX_TESTS_SHOWN} more)" if len(f2p) > MAX_TESTS_SHOWN else ""
    first = f2p[0]
    err = error_lines(messages.get(first, "")) or "(no error message)"
    return (f"In {project} {version}, {len(f2p)} test(s) of the project's own suite fail: {shown}{more}.\n\n"
            f"`{_short(first)}` fails with:\n```\n{err}\n```\n\n"
            "The tests describe the intended behaviour. Find the bug in the library's source and fix it "
            "without changing the tests.")


_NUMBERING = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")
_SOURCE_BLOCK = re.compile(r"```[a-z]*\n(?:.*\n)*?\s*(?:def|class|async def)\s", re.IGNORECASE)
_ECHOES = ("failing tests and errors", "write the bug report", "the bug report is")


def acceptable(text: str, before: str, after: str, names: tuple[str, ...] = ()) -> bool:
    """A usable LLM statement: a sane length; never quotes the changed line (before or after);
    no code block that defines functions (source or made-up tests); no echo of the prompt; not
    degenerate (a line repeated more than twice, numbering aside); and, given ``names`` (the
    project, the failing tests), grounded: it names at least one of them."""
    text = text.strip()
    if not (40 <= len(text) <= 2500):
        return False
    if any(line and len(line) > 8 and line in text for line in (before.strip(), after.strip())):
        return False
    lowered = text.lower()
    if _SOURCE_BLOCK.search(text) or any(echo in lowered for echo in _ECHOES):
        return False
    lines = [_NUMBERING.sub("", line).strip().lower() for line in text.splitlines()]
    lines = [line for line in lines if len(line) > 3 and not line.startswith("```")]
    if lines and max(lines.count(line) for line in set(lines)) > 2:
        return False
    return not names or any(name.lower() in lowered for name in names if name)


def _names(item: dict[str, Any]) -> tuple[str, ...]:
    tests = [t.rsplit("::", 1)[-1].split("[", 1)[0] for t in item["f2p"][:MAX_TESTS_SHOWN]]
    return (item["project"], *tests)


async def llm_statements(engine: Any, items: list[dict[str, Any]], max_tokens: int = 256,
                         concurrency: int = 16) -> list[str | None]:
    """One statement per item ({project, version, f2p, messages, before, after}); None where unusable."""
    from synthesizers.engines.base import SamplingParams

    slots = asyncio.Semaphore(concurrency)

    async def one(item: dict[str, Any]) -> str | None:
        prompt = (f"Library: {item['project']} {item['version']}\n\nFailing tests and errors:\n\n"
                  f"{evidence(item['f2p'], item['messages'])}\n\nWrite the bug report.")
        async with slots:
            done = await engine.chat([Message(role="system", content=SYSTEM), Message(role="user", content=prompt)],
                                     params=SamplingParams(temperature=0.3, max_tokens=max_tokens, seed=0))
        if done.error or not acceptable(done.text, item["before"], item["after"], _names(item)):
            return None
        return done.text.strip()

    return list(await asyncio.gather(*(one(i) for i in items)))
