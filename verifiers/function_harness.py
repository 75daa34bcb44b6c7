"""Sandbox-side harness for function-level code checks (HumanEval ``check(candidate)``).

Copied into the sandbox and run as ``python3 -I harness.py DIR``; never
imported by the host. DIR holds ``nonce``, ``prompt.py``, ``test.py`` and
``solution.py``. Only the line ``TRAJFORGE-PASS <nonce>``, written after
``check(candidate)`` returns, means "passed"; everything else is a failure.

Why each step:
- all inputs are read and deleted before the solution runs, so it can neither
  read the nonce or the tests from disk nor leave them to be re-read;
- the nonce is held only as two XOR-masked ints inside this function, not as a
  hex string anywhere a ``gc``/``globals`` scan would find it;
- the verdict goes to a private dup of stdout; fd 1 and 2 are pointed at
  stderr's pipe before the solution runs, so its prints cannot pose as ours;
- the test lives in its own namespace with a *copy* of the builtins taken
  before the solution runs, so rebinding ``builtins.abs``/``AssertionError``/
  ``check`` changes nothing the test sees;
- each candidate call is checked to return plain data (exact built-in types),
  defeating "``__eq__`` always True" objects, and clears any trace hooks the
  call installed (a tracer can jump over ``assert`` lines);
- any ``BaseException`` (``SystemExit`` included) is a failure, and we leave
  with ``os._exit`` so the solution's ``atexit`` hooks and threads never run
  after the verdict.
Limit: code that reverse-engineers this file in memory could still forge a
pass; the harness stops generic tricks, not a bespoke exploit of itself.
"""

import builtins
import os
import sys


def main(work_dir):
    write, exit_now, close, dup, dup2 = os.write, os._exit, os.close, os.dup, os.dup2
    gettrace, settrace, setprofile, getframe = sys.gettrace, sys.settrace, sys.setprofile, sys._getframe
    plain_scalars = (int, float, bool, str, bytes, complex, type(None))
    plain_containers = (list, tuple, set, frozenset, dict)

    def read_and_delete(name):
        path = os.path.join(work_dir, name)
        with open(path, "rb") as f:
            data = f.read()
        os.unlink(path)
        return data

    nonce_value = int(read_and_delete("nonce").strip(), 16)
    mask = int.from_bytes(os.urandom(16), "big")
    masked = nonce_value ^ mask
    del nonce_value
    prompt, test, solution = (read_and_delete(n).decode() for n in ("prompt.py", "test.py", "solution.py"))
    entry_point = read_and_delete("entry_point").decode().strip()
    for leftover in os.listdir(work_dir):  # e.g. this file: nothing of ours stays readable
        os.unlink(os.path.join(work_dir, leftover))

    verdict_fd = dup(1)
    dup2(2, 1)  # from here on, anything printed goes to stderr

    def report_fail(reason):
        write(verdict_fd, ("\nTRAJFORGE-FAIL " + reason.replace("\n", " ")[:500] + "\n").encode())
        exit_now(1)

    def is_plain(value, depth=0):
        kind = type(value)
        if kind in plain_scalars:
            return True
        if kind not in plain_containers or depth > 50:
            return False
        items = value.items() if kind is dict else ((v, None) for v in value)
        return all(is_plain(k, depth + 1) and (v is None or is_plain(v, depth + 1)) for k, v in items)

    test_ns = {"__builtins__": dict(builtins.__dict__), "__name__": "__trajforge_test__"}
    try:
        try:
            exec(compile(prompt, "prompt.py", "exec"), test_ns)  # trusted helpers (e.g. encode_cyclic)
        except Exception:
            pass
        exec(compile(test, "test.py", "exec"), test_ns)
        check = test_ns["check"]
    except BaseException as exc:
        report_fail("test code is broken: %s: %s" % (type(exc).__name__, exc))

    solution_ns = {"__name__": "__solution__"}
    stub = None
    try:
        try:
            exec(compile(prompt, "prompt.py", "exec"), solution_ns)
        except Exception:
            pass
        stub = solution_ns.get(entry_point)  # the prompt's empty signature, if it has one
        exec(compile(solution, "solution.py", "exec"), solution_ns)
    except BaseException as exc:
        report_fail("solution raised at import: %s: %s" % (type(exc).__name__, exc))
    candidate = solution_ns.get(entry_point)
    if not callable(candidate) or candidate is stub:
        report_fail("entry point %r not defined by the solution" % entry_point)

    def guarded(*args, **kwargs):
        try:
            result = candidate(*args, **kwargs)
        finally:
            # Drop trace/profile hooks the call may have planted on this or the test's frames.
            settrace(None)
            setprofile(None)
            frame = getframe(0)
            while frame is not None:
                frame.f_trace = None
                frame = frame.f_back
        if not is_plain(result):
            raise TypeError("candidate returned a non-plain %s" % type(result).__name__)
        return result

    try:
        check(guarded)
    except BaseException as exc:
        report_fail("check failed: %s: %s" % (type(exc).__name__, exc))
    if gettrace() is not None:
        report_fail("a trace hook was active during check")
    write(verdict_fd, ("\nTRAJFORGE-PASS %032x\n" % (masked ^ mask)).encode())
    exit_now(0)


if __name__ == "__main__":
    main(sys.argv[1])
