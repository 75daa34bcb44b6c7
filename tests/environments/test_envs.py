"""The real environments: τ² airline and retail over their shipped databases,
and the file system; schemas, argument checks, determinism, state hashes."""

from __future__ import annotations

import pytest

from environments import tau2_telecom as telecom
from environments.base import EnvError, check_args, make_env
from environments.files import FilesEnv
from environments.tau2_data import tasks as tau2_tasks


@pytest.mark.parametrize("domain", ["airline", "retail"])
def test_every_tau2_task_replays_deterministically(domain):
    """Every shipped task's expected actions run on a fresh environment; the same
    actions twice give the same hash; any write-bearing task changes the state."""
    fresh = make_env({"env": f"tau2-{domain}"}).state_hash()
    strict_failures = 0
    for task in tau2_tasks(domain):
        actions = (task.get("evaluation_criteria") or {}).get("actions") or []
        one, two = make_env({"env": f"tau2-{domain}"}), make_env({"env": f"tau2-{domain}"})
        one.apply(actions), two.apply(actions)
        assert one.state_hash() == two.state_hash()
        if any(a["name"] in one.write_tool_names() for a in actions) and one.state_hash() == fresh:
            strict_failures += 1  # every write of the task failed
        try:
            make_env({"env": f"tau2-{domain}"}).apply(actions, strict=True)
        except EnvError:
            strict_failures += 1
    # τ² tasks include deliberate failing lookups (a wrong id the user gives); our
    # rules must not reject the ground truth much more often than that.
    assert strict_failures <= (0 if domain == "airline" else 20)


def test_airline_tools_read_and_write():
    env = make_env({"env": "tau2-airline"})
    start = env.state_hash()
    assert '"user_id": "mia_li_3668"' in env.call("get_user_details", {"user_id": "mia_li_3668"})
    assert "HAT" in env.call("search_direct_flight", {"origin": "PHL", "destination": "LGA", "date": "2024-05-16"})
    assert env.state_hash() == start  # reads change nothing
    env.call("cancel_reservation", {"reservation_id": "4WQ150"})
    once = env.state_hash()
    assert once != start
    env.call("cancel_reservation", {"reservation_id": "4WQ150"})  # τ² reverses every payment again
    assert env.state_hash() not in (start, once)
    with pytest.raises(EnvError, match="Reservation NOPE not found"):
        env.call("cancel_reservation", {"reservation_id": "NOPE"})
    env.reset()
    assert env.state_hash() == start


def test_malformed_arguments_are_tool_errors_not_crashes():
    env = make_env({"env": "tau2-retail"})
    bad = [
        ("get_order_details", {}),  # missing
        ("get_order_details", {"order_id": 5}),  # wrong type
        ("get_order_details", {"order_id": "#W2611340", "verbose": True}),  # extra
        ("cancel_pending_order", {"order_id": "#W5918442", "reason": "bored"}),  # not in enum
        ("modify_pending_order_items", {"order_id": "#W5918442", "item_ids": [1], "new_item_ids": ["x"], "payment_method_id": "p"}),
        ("no_such_tool", {}),
        ("calculate", {"expression": "__import__('os').system('id')"}),
        ("get_order_details", ["#W2611340"]),  # not an object
    ]
    for name, args in bad:
        with pytest.raises(EnvError):
            env.call(name, args)
    assert env.db.changes() == {}


def test_calculator_is_arithmetic_only():
    env = make_env({"env": "tau2-airline"})
    assert env.call("calculate", {"expression": "2 * (3 + 4.5) - -1"}) == "16.0"
    with pytest.raises(EnvError):
        env.call("calculate", {"expression": "1/0"})


def test_files_env():
    env = FilesEnv({"files": {"/home/user/docs/a.txt": "hi\n"}})
    assert env.call("list_dir", {"path": "/home/user"}) == "docs/"
    env.call("make_dir", {"path": "archive"})
    env.call("move", {"source": "docs/a.txt", "destination": "archive"})
    assert env.call("read_file", {"path": "/home/user/archive/a.txt"}) == "hi\n"
    with pytest.raises(EnvError, match="no such file"):
        env.call("read_file", {"path": "docs/a.txt"})
    with pytest.raises(EnvError, match="no such directory"):
        env.call("write_file", {"path": "/nowhere/x.txt", "content": "x"})


def test_check_args_nested_schema():
    schema = {"type": "object", "properties": {"xs": {"type": "array", "items": {"type": "object", "properties": {
        "n": {"type": "integer"}}, "required": ["n"], "additionalProperties": False}}}, "required": ["xs"]}
    check_args(schema, {"xs": [{"n": 1}, {"n": 2.0}]})
    for bad in ({"xs": [{"n": "1"}]}, {"xs": [{}]}, {"xs": [{"n": 1, "m": 2}]}, {"xs": [{"n": True}]}):
        with pytest.raises(EnvError):
            check_args(schema, bad)


def test_telecom_agent_side_tasks_replay_and_tools_enforce_rules():
    """Every kept τ² telecom task (1688 of 2285: those with an agent-side database write)
    initialises, replays its agent-side expected actions strictly and changes the state."""
    rows = telecom.tasks()
    assert len(rows) == 1688
    for row in rows:
        spec = {"init": telecom.init_actions(row)}
        actions = telecom.agent_actions(row["evaluation_criteria"]["actions"])
        assert actions and all(a["name"] in {t.name for t in telecom.TelecomEnv.tool_list} for a in actions)
        one, two = make_env({"env": "tau2-telecom", "env_spec": spec}), make_env({"env": "tau2-telecom", "env_spec": spec})
        start = one.state_hash()
        one.apply(actions, strict=True), two.apply(actions, strict=True)
        assert one.state_hash() == two.state_hash() != start
    env = make_env({"env": "tau2-telecom"})
    start = env.state_hash()
    assert '"customer_id": "C1001"' in env.call("get_customer_by_phone", {"phone_number": "555-123-2002"})
    assert '"data_limit_gb": 15.0' in env.call("get_data_usage", {"customer_id": "C1001", "line_id": "L1002"})
    assert env.state_hash() == start  # reads change nothing
    with pytest.raises(EnvError, match="not found for customer"):
        env.call("enable_roaming", {"customer_id": "C1001", "line_id": "L9999"})
    with pytest.raises(EnvError, match="positive"):
        env.call("refuel_data", {"customer_id": "C1001", "line_id": "L1002", "gb_amount": -1})
    with pytest.raises(EnvError, match="must be suspended"):
        env.call("resume_line", {"customer_id": "C1001", "line_id": "L1002"})
    assert env.state_hash() == start
    out = env.call("refuel_data", {"customer_id": "C1001", "line_id": "L1002", "gb_amount": 2.0})
    assert '"charge": 4.0' in out and env.state_hash() != start  # Premium plan: $2/GB, billed on a draft bill
