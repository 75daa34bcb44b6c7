"""The synthesized file-system tasks: deterministic per seed, and each one's ground
truth runs cleanly on its own tree and asks for a change or an answer."""

from __future__ import annotations

import itertools

import pytest

from environments.files import FilesEnv
from synthesizers.domains.tool_use.files_tasks import EASY_KINDS, files_tasks


def test_files_tasks_are_deterministic_and_their_ground_truth_runs():
    rows = list(itertools.islice(files_tasks(3), 20))
    assert rows == list(itertools.islice(files_tasks(3), 20))  # deterministic
    assert rows != list(itertools.islice(files_tasks(4), 20))  # the seed matters
    for row in rows:
        start = FilesEnv(row["env_spec"])
        end = FilesEnv(row["env_spec"])
        end.apply(row["expected_actions"], strict=True)
        changes = any(a["name"] in end.write_tool_names() for a in row["expected_actions"])
        assert (end.state_hash() != start.state_hash()) == changes
        assert changes or row["communicate_info"]  # every task asks for a change or an answer


def test_easy_kinds_make_one_write_and_unknown_kinds_fail():
    for row in itertools.islice(files_tasks(5, EASY_KINDS), 10):
        assert len(row["expected_actions"]) == 1
        assert row["expected_actions"][0]["name"] in FilesEnv({}).write_tool_names()
    with pytest.raises(ValueError, match="unknown files task kind"):
        next(files_tasks(0, ["juggle"]))
