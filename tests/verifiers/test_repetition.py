"""The repetition gate: loops fail, natural restatement and short turns do not."""

from __future__ import annotations

from schemas import Message, Task, Verdict
from verifiers.repetition import RepetitionGate, RepetitionRules, repetition_problems

# The embedded model's passing answer in runs/demo (abridged): one code block, three times.
CODE_LOOP = """You can calculate 4 times 5 in Python using the `*` operator, which returns the result of the \
multiplication of two numbers.

```python
# Calculate 4 times 5
4 * 5 = 20
```

However, in Python 3, you can use the `**` operator to calculate the result directly without the operator.

```python
# Calculate 4 times 5
4 * 5 = 20
```

You can also use a more efficient way to calculate 4 times 5 in Python:

```python
# Calculate 4 times 5
4 * 5 = 20
```
"""

# Agentic-CoT phases that all say the same thing.
SAME_PHASES = "\n".join(
    f"<{tag}>The perimeter is 2(l + w) = 30, so l + w = 15 and w = 15 - 9 = 6. The area is 9 * 6 = 54.</{tag}>"
    for tag in ("analysis", "plan", "action", "reflection", "summary")
)

# A fine answer that restates its question, as short math answers do (a passing demo answer).
RESTATES = """To find the remainder when 49 is divided by 4, we can use the modulo operator (%) to find the \
remainder. We can first find the remainder using the modulo operator. In Python, we can use the modulo \
operator to find the remainder by dividing the number by 4. The remainder when 49 is divided by 4 is 1, \
because 4 * 12 = 48 and 49 - 48 = 1. So the answer is 1."""

PROSE = """The pipeline cuts a failed trajectory just before its first critical action and samples new \
continuations from there. Each branch is verified on its own and linked to its parent, so a reviewer can \
follow the lineage. Branches that pass are kept; the parent stays in the store for reference. Deduplication \
then removes exact and near copies across the whole run before the shards are written with their masks."""


def test_a_looping_code_block_is_caught_by_duplicate_lines():
    problems = repetition_problems(CODE_LOOP)
    assert problems and problems[0].startswith("duplicate lines ")


def test_identical_phases_are_caught_by_repeated_spans():
    assert any(p.startswith("characters in repeated 10-word spans") for p in repetition_problems(SAME_PHASES))


def test_restating_the_question_and_plain_prose_pass():
    assert repetition_problems(RESTATES) == []
    assert repetition_problems(PROSE) == []


def test_short_turns_are_not_judged():
    loop = "4 * 5 = 20\n" * 10
    assert repetition_problems(loop) == []  # 30 words < 50
    assert repetition_problems(loop, RepetitionRules(min_words=10)) != []


class Fixed:
    domain, needs_sandbox = "math", False

    def __init__(self, passed: bool):
        self.passed = passed

    def verify(self, task, messages, sandbox=None):
        return Verdict(passed=self.passed, score=float(self.passed), reason="boxed '20' == gold '20'")


TASK = Task(id="t", domain="math", payload={"question": "4 times 5?", "answer": "20"})


def chat(*turns: str) -> list[Message]:
    return [Message(role="user", content="4 times 5?")] + [Message(role="assistant", content=t) for t in turns]


def test_the_gate_fails_a_pass_that_loops_and_names_the_turn():
    verdict = RepetitionGate(Fixed(True)).verify(TASK, chat("Let me think.", CODE_LOOP))
    assert not verdict.passed and verdict.score == 0.0
    assert verdict.reason.startswith("boxed '20' == gold '20', but assistant turn 2 of 2 repeats itself: duplicate lines")


def test_the_gate_keeps_clean_passes_and_every_failure_as_they_are():
    assert RepetitionGate(Fixed(True)).verify(TASK, chat(PROSE)).passed
    failed = RepetitionGate(Fixed(False)).verify(TASK, chat(CODE_LOOP))
    assert not failed.passed and failed.reason == "boxed '20' == gold '20'"
    gate = RepetitionGate(Fixed(True))
    assert (gate.domain, gate.needs_sandbox, gate.passed) == ("math", False, True)  # the rest is the inner's


def rounds(*calls: tuple[str, dict, str, str | None]) -> list[Message]:
    """A chat of tool rounds: (tool, arguments, observation, status or None for a store without results)."""
    from schemas import ToolCall, ToolResult

    messages = [Message(role="user", content="Please create /home/user/projects.")]
    for number, (name, arguments, observation, status) in enumerate(calls):
        call = ToolCall.make(f"call_{number}", name, arguments)
        messages.append(Message(role="assistant", tool_calls=[call]))
        messages.append(Message(role="tool", name=name, tool_call_id=call.id, content=observation,
                                result=None if status is None else ToolResult(status=status)))
    return messages


MKDIR = ("make_dir", {"path": "/home/user/projects"}, "directory /home/user/projects exists", "ok")
APPEND = ("append_file", {"path": "/home/user/projects/f.txt", "content": "x"},
          "Error: no such file: /home/user/projects/f.txt", "error")


def test_a_failed_call_made_again_unchanged_fails_a_pass():
    verdict = RepetitionGate(Fixed(True)).verify(TASK, rounds(MKDIR, APPEND, APPEND))
    assert not verdict.passed
    assert verdict.reason == ("boxed '20' == gold '20', but it makes the same call with the same answer: the failing "
                              'call append_file({"content": "x", "path": "/home/user/projects/f.txt"}) 2 times')


def test_calls_loop_by_their_third_identical_round_and_not_before():
    gate = RepetitionGate(Fixed(True))
    assert gate.verify(TASK, rounds(MKDIR, MKDIR)).passed
    assert not gate.verify(TASK, rounds(MKDIR, MKDIR, MKDIR)).passed
    # A store without results (schema 2.0): a failed call is judged like any call.
    legacy = [c[:3] + (None,) for c in (APPEND, APPEND)]
    assert gate.verify(TASK, rounds(*legacy)).passed and not gate.verify(TASK, rounds(*legacy, legacy[0])).passed


def test_a_call_repeated_after_the_state_changed_is_not_a_loop():
    gate = RepetitionGate(Fixed(True))
    fixed = APPEND[:2] + ("appended 1 character", "ok")
    # Same call, other answers (the model fixed what failed in between), and the same arguments
    # written in another key order are one call, not two.
    assert gate.verify(TASK, rounds(APPEND, MKDIR, fixed)).passed
    shuffled = ("append_file", {"content": "x", "path": "/home/user/projects/f.txt"}) + APPEND[2:]
    assert not gate.verify(TASK, rounds(APPEND, shuffled)).passed
    # Failures are kept as they are.
    failed = RepetitionGate(Fixed(False)).verify(TASK, rounds(APPEND, APPEND, APPEND))
    assert failed.reason == "boxed '20' == gold '20'"
