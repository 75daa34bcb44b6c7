"""Environment QA of stateful tasks (``environments.qa``): every shipped τ² task is checked
the way seeding checks it; sound, unsound and idle-pass tasks are told apart."""

from __future__ import annotations

import collections

from environments import tau2_telecom as telecom
from environments.qa import check_stateful
from environments.tau2_data import tasks as tau2_tasks


def _payload(domain: str, row: dict) -> dict:
    criteria = row.get("evaluation_criteria") or {}
    payload = {"env": f"tau2-{domain}", "expected_actions": telecom.agent_actions(criteria.get("actions") or []),
               "communicate_info": [str(x) for x in criteria.get("communicate_info") or []]}
    if domain == "telecom":
        payload["env_spec"] = {"init": telecom.init_actions(row)}
    return payload


def test_every_shipped_tau2_task_is_checked():
    """Under τ²'s own semantics four retail golds hold a write τ²'s tools refuse (the expected
    state then lacks the change the task asks for): dropped. 19 airline and 5 retail tasks
    (refusals: no write, nothing to tell) pass with no action at all: kept and marked."""
    found = {}
    for domain in ("airline", "retail", "telecom"):
        rows = telecom.tasks() if domain == "telecom" else tau2_tasks(domain)
        found[domain] = collections.Counter(
            ("unsound" if qa.unsound else "noop" if qa.noop_passes else "sound")
            for qa in (check_stateful(_payload(domain, row)) for row in rows))
    assert found["airline"] == {"sound": 31, "noop": 19}
    assert found["retail"] == {"sound": 105, "noop": 5, "unsound": 4}
    assert found["telecom"] == {"sound": 1688}


def test_sound_task_and_its_marks():
    qa = check_stateful({"env": "tau2-airline", "expected_actions": [
        {"name": "get_user_details", "arguments": {"user_id": "mia_li_3668"}},
        {"name": "get_user_details", "arguments": {"user_id": "no_such_user"}},  # a failing read is allowed
        {"name": "send_certificate", "arguments": {"user_id": "mia_li_3668", "amount": 50}}]})
    assert qa.unsound is None and not qa.noop_passes and qa.writes == 1
    assert qa.to_payload() == {"unsound": None, "noop_passes": False, "writes": 1}


def test_failing_write_is_unsound():
    qa = check_stateful({"env": "tau2-airline", "expected_actions": [
        {"name": "cancel_reservation", "arguments": {"reservation_id": "NOPE00"}}]})
    assert qa.unsound == "expected write 0 (cancel_reservation) fails: Reservation NOPE00 not found"


def test_writes_that_change_nothing_are_unsound():
    """Writing a file with the content it already has: the expected state is the initial one
    although the task asks for a change, so the verifier would pass an idle agent."""
    spec = {"files": {"/home/user/a.txt": "same\n"}}
    qa = check_stateful({"env": "files", "env_spec": spec, "expected_actions": [
        {"name": "write_file", "arguments": {"path": "/home/user/a.txt", "content": "same\n"}}]})
    assert qa.unsound == "expected writes leave the state as it was"


def test_idle_pass_is_marked_unless_something_must_be_told():
    airline = {"env": "tau2-airline", "expected_actions": [
        {"name": "get_reservation_details", "arguments": {"reservation_id": "4WQ150"}}]}
    assert check_stateful(airline).noop_passes and check_stateful(airline).unsound is None
    assert not check_stateful({**airline, "communicate_info": ["4WQ150"]}).noop_passes


def test_environment_that_does_not_build_is_unsound():
    qa = check_stateful({"env": "no-such-env", "expected_actions": []})
    assert qa.unsound is not None and qa.unsound.startswith("environment does not build: ValueError: unknown tool-use environment")
