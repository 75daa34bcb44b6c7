"""The arithmetic benchmark counts alarms where they are: CHAMP-shaped data of our own."""

from __future__ import annotations

from bench.bench_arithmetic import champ_file, scan


def problem(steps: list[str], *model_turns: str) -> dict:
    return {"solution": {"steps": [{"_text": s} for s in steps]},
            "conversations": {"GPT-4|0-Shot": {"messages": [{"role": "User", "text": "q"}] +
                                                [{"role": "Model.GPT-4", "text": t} for t in model_turns]}}}


def test_alarms_are_counted_apart_for_human_and_model_text():
    result = scan({
        "P1": problem(["So 3 * 4 = 12.", "Then 12 + 1 = 13."], "3 * 4 = 12", "3 * 4 = 13 and 2 + 2 = 5"),
        "P2": problem(["By the formula, 10 / 4 = 2.6."], "No claims here."),
    })
    assert (result["human"]["solutions"], result["human"]["claims"], result["human"]["alarms"]) == (2, 3, 1)
    assert result["human"]["alarm_examples"] == ["'10 / 4 = 2.6' (10 / 4 is 2.5)"]
    model = result["model"]
    assert (model["turns"], model["claims"], model["alarms"], model["turns_with_alarm"]) == (3, 3, 2, 1)


def test_no_false_alarm_in_champs_human_solutions():
    """CI's guard on the checker's precision: 270 right solutions by people raise no alarm."""
    import json

    path = champ_file()
    # make setup installs it (requirements/data.txt): missing data is a failure, never a pass
    assert path is not None, "champ-dataset is not installed: run `make setup` (requirements/data.txt)"
    problems = {k: {**p, "conversations": {}} for k, p in json.loads(path.read_text())["problems"].items()}
    human = scan(problems)["human"]
    assert human["solutions"] == 270 and human["claims"] >= 30
    assert human["alarms"] == 0, human["alarm_examples"]
