"""Tool-use verifiers: call matching (good and adversarial, parallel calls, the
`trajforge verify` rows) and the state check (replay on real environments,
information told to the user)."""

from __future__ import annotations

import json

from pipelines.verify_cmd import verify_file
from schemas import Message, Task, ToolCall
from verifiers.registry import get_verifier, infer_kind
from verifiers.tool_use import CallMatchVerifier, StateVerifier

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}, "required": ["city"]}}}
STOCK = {"type": "function", "function": {"name": "get_stock_price", "parameters": {
    "type": "object", "properties": {"symbol": {"type": "string"}}, "required": ["symbol"]}}}
CALLS_TASK = Task(id="c", domain="tool-use", kind="calls", payload={
    "tools": [WEATHER, STOCK],
    "expected_calls": [
        {"name": "get_weather", "arguments": {"city": ["Paris", "Paris, France"], "unit": ["celsius", None]}},
        {"name": "get_stock_price", "arguments": {"symbol": ["AAPL"]}},
    ],
})
V = CallMatchVerifier()


def answer(*calls, split=False):
    made = [ToolCall.make(f"c{i}", name, args) for i, (name, args) in enumerate(calls)]
    head = [Message(role="user", content="weather in Paris and the Apple stock price")]
    if split:  # one call per assistant turn, with an observation between
        out = list(head)
        for call in made:
            out += [Message(role="assistant", tool_calls=[call]), Message(role="tool", content="ok", tool_call_id=call.id)]
        return out
    return head + [Message(role="assistant", tool_calls=made)]


def check(*calls, **kw):
    return V.verify(CALLS_TASK, answer(*calls, **kw))


def test_parallel_calls_match_in_any_order_with_alternatives_and_omittable_args():
    assert check(("get_weather", {"city": "Paris", "unit": "celsius"}), ("get_stock_price", {"symbol": "AAPL"})).passed
    assert check(("get_stock_price", {"symbol": "AAPL"}), ("get_weather", {"city": "Paris, France"})).passed  # order, alias, omitted unit
    assert check(("get_weather", {"city": "paris "}), ("get_stock_price", {"symbol": "aapl"})).passed  # case/space
    assert check(("get_weather", {"city": "Paris"}), ("get_stock_price", {"symbol": "AAPL"}), split=True).passed
    assert check(("get_weather", {"city": "Paris", "unit": None}), ("get_stock_price", {"symbol": "AAPL"})).passed


def test_adversarial_call_sets_fail():
    good_stock = ("get_stock_price", {"symbol": "AAPL"})
    cases = {
        "extra call": [("get_weather", {"city": "Paris"}), good_stock, ("get_stock_price", {"symbol": "MSFT"})],
        "extra arg": [("get_weather", {"city": "Paris", "country": "FR"}), good_stock],
        "wrong value": [("get_weather", {"city": "London"}), good_stock],
        "wrong optional value": [("get_weather", {"city": "Paris", "unit": "kelvin"}), good_stock],
        "missing required": [("get_weather", {"unit": "celsius"}), good_stock],
        "missing call": [good_stock],
        "duplicate instead of other": [good_stock, good_stock],
        "unknown tool": [("get_weather", {"city": "Paris"}), ("get_price", {"symbol": "AAPL"})],
        "no calls": [],
    }
    for name, calls in cases.items():
        verdict = check(*calls)
        assert not verdict.passed, name


def test_number_and_bool_types_are_not_confused():
    task = Task(id="n", domain="tool-use", kind="calls", payload={"tools": [], "expected_calls": [
        {"name": "f", "arguments": {"n": [3], "flag": [True]}}]})
    ok = [Message(role="assistant", tool_calls=[ToolCall.make("a", "f", {"n": 3.0, "flag": True})])]
    bad = [Message(role="assistant", tool_calls=[ToolCall.make("a", "f", {"n": 3, "flag": 1})])]
    assert V.verify(task, ok).passed and not V.verify(task, bad).passed


def test_duplicate_expected_calls_need_both_and_matching_is_not_greedy():
    # The first call fits both specs; a greedy matcher that gives it spec 0 would fail.
    task = Task(id="d", domain="tool-use", kind="calls", payload={"tools": [], "expected_calls": [
        {"name": "t", "arguments": {"x": [1, 2]}}, {"name": "t", "arguments": {"x": [1]}}]})
    two = [Message(role="assistant", tool_calls=[ToolCall.make("a", "t", {"x": 1}), ToolCall.make("b", "t", {"x": 2})])]
    one = [Message(role="assistant", tool_calls=[ToolCall.make("a", "t", {"x": 2})])]
    assert V.verify(task, two).passed and not V.verify(task, one).passed


