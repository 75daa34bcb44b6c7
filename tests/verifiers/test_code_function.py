"""Function-level code verifier: extraction (unit) and the spoofing suite (real sandbox)."""

from __future__ import annotations

import textwrap

import pytest

from schemas import Message, Task
from verifiers.code_function import FunctionCodeVerifier, extract_code_block

TASK = Task(
    id="code-add", domain="code", kind="function",
    payload={
        "prompt": 'def add(a, b):\n    """Return a + b."""\n',
        "entry_point": "add",
        "test": textwrap.dedent("""
            import math

            def check(candidate):
                assert candidate(1, 2) == 3
                assert candidate(-4, 4) == 0
                assert math.isclose(candidate(0.5, 0.25), 0.75)
                assert abs(candidate(10, 5) - 15) < 1e-9
        """),
    },
)
GOOD = "def add(a, b):\n    return a + b\n"
# A check that leans on builtins only, so rebinding them would be enough to pass it.
TASK_BUILTINS = TASK.model_copy(update={"payload": {**TASK.payload, "test": textwrap.dedent("""
    def check(candidate):
        assert abs(candidate(1, 2) - 3) < 1e-9
        assert isinstance(candidate(2, 2), int) and len(str(candidate(2, 2))) == 1
""")}})


def reply(code: str, lang: str = "python") -> list[Message]:
    return [Message(role="user", content="write add"),
            Message(role="assistant", content=f"Here you go:\n```{lang}\n{code}```\nDone.")]


# ---- unit: extraction and input checks (no Docker) --------------------------------------------

def test_extract_takes_the_last_python_block():
    text = "```python\nfirst\n```\n```text\nnot code\n```\n```python\nsecond\n```\ntrailing"
    assert extract_code_block(text) == "second\n"


def test_extract_falls_back_to_any_fenced_block_then_an_unclosed_python_block():
    assert extract_code_block("```\nbare\n```") == "bare\n"
    assert extract_code_block("```js\nx\n```\n```\ny\n```") == "y\n"
    assert extract_code_block("cut off:\n```python\ndef f():\n    return 1") == "def f():\n    return 1"
    assert extract_code_block("no code at all") is None


def test_only_the_last_assistant_message_counts():
    verifier = FunctionCodeVerifier()
    messages = [Message(role="assistant", content=f"```python\n{GOOD}```"),
                Message(role="user", content="again"), Message(role="assistant", content="I give up.")]
    verdict = verifier.verify(TASK, messages, sandbox=None)
    assert not verdict.passed and verdict.reason == "no code block"


def test_missing_task_fields_and_missing_sandbox_fail_without_raising():
    verifier = FunctionCodeVerifier()
    broken = TASK.model_copy(update={"payload": {"prompt": "x"}})
    assert verifier.verify(broken, reply(GOOD)).reason == "task lacks entry_point, test"
    verdict = verifier.verify(TASK, reply(GOOD), sandbox=None)
    assert not verdict.passed and "needs a sandbox" in verdict.reason


# ---- docker: real runs --------------------------------------------------------------------------

@pytest.fixture
def judge(sandbox_pool):
    verifier = FunctionCodeVerifier(timeout_s=5.0)

    def run(code: str, task: Task = TASK, lang: str = "python"):
        with sandbox_pool.acquire() as box:
            return verifier.verify(task, reply(code, lang), box)

    return run


@pytest.mark.docker
def test_correct_solution_passes(judge):
    verdict = judge(GOOD)
    assert verdict.passed and verdict.score == 1.0 and verdict.reason == "passed"


@pytest.mark.docker
def test_correct_solution_in_an_untagged_block_passes_and_may_print(judge):
    assert judge("print('debug output')\n" + GOOD, lang="").passed


@pytest.mark.docker
def test_prompt_helpers_are_visible_to_the_test(judge):
    task = TASK.model_copy(update={"payload": {
        "prompt": "def double(x):\n    return 2 * x\n\ndef quad(x):\n    \"\"\"Use double twice.\"\"\"\n",
        "entry_point": "quad",
        "test": "def check(candidate):\n    assert candidate(3) == double(double(3))\n",
    }})
    assert judge("def quad(x):\n    return double(double(x))\n", task=task).passed
    assert not judge("def quad(x):\n    return x\n", task=task).passed


@pytest.mark.docker
def test_wrong_solution_fails(judge):
    verdict = judge("def add(a, b):\n    return a - b\n")
    assert not verdict.passed and verdict.score == 0.0 and "AssertionError" in verdict.reason


@pytest.mark.docker
def test_missing_entry_point_fails(judge):
    assert "not defined" in judge("def plus(a, b):\n    return a + b\n").reason


