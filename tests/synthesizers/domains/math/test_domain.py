"""MathDomain: seed sources, prompt, the python tool, final-answer and critical-step rules."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from sandboxes.base import ExecResult
from schemas import Message, Task, ToolCall
from synthesizers.domains.base import Domain, DomainOptionsError, Tool, ToolContext, ToolError
from synthesizers.domains.registry import get_domain
from synthesizers.domains.math import MathDomain
from synthesizers.domains.math.tools import PythonTool
from synthesizers.domains.math.generator import FAMILIES, generated_tasks
from synthesizers.domains.math.seeds import SeedSourceError, mmath_tasks


def ids(tasks) -> list[str]:
    return [t.id for t in tasks]


# ---- seeds ----------------------------------------------------------------


def test_domain_satisfies_protocol():
    domain = MathDomain()
    assert isinstance(domain, Domain)
    assert (domain.name, domain.needs_sandbox) == ("math", True)
    [tool] = domain.tools(Task(id="t", domain="math"))
    assert isinstance(tool, Tool) and tool.needs_sandbox
    assert tool.schema["function"]["name"] == "python"
    assert tool.schema["function"]["parameters"]["required"] == ["code"]


def test_seeds_are_deterministic_with_stable_ids():
    domain = MathDomain()
    first = list(domain.seed_tasks(limit=30, seed=7))
    again = list(MathDomain().seed_tasks(limit=30, seed=7))
    assert [t.model_dump() for t in first] == [t.model_dump() for t in again]
    assert len(set(ids(first))) == 30
    # a smaller limit is a prefix: ids do not depend on how many tasks were asked for
    assert ids(domain.seed_tasks(limit=10, seed=7)) == ids(first)[:10]
    other = list(MathDomain({"sources": ["generator"]}).seed_tasks(limit=30, seed=8))
    mine = [t for t in first if t.id.startswith("math-gen-")]
    assert [t.payload for t in mine] != [t.payload for t in other[: len(mine)]]


def test_mmath_loads_374_english_problems():
    tasks = mmath_tasks()
    assert len(tasks) == 374
    assert len(set(ids(tasks))) == 374 and tasks[0].id == "math-mmath-0"
    assert tasks[0].payload == {"question": tasks[0].payload["question"], "answer": "204"}
    assert "Aya goes for a $9$-kilometer-long walk" in tasks[0].payload["question"]  # English text
    answers = [t.payload["answer"] for t in tasks]
    assert all(a and "$" not in a for a in answers)  # gold kept without its $...$
    assert sum(bool(re.fullmatch(r"-?\d+", a)) for a in answers) == 361  # 13 CNMO answers are LaTeX
    assert len(mmath_tasks(integer_only=True)) == 361
    sources = Counter(t.source.rsplit(":", 1)[1] for t in tasks)
    assert sources == {"MATH500": 311, "AIME2024": 30, "CNMO": 18, "AIME2025": 15}


def _solve(question: str) -> int:
    """Compute each generated question's answer independently of the generator."""
    patterns = [
        (r"What is (-?\d+) \+ (-?\d+)\?", lambda a, b: a + b),
        (r"What is (-?\d+) - (-?\d+)\?", lambda a, b: a - b),
        (r"What is (-?\d+) \* (-?\d+)\?", lambda a, b: a * b),
        (r"What is (-?\d+) \* (-?\d+) \+ (-?\d+)\?", lambda a, b, c: a * b + c),
        (r"What is (\d+) divided by (\d+)\?", lambda a, b: a // b if a % b == 0 else None),
        (r"What is the remainder when (\d+) is divided by (\d+)\?", lambda a, b: a % b),
        (r"What is (\d+)% of (\d+)\?", lambda p, w: p * w // 100 if p * w % 100 == 0 else None),
    ]
    for pattern, solve in patterns:
        if match := re.fullmatch(pattern, question):
            return solve(*map(int, match.groups()))
    match = re.fullmatch(r"Solve for x: (\d+)x(?: ([+-]) (\d+))? = (-?\d+)\. What is x\?", question)
    assert match, f"unrecognised question {question!r}"
    a, sign, b, c = match.groups()
    offset = int(b or 0) * (-1 if sign == "-" else 1)
    x, rest = divmod(int(c) - offset, int(a))
    return x if rest == 0 else None


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard", "mixed"])
def test_generated_answers_are_correct(difficulty):
    tasks = [t for _, t in zip(range(300), generated_tasks(3, difficulty))]
    for t in tasks:
        assert str(_solve(t.payload["question"])) == t.payload["answer"], t.payload
    assert {t.source.split(":")[1] for t in tasks} == set(FAMILIES)
    assert len({t.payload["question"] for t in tasks}) == len(tasks)  # repeats are re-drawn


def test_easy_generated_tasks_stay_small():
    answers = [int(t.payload["answer"]) for _, t in zip(range(300), generated_tasks(0, "easy"))]
    assert min(answers) >= 0 and max(answers) <= 250


def test_mix_counts_and_limit():
    domain = MathDomain({"sources": ["generator", "mmath"]})
    half = list(domain.seed_tasks(limit=10, seed=1))
    assert Counter(t.id.split("-")[1] for t in half) == {"gen": 5, "mmath": 5}
    assert domain.last_seed_report.emitted == {"generator": 5, "mmath": 5}
    both = ["generator", "mmath"]
    skewed = list(MathDomain({"sources": both, "mix": {"generator": 3, "mmath": 1}}).seed_tasks(limit=8, seed=1))
    assert Counter(t.id.split("-")[1] for t in skewed) == {"gen": 6, "mmath": 2}
    capped = list(MathDomain({"sources": both, "counts": {"mmath": 2}}).seed_tasks(limit=10, seed=1))
    assert Counter(t.id.split("-")[1] for t in capped) == {"gen": 8, "mmath": 2}
    # MMATH is an evaluation set: never a default source (opt-in, see allow_benchmark_seeds)
    assert {t.id.split("-")[1] for t in MathDomain().seed_tasks(limit=50, seed=1)} == {"gen"}
    everything = list(MathDomain({"sources": ["mmath"], "shuffle": False}).seed_tasks(limit=None, seed=1))
    assert ids(everything) == ids(mmath_tasks())
    assert len(list(MathDomain({"sources": ["generator"]}).seed_tasks(limit=None, seed=1))) == 200


@pytest.mark.parametrize(
    "options, message",
    [
        ({"sorces": ["mmath"]}, "math option 'sorces' is unknown"),
        ({"sources": ["wikipedia"]}, "math option 'sources.0': Input should be 'generator'"),
        ({"difficulty": "insane"}, "math option 'difficulty': Input should be 'easy'"),
        ({"sources": ["dataset"]}, "needs the option dataset"),
        ({"sources": ["generator", "mmath"], "mix": {"generator": 1}}, "needs a weight"),
        ({"sources": ["mmath"], "counts": {"generator": 3}}, "not in sources"),
        ({"sources": ["mmath"], "counts": {"mmath": -1}}, "counts must be >= 0"),
    ],
)
def test_bad_options_fail_when_the_domain_is_built(options, message):
    with pytest.raises(DomainOptionsError, match=message):
        get_domain("math", options)


def test_every_bad_key_gets_its_own_line():
    with pytest.raises(DomainOptionsError) as info:
        get_domain("math", {"sorces": ["mmath"], "difficulty": "insane", "shuffle": "sometimes"})
    lines = str(info.value).splitlines()
    assert len(lines) == 3 and [line.split("'")[1] for line in lines] == ["difficulty", "shuffle", "sorces"]


def test_a_bad_dataset_spec_fails_at_seed_time():
    with pytest.raises(SeedSourceError, match="unknown keys"):
        MathDomain({"dataset": {"path": "x.jsonl", "colum": "q"}}).seed_tasks(limit=5, seed=0)


# ---- local datasets ---------------------------------------------------------


def test_dataset_rows_are_read_and_malformed_ones_skipped_and_reported(tmp_path):
    rows = [
        json.dumps({"q": "What is 2 + 2?", "a": "4"}),
        "{not json",
        json.dumps({"q": "", "a": "1"}),
        json.dumps({"q": "No answer here"}),
        json.dumps(["a", "list"]),
        json.dumps({"q": "Bool answer?", "a": True}),
        json.dumps({"q": "What is 10 / 4?", "a": 2.5}),
        "",
        json.dumps({"q": "Dollar gold?", "a": "$\\frac{1}{2}$"}),
    ]
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n".join(rows) + "\n")
    spec = {"dataset": {"path": str(path), "question_field": "q", "answer_field": "a"}}
    domain = MathDomain({**spec, "shuffle": False})
    tasks = list(domain.seed_tasks(limit=None, seed=0))
    assert [t.payload for t in tasks] == [
        {"question": "What is 2 + 2?", "answer": "4"},
        {"question": "What is 10 / 4?", "answer": "2.5"},
        {"question": "Dollar gold?", "answer": "\\frac{1}{2}"},
    ]
    assert [t.id.split("-")[2] for t in tasks] == ["0", "6", "8"]
    assert all(t.source == "dataset:seeds.jsonl" for t in tasks)
    skipped = {index: reason for _, index, reason in domain.last_seed_report.skipped}
    assert sorted(skipped) == [1, 2, 3, 4, 5]
    assert skipped[1].startswith("invalid JSON")
    assert skipped[3] == "missing or non-scalar 'a'"
    assert skipped[4] == "row is a list, not an object"
    # stable: ids do not depend on the file's location or on shuffling
    moved = tmp_path / "elsewhere.jsonl"
    moved.write_text(path.read_text())
    again = MathDomain({"dataset": {**spec["dataset"], "path": str(moved)}}).seed_tasks(limit=None, seed=5)
    assert sorted(ids(again)) == sorted(ids(tasks))


def test_missing_dataset_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(SeedSourceError, match=f"math dataset file not found: {re.escape(str(missing))}"):
        MathDomain({"dataset": {"path": str(missing)}}).seed_tasks(limit=None, seed=0)


@pytest.mark.parametrize("content", ["", "{broken\n[1, 2]\n{\"question\": \"\"}\n"])
def test_dataset_without_usable_rows_is_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(SeedSourceError, match="has no usable rows"):
        MathDomain({"dataset": {"path": str(path)}}).seed_tasks(limit=None, seed=0)


def test_parquet_dataset_through_datasets(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "seeds.parquet"
    pq.write_table(pa.table({"question": ["What is 1 + 1?", None], "answer": ["2", "3"]}), path)
    domain = MathDomain({"dataset": {"path": str(path)}})
    tasks = list(domain.seed_tasks(limit=None, seed=0))
    assert [t.payload for t in tasks] == [{"question": "What is 1 + 1?", "answer": "2"}]
    assert [i for _, i, _ in domain.last_seed_report.skipped] == [1]


# ---- prompt, final answer, critical step -----------------------------------


def test_initial_messages_ask_for_steps_tool_and_box():
    t = Task(id="t", domain="math", payload={"question": "What is 2 + 2?", "answer": "4"})
    system, user = MathDomain().initial_messages(t)
    assert system.role == "system" and user.role == "user"
    assert all(word in system.content for word in ("step by step", "python", "\\boxed{}"))
    assert user.content == "What is 2 + 2?"


def _call(code: str = "print(1)", name: str = "python") -> Message:
    return Message(role="assistant", content="", tool_calls=[ToolCall.make("c", name, {"code": code})])


def test_is_final():
    domain = MathDomain()
    assert domain.is_final(Message(role="assistant", content=r"So \boxed{4}."))
    assert domain.is_final(Message(role="assistant", content=r"\fbox {4}"))
    assert not domain.is_final(Message(role="assistant", content="It is 4."))
    assert not domain.is_final(Message(role="user", content=r"\boxed{4}"))
    assert not domain.is_final(Message(role="tool", content=r"\boxed{4}"))
    boxed_and_calling = _call()
    boxed_and_calling.content = r"Maybe \boxed{4}; let me check."
    assert not domain.is_final(boxed_and_calling)


def test_first_critical_step_is_the_first_python_call():
    domain = MathDomain()
    prompt = [Message(role="system", content="s"), Message(role="user", content="q")]
    tool_reply = Message(role="tool", content="1", tool_call_id="c", name="python")
    thinking = Message(role="assistant", content="Let me think.")
    nudge = Message(role="user", content="go on")
    messages = prompt + [thinking, nudge, _call(), tool_reply, _call("print(2)")]
    assert domain.first_critical_step(messages) == 4
    # another tool name is not executed code
    assert domain.first_critical_step(prompt + [_call(name="search"), _call()]) == 3


def test_first_critical_step_without_code_falls_back_to_the_first_answer():
    domain = MathDomain()
    prompt = [Message(role="system", content="s"), Message(role="user", content="q")]
    answers = [Message(role="assistant", content="hmm"), Message(role="assistant", content=r"\boxed{5}")]
    assert domain.first_critical_step(prompt + answers) == 2
    assert domain.first_critical_step(prompt) is None


# ---- the python tool --------------------------------------------------------


class FakeSandbox:
    """Records what the tool asks of a sandbox and answers with a canned result."""

    workdir = "/work"

    def __init__(self, result: ExecResult):
        self.result = result
        self.files: dict[str, str] = {}
        self.commands: list[tuple] = []

    def exec(self, cmd, *, timeout_s=None, workdir=None, env=None) -> ExecResult:
        self.commands.append((cmd, timeout_s, workdir))
        return self.result

    def put_files(self, files):
        self.files.update(files)

    def get_file(self, path):
        return self.files[path].encode()


def ctx(sandbox=None) -> ToolContext:
    return ToolContext(task=Task(id="t", domain="math"), sandbox=sandbox)


def test_python_tool_writes_the_code_and_runs_it_in_the_sandbox():
    box = FakeSandbox(ExecResult(exit_code=0, stdout="42\n", stderr=""))
    out = PythonTool(timeout_s=7).run({"code": "print(6 * 7)"}, ctx(box))
    assert out == "exit code: 0\nstdout:\n42"
    [(name, code)] = box.files.items()
    assert code == "print(6 * 7)" and name.endswith(".py")
    assert box.commands == [(["python3", f"/work/{name}"], 7, "/work")]


def test_python_tool_reports_errors_timeouts_and_long_output():
    failing = FakeSandbox(ExecResult(exit_code=1, stdout="", stderr="ZeroDivisionError: division by zero\n"))
    assert PythonTool().run({"code": "1/0"}, ctx(failing)).splitlines() == [
        "exit code: 1", "stdout:", "", "stderr:", "ZeroDivisionError: division by zero"
    ]
    slow = FakeSandbox(ExecResult(exit_code=None, stdout="", stderr="", timed_out=True))
    looped = PythonTool(timeout_s=2).run({"code": "while True: pass"}, ctx(slow))
    assert looped.startswith("timed out after 2 s")
    chatty = FakeSandbox(ExecResult(exit_code=0, stdout="x" * 10_000, stderr="", truncated=True))
    out = PythonTool().run({"code": "print('x' * 10**6)"}, ctx(chatty))
    assert len(out) < 2_500 and "characters cut ..." in out and "size limit" in out


def test_python_tool_unwraps_a_markdown_fence():
    box = FakeSandbox(ExecResult(exit_code=0, stdout="3\n", stderr=""))
    PythonTool().run({"code": "```python\nprint(1 + 2)\n```"}, ctx(box))
    assert list(box.files.values()) == ["print(1 + 2)"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({}, "needs 'code'"),
        ({"code": "   "}, "needs 'code'"),
        ({"code": 42}, "needs 'code'"),
        ({"code": "print(1)", "timeout": 99}, "unexpected: timeout"),
        ({"code": "#" * 20_001}, "too long"),
    ],
)
def test_python_tool_rejects_bad_arguments(arguments, message):
    box = FakeSandbox(ExecResult(exit_code=0, stdout="", stderr=""))
    with pytest.raises(ToolError, match=message):
        PythonTool().run(arguments, ctx(box))
    assert box.commands == []


def test_python_tool_without_a_sandbox_is_a_tool_error():
    with pytest.raises(ToolError, match="no sandbox"):
        PythonTool().run({"code": "print(1)"}, ctx(None))


@pytest.mark.docker
def test_python_tool_in_a_real_docker_sandbox(sandbox_pool):
    tool = PythonTool(timeout_s=3)
    with sandbox_pool.acquire() as sb:
        assert tool.run({"code": "print(sum(range(1, 10)))"}, ctx(sb)) == "exit code: 0\nstdout:\n45"
        failed = tool.run({"code": "import sys\nprint('half')\nsys.exit(3)"}, ctx(sb))
        assert failed.startswith("exit code: 3\nstdout:\nhalf")
        crashed = tool.run({"code": "1/0"}, ctx(sb))
        assert crashed.startswith("exit code: 1") and "ZeroDivisionError" in crashed
        assert tool.run({"code": "while True:\n    pass"}, ctx(sb)).startswith("timed out after 3 s")


def test_answer_forcing_continues_the_assistant_turn_once_then_ends():
    from synthesizers.controller import Continue, End
    from synthesizers.domains.math import MathDomain
    from synthesizers.domains.math.controllers import ANSWER_FORCING

    task = Task(id="t", domain="math", payload={"question": "1+1", "answer": "2"})
    controller = MathDomain().controller(task)
    assert controller.after_turn([]) == Continue(ANSWER_FORCING) and controller.after_turn([]) == End()
    assert MathDomain().user_simulator(task, None) is None  # the simulated user is only ever a user: none here


async def test_answer_forcing_through_the_agent_loop_yields_one_boxed_assistant_turn():
    """The forced words join the model's own turn; the verifier then judges what it wrote."""
    from synthesizers.agent_loop import Budget, run_agent
    from synthesizers.domains.base import ToolContext
    from synthesizers.domains.math import MathDomain
    from synthesizers.domains.math.controllers import ANSWER_FORCING
    from synthesizers.engines.base import Completion

    class Reasoner:  # reasons without boxing, then completes whatever prefix it is given
        model_id = "reasoner"

        def __init__(self):
            self.prefixes = []

        async def chat(self, messages, *, tools=None, params=None):
            self.prefixes.append(params.assistant_prefix)
            if params.assistant_prefix:
                return Completion(text=params.assistant_prefix + "2}$.", finish_reason="stop")
            return Completion(text="1 + 1 = 2.", finish_reason="stop")

        async def close(self):
            pass

    domain, engine = MathDomain(), Reasoner()
    task = Task(id="t", domain="math", payload={"question": "What is 1+1?", "answer": "2"})
    result = await run_agent(engine, domain.initial_messages(task), [], ctx=ToolContext(task=task),
                             budget=Budget(max_turns=3), is_final=domain.is_final,
                             controller=domain.controller(task))
    assert engine.prefixes == ["", "1 + 1 = 2." + ANSWER_FORCING]
    assert result.stop_reason == "final_answer"
    assert [m.role for m in result.messages] == ["system", "user", "assistant"]
    assert result.messages[-1].content == "1 + 1 = 2.\n\nThe final answer is $\\boxed{2}$."