def test_unparseable_arguments_fail():
    msgs = [Message(role="assistant", tool_calls=[ToolCall.make("a", "get_stock_price", {"symbol": "AAPL"})])]
    msgs[0].tool_calls[0].function.arguments = "{not json"
    assert not V.verify(CALLS_TASK, msgs).passed


# -- state check -------------------------------------------------------------------
def files_task(actions, info=()):
    return Task(id="f", domain="tool-use", kind="stateful", payload={
        "env": "files", "env_spec": {"files": {"/home/user/a.txt": "one\ntwo\n"}},
        "expected_actions": actions, "communicate_info": list(info)})


def calls_msgs(*calls, final="Done."):
    msgs = [Message(role="user", content="please")]
    for i, (name, args) in enumerate(calls):
        msgs += [Message(role="assistant", tool_calls=[ToolCall.make(f"c{i}", name, args)]),
                 Message(role="tool", content="...", tool_call_id=f"c{i}")]
    return msgs + [Message(role="assistant", content=final)]


def test_state_verifier_replays_calls_and_compares_hashes():
    task = files_task([{"name": "move", "arguments": {"source": "a.txt", "destination": "/home/user/b.txt"}}])
    sv = StateVerifier()
    assert sv.verify(task, calls_msgs(("read_file", {"path": "a.txt"}), ("move", {"source": "/home/user/a.txt", "destination": "b.txt"}))).passed
    assert not sv.verify(task, calls_msgs(("read_file", {"path": "a.txt"}))).passed
    # the right move plus a stray write is a different state
    assert not sv.verify(task, calls_msgs(("move", {"source": "a.txt", "destination": "b.txt"}),
                                          ("write_file", {"path": "c.txt", "content": "x"}))).passed
    # a failing call changes nothing, as in the rollout
    assert sv.verify(task, calls_msgs(("delete_file", {"path": "nope.txt"}), ("move", {"source": "a.txt", "destination": "b.txt"}))).passed


def test_state_verifier_requires_information_told_to_the_user():
    task = files_task([{"name": "read_file", "arguments": {"path": "a.txt"}}], info=["2"])
    sv = StateVerifier()
    assert sv.verify(task, calls_msgs(("read_file", {"path": "a.txt"}), final="It has 2 lines.")).passed
    told_nothing = sv.verify(task, calls_msgs(("read_file", {"path": "a.txt"}), final="I read it."))
    assert not told_nothing.passed and "not told" in told_nothing.reason


def test_state_verifier_on_tau2_airline_expected_actions():
    actions = [{"name": "cancel_reservation", "arguments": {"reservation_id": "4WQ150"}}]
    task = Task(id="a", domain="tool-use", kind="stateful", payload={"env": "tau2-airline", "expected_actions": actions})
    sv = StateVerifier()
    assert sv.verify(task, calls_msgs(("get_reservation_details", {"reservation_id": "4WQ150"}),
                                      ("cancel_reservation", {"reservation_id": "4WQ150"}))).passed
    assert not sv.verify(task, calls_msgs(("cancel_reservation", {"reservation_id": "NO6JO3"}))).passed


def test_bad_task_is_a_failed_verdict_not_a_crash():
    task = Task(id="x", domain="tool-use", kind="stateful", payload={"env": "spaceship", "expected_actions": []})
    verdict = StateVerifier().verify(task, [])
    assert not verdict.passed and "bad task" in verdict.reason