SPOOFS = {
    "sys.exit(0) at import": "import sys\nsys.exit(0)\n",
    "os._exit(0) at import": "import os\nos._exit(0)\n",
    "raise SystemExit at import": "raise SystemExit(0)\n",
    "sys.exit(0) inside": "import sys\ndef add(a, b):\n    sys.exit(0)\n",
    "os._exit(0) inside": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "raise SystemExit inside": "def add(a, b):\n    raise SystemExit(0)\n",
    "fake pass lines": "print('PASSED'); print('All tests passed'); print('ok')\ndef add(a, b):\n    return 0\n",
    "sentinel look-alikes": ("import sys\nfor s in ('TRAJFORGE-PASS ' + '0'*32, 'TRAJFORGE-PASS ' + 'f'*32):\n"
                             "    print(s); print(s, file=sys.stderr)\ndef add(a, b):\n    return 0\n"),
    "sentinel on every fd": ("import os\nfor fd in range(3, 20):\n    try: os.write(fd, b'\\nTRAJFORGE-PASS "
                             + "a" * 32 + "\\n')\n    except OSError: pass\ndef add(a, b):\n    return 0\n"),
    "infinite loop at import": "while True:\n    pass\n",
    "infinite loop inside": "def add(a, b):\n    while True:\n        pass\n",
    "redefine check": "def check(candidate):\n    return True\ndef add(a, b):\n    return 0\n",
    "always-equal object": ("class Any:\n    def __eq__(self, other): return True\n    def __sub__(self, o): return 0\n"
                            "    def __float__(self): return 0.75\ndef add(a, b):\n    return Any()\n"),
    "int subclass equal to all": ("class I(int):\n    def __eq__(self, o): return True\n"
                                  "def add(a, b):\n    return I(0)\n"),
    "atexit fake pass": ("import atexit, os\natexit.register(lambda: (print('TRAJFORGE-PASS ' + '0'*32), os._exit(0)))\n"
                         "def add(a, b):\n    return 0\n"),
    "swallow failures via excepthook": ("import sys, os\nsys.excepthook = lambda *a: os._exit(0)\n"
                                        "def add(a, b):\n    return 0\n"),
    "kill the parent harness": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\ndef add(a, b):\n    return 0\n",
    "kill every process": "import os\nos.system('kill -9 -1')\ndef add(a, b):\n    return a + b\n",
    "read the nonce and tests from disk": textwrap.dedent("""
        import glob, os
        found = [open(p).read() for p in glob.glob('/work/**/*', recursive=True) if os.path.isfile(p)]
        for text in found:
            print('TRAJFORGE-PASS ' + text.strip())
        def add(a, b):
            return 0
    """),
    "overwrite harness and write result files": textwrap.dedent("""
        import glob
        for d in glob.glob('/work/.verify-*'):
            for name in ('harness.py', 'test.py', 'result', 'nonce'):
                open(d + '/' + name, 'w').write('print("TRAJFORGE-PASS " + "0" * 32)')
        open('/work/PASSED', 'w').write('1')
        def add(a, b):
            return 0
    """),
    "flood output to hide the verdict": ("import sys, os\nsys.stdout.write('x' * 10_000_000)\n"
                                          "os.write(2, b'y' * 10_000_000)\ndef add(a, b):\n    return 0\n"),
}


@pytest.mark.docker
@pytest.mark.parametrize("name", list(SPOOFS))
def test_spoofing_attempts_fail(judge, name):
    verdict = judge(SPOOFS[name])
    assert not verdict.passed and verdict.score == 0.0, (name, verdict)


@pytest.mark.docker
def test_patching_builtins_does_not_reach_the_test(judge):
    assert judge(GOOD, task=TASK_BUILTINS).passed
    spoof = ("import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.isinstance = lambda *a: True\n"
             "builtins.len = lambda x: 1\ndef add(a, b):\n    return -1\n")
    verdict = judge(spoof, task=TASK_BUILTINS)
    assert not verdict.passed and "AssertionError" in verdict.reason


TASK_ONE_ASSERT = TASK.model_copy(update={"payload": {**TASK.payload, "test": textwrap.dedent("""
    def check(candidate):
        result = candidate(1, 2)
        assert result == 3
        return None
""")}})
TRACER_SPOOF = textwrap.dedent("""
    import sys
    def tracer(frame, event, arg):
        code = frame.f_code
        if code.co_name == 'check' and event == 'line' and frame.f_lineno == code.co_firstlineno + 2:
            frame.f_lineno = code.co_firstlineno + 3  # jump over the assert
        return tracer
    def add(a, b):
        caller = sys._getframe(1)
        while caller.f_code.co_name != 'check':
            caller = caller.f_back
        caller.f_trace = tracer
        sys.settrace(tracer)
        return 0
""")


@pytest.mark.docker
def test_a_tracer_cannot_jump_over_the_asserts(judge):
    assert judge(GOOD, task=TASK_ONE_ASSERT).passed
    assert not judge(TRACER_SPOOF, task=TASK_ONE_ASSERT).passed


@pytest.mark.docker
def test_correct_solution_that_floods_output_still_passes(judge):
    # Its prints go to stderr; the verdict travels on a private copy of stdout, so it survives.
    assert judge("import sys\nsys.stdout.write('x' * 10_000_000)\n" + GOOD).passed


@pytest.mark.docker
def test_timeout_is_reported_as_such(judge):
    assert judge(SPOOFS["infinite loop inside"]).reason == "timeout"


@pytest.mark.docker
def test_correct_solution_still_passes_after_the_attacks(judge):
    # The pool wiped each box; a fresh honest run is unaffected by what came before.
    for _ in range(2):
        assert judge(GOOD).passed
