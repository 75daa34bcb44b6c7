"""``localize``: the traceback's library frames, the windows around them, and the view snapshot a
guided code rollout keeps of the lines it was shown (followed through its edits). The guided
rollouts built on them are in ``test_repo_turns.py``."""

from __future__ import annotations

from schemas import Message, Task
from synthesizers.domains.base import ToolOutput
from synthesizers.domains.code.domain import reproduce_command
from synthesizers.domains.code.localize import (calls_and_results, editable_lines, frame_windows, latest_snapshot,
                                                library_frames, parse_view)
from synthesizers.domains.code.tools import view_output
from tests.synthesizers.domains.code.helpers import answered, observation
from tests.synthesizers.domains.code.test_controllers import msg_call

PROJECT = {"name": "p", "version": "1", "pytest_args": ["-o", "addopts="], "test_paths": ["tests"]}
TASK = Task(id="t", domain="code", kind="repo", payload={"project": PROJECT, "FAIL_TO_PASS": ["tests.test_m::test_b"],
                                                         "problem_statement": "x"})
GUIDED = {"guided": True}
REPRODUCE = reproduce_command(PROJECT, ["tests.test_m::test_b"])
# Real pytest --tb=short output (itsdangerous, a chained exception), the paths made up where noted.
FAILING = """exit code: 1
.......F
=================================== FAILURES ===================================
___________ TestURLSafeSerializer.test_changed_value[zlib-<lambda>0] ___________
src/pkg/url_safe.py:46: in load_payload
    json = zlib.decompress(json)
E   zlib.error: Error -3 while decompressing data: incorrect header check

The above exception was the direct cause of the following exception:
tests/test_pkg/test_serializer.py:66: in test_changed_value
    assert serializer.loads(signed) == value
/usr/lib/python3.11/zlib_helpers.py:10: in helper
    pass
src/pkg/serializer.py:341: in loads
    return self.load_payload(signer.unsign(s))
src/pkg/url_safe.py:48: in load_payload
    raise BadPayload(
E   pkg.exc.BadPayload: Could not zlib decompress the payload
=========================== short test summary info ============================
FAILED tests/test_pkg/test_url_safe.py::test_changed_value[zlib-<lambda>0]
1 failed, 55 passed, 222 deselected in 0.62s"""
VIEW_PATH = "src/pkg/url_safe.py"
VIEW_SHOWN = ["        except Exception as e:", "            raise BadPayload(", '                "Could not base64 decode",',
              "", "        if decompress:", "            try:", "                json = zlib.decompress(json)",
              "            except Exception as e:", "            except Exception as e:"]  # lines 38-46 of 83


def shown_view(shown: list[str], first: int = 38, total: int = 83, path: str = VIEW_PATH) -> ToolOutput:
    """The real ``view`` answer for a file of ``total`` lines whose lines from ``first`` are ``shown``."""
    lines = [f"# line {i}" for i in range(1, first)] + shown + [f"# line {i}" for i in range(first + len(shown), total + 1)]
    return view_output(path, lines, first, first + len(shown) - 1)


VIEW = shown_view(VIEW_SHOWN)


def test_library_frames_are_the_checkouts_own_non_test_files_innermost_last():
    assert library_frames(FAILING) == [("src/pkg/url_safe.py", 46), ("src/pkg/serializer.py", 341),
                                       ("src/pkg/url_safe.py", 48)]
    assert [w.arguments() for w in frame_windows(FAILING)][-1] == {"path": "src/pkg/url_safe.py", "start_line": 36,
                                                                   "end_line": 52}
    clipped = "exit code: 1\nsrc/pkg/a.py:3: in f\n[... 900 characters cut ...]\nkg/b.py:7: in g\nsrc/pkg/c.py:9: in h"
    assert library_frames(clipped) == [("src/pkg/a.py", 3), ("src/pkg/c.py", 9)]  # not the line cut mid-way
    assert frame_windows("exit code: 1\ntests/test_m.py:3: in test_b\nE   assert 1 == 2") == []


def test_view_snapshot_follows_the_rollouts_edits():
    def step(message: Message):
        return calls_and_results([msg_call("view", "c1", path="x"), message])[0]

    path, lines = parse_view(step(answered("c1", VIEW, "view")))
    assert path == "src/pkg/url_safe.py" and lines[0] == (38, "        except Exception as e:") and len(lines) == 9
    assert parse_view(step(observation("c1", "Error: no such file or directory: x.py", status="error",
                                       reason="refused"))) is None
    assert parse_view(step(observation("c1", "src/ contains:\na.py", path="src", kind="dir"))) is None
    assert parse_view(step(Message(role="tool", content=str(VIEW), tool_call_id="c1"))) is None  # no result: no view
    shown = [text for _, text in lines]
    offered = editable_lines(shown)
    assert "                json = zlib.decompress(json)" in offered
    assert "" not in offered and "            except Exception as e:" not in offered  # blank; shown twice (ambiguous)
    convo = [msg_call("view", "c1", path=path), answered("c1", VIEW, "view"),
             msg_call("edit", "c2", path=path, old_str="        if decompress:", new_str="        if not decompress:"),
             observation("c2", "Edited src/pkg/url_safe.py. ...", name="edit", path=path, line=42),
             msg_call("edit", "c3", path=path, old_str="            try:", new_str="            pass"),
             observation("c3", "Error: old_str occurs 2 times", name="edit", status="error", reason="ambiguous",
                         occurrences=2)]
    now = latest_snapshot(convo)[1]
    assert "        if not decompress:" in now and "        if decompress:" not in now
    assert "            try:" in now  # the failed edit changed nothing