def test_registry_and_trajforge_verify_rows(tmp_path):
    assert infer_kind("tool-use", {"tools": [], "expected_calls": []}) == "calls"
    assert infer_kind("tool-use", {"env": "files", "expected_actions": []}) == "stateful"
    assert isinstance(get_verifier("tool-use", "calls"), CallMatchVerifier)

    def row(rid, task, calls):
        msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{i}", "type": "function", "function": {"name": n, "arguments": a}} for i, (n, a) in enumerate(calls)]}]
        return json.dumps({"id": rid, "domain": "tool-use", "task": task, "messages": msgs})

    calls_task = CALLS_TASK.payload
    state_task = files_task([{"name": "delete_file", "arguments": {"path": "a.txt"}}]).payload
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([
        row("par", calls_task, [("get_stock_price", {"symbol": "AAPL"}), ("get_weather", {"city": "Paris"})]),
        row("extra", calls_task, [("get_stock_price", {"symbol": "AAPL"}), ("get_weather", {"city": "Paris", "x": 1})]),
        row("state-ok", state_task, [("delete_file", {"path": "/home/user/a.txt"})]),
        row("state-bad", state_task, [("read_file", {"path": "a.txt"})]),
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    verify_file(src, out)
    results = {r["id"]: r["passed"] for r in map(json.loads, out.read_text().splitlines())}
    assert results == {"par": True, "extra": False, "state-ok": True, "state-bad": False}


def test_more_adversarial_call_sets():
    """Right calls with wrong or cross-wired values, a null extra argument, non-object
    arguments, and a retry that repeats a correct call: all fail."""
    two_cities = Task(id="w", domain="tool-use", kind="calls", payload={"tools": [WEATHER], "expected_calls": [
        {"name": "get_weather", "arguments": {"city": ["Oslo"], "unit": ["celsius"]}},
        {"name": "get_weather", "arguments": {"city": ["Lima"], "unit": ["fahrenheit"]}}]})

    def verdict(task, *calls):
        return V.verify(task, [Message(role="assistant", tool_calls=[ToolCall.make(f"c{i}", n, a) for i, (n, a) in enumerate(calls)])])

    assert verdict(two_cities, ("get_weather", {"city": "Lima", "unit": "fahrenheit"}), ("get_weather", {"city": "Oslo", "unit": "celsius"})).passed
    crossed = verdict(two_cities, ("get_weather", {"city": "Oslo", "unit": "fahrenheit"}), ("get_weather", {"city": "Lima", "unit": "celsius"}))
    assert not crossed.passed  # every value is acceptable somewhere, but not in these pairs
    good_stock = ("get_stock_price", {"symbol": "AAPL"})
    assert not check(("get_weather", {"city": "Paris", "country": None}), good_stock).passed  # extra arg, even null
    assert not check(("get_weather", {"city": "Paris"}), good_stock, good_stock, split=True).passed  # retried call
    assert not check(("get_weather", {"city": 7}), good_stock).passed  # wrong type
    listed = answer(("get_weather", {"city": "Paris"}), good_stock)
    listed[-1].tool_calls[0].function.arguments = '["Paris"]'
    assert not V.verify(CALLS_TASK, listed).passed  # arguments must be a JSON object


def test_state_verifier_adversarial_writes():
    sv = StateVerifier()
    move = [{"name": "move", "arguments": {"source": "a.txt", "destination": "/home/user/b.txt"}}]
    assert not sv.verify(files_task(move), calls_msgs(("move", {"source": "a.txt", "destination": "c.txt"}))).passed  # wrong value
    assert not sv.verify(files_task(move), calls_msgs(("delete_file", {"path": "a.txt"}))).passed  # wrong write
    # an information task with the right answer told, but a stray write: the state differs
    info = files_task([{"name": "read_file", "arguments": {"path": "a.txt"}}], info=["2"])
    assert not sv.verify(info, calls_msgs(("write_file", {"path": "a.txt", "content": "x"}), final="2 lines")).passed
    # rejected calls (extra argument, bad type) change nothing, so the right call after them passes
    assert sv.verify(files_task(move), calls_msgs(("move", {"source": "a.txt", "destination": "b.txt", "force": True}),
                                                  ("move", {"source": ["a.txt"], "destination": "b.txt"}),
                                                  ("move", {"source": "a.txt", "destination": "b.txt"}))).passed
    # told "1,000" counts as "1000"; case does not matter
    big = files_task([], info=["1000 Lines"])
    assert sv.verify(big, calls_msgs(final="It has 1,000 lines.")).passed


def test_state_verifier_on_tau2_telecom():
    line = {"customer_id": "C1001", "line_id": "L1002"}
    spec = {"init": [{"name": "set_data_usage", "arguments": {**line, "data_used_gb": 15.1}},
                     {"name": "disable_roaming", "arguments": line}]}
    expected = [{"name": "refuel_data", "arguments": {"customer_id": "C1001", "line_id": "L1002", "gb_amount": 2.0}}]
    task = Task(id="t", domain="tool-use", kind="stateful", payload={"env": "tau2-telecom", "env_spec": spec,
                                                                     "expected_actions": expected})
    sv = StateVerifier()
    lookup = ("get_customer_by_phone", {"phone_number": "555-123-2002"})
    assert sv.verify(task, calls_msgs(lookup, ("refuel_data", {"customer_id": "C1001", "line_id": "L1002", "gb_amount": 2}))).passed
    for wrong in ({"customer_id": "C1001", "line_id": "L1002", "gb_amount": 5.0},
                  {"customer_id": "C1001", "line_id": "L1001", "gb_amount": 2.0}):
        assert not sv.verify(task, calls_msgs(lookup, ("refuel_data", wrong))).passed
    assert not sv.verify(task, calls_msgs(lookup, ("refuel_data", expected[0]["arguments"]),
                                          ("enable_roaming", {"customer_id": "C1001", "line_id": "L1002"}))).passed
