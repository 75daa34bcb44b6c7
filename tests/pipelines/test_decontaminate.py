"""Decontamination: 13-gram hits against benchmark files and `datasets` datasets are
removed and listed, and tasks that are benchmark items (whole or wrapped); near-misses, short
generic texts in conversations and system prompts are not hits."""

from __future__ import annotations

import json

import pytest

from pipelines.config import ConfigError, DecontamConfig, RunConfig
from pipelines.decontaminate import BenchmarkIndex, decontaminate, gram_hashes, load_index, words
from schemas import Message, Task, Trajectory, Verdict

BENCH_Q = ("A farmer has seventeen sheep and all but nine run away through a gap in the old stone wall; "
           "how many sheep does the farmer still have left in the field")
OTHER_Q = "Compute the area of a triangle whose sides measure thirteen fourteen and fifteen units in length exactly"


def traj(tid, question, answer="The answer is 9.", system="You are helpful."):
    task = Task(id=f"task-{tid}", domain="math", payload={"question": question, "answer": "9"})
    return Trajectory(
        id=tid, task_id=task.id, domain="math", task=task, verdict=Verdict(passed=True, score=1.0),
        messages=[Message(role="system", content=system), Message(role="user", content=question),
                  Message(role="assistant", content=answer)],
    )


def index(*texts, n=13, min_words=8):
    return BenchmarkIndex.build([("bench", list(texts))], n=n, min_words=min_words)


def test_copied_benchmark_question_is_removed_even_reformatted():
    reformatted = BENCH_Q.upper().replace(" ", "  ").replace(";", " --")
    res = decontaminate([traj("a", reformatted), traj("b", OTHER_Q)], index(BENCH_Q))
    assert [t.id for t in res.kept] == ["b"]
    (hit,) = res.removed
    assert hit["id"] == "a" and hit["benchmark"] == "bench" and hit["where"] == "task"
    assert hit["match"] == " ".join(words(BENCH_Q))  # the task is the benchmark item, whole
    # inside a longer task it is the 13-gram that matches
    (hit,) = decontaminate([traj("a", "Please solve: " + reformatted)], index(BENCH_Q)).removed
    assert len(hit["match"].split()) == 13 and hit["match"] in " ".join(words(BENCH_Q))


def test_overlap_in_the_answer_only_is_caught_in_the_trajectory():
    leaked = "I recall: " + BENCH_Q + " -> 9"
    res = decontaminate([traj("a", OTHER_Q, answer=leaked)], index(BENCH_Q), where=["trajectory"])
    assert res.removed and res.removed[0]["where"] == "trajectory"
    # checking tasks only, the same trajectory stays
    assert not decontaminate([traj("a", OTHER_Q, answer=leaked)], index(BENCH_Q), where=["task"]).removed


def test_twelve_shared_words_are_not_a_13_gram_hit():
    twelve = " ".join(words(BENCH_Q)[:12]) + " zebra " + " ".join(words(BENCH_Q)[12:24:2])
    assert not decontaminate([traj("a", twelve)], index(BENCH_Q)).removed


def test_min_hits_raises_the_bar():
    partial = " ".join(words(BENCH_Q)[:14])  # exactly two 13-grams
    assert decontaminate([traj("a", partial)], index(BENCH_Q), min_hits=2).removed
    assert not decontaminate([traj("a", partial)], index(BENCH_Q), min_hits=3).removed


def test_system_prompt_is_not_checked():
    res = decontaminate([traj("a", OTHER_Q, system=BENCH_Q)], index(BENCH_Q))
    assert not res.removed


def test_short_benchmark_texts_match_whole_and_tiny_ones_only_as_a_whole_task():
    short = "what is the capital city of the country of france"  # 10 words < 13
    idx = index(short, "what is two plus two")  # the second is under min_words
    assert list(idx.short) == [10]
    assert decontaminate([traj("a", "Quick: What is the capital city of the country of France?")], idx).removed
    # a tiny benchmark text inside a conversation is too generic to count ...
    assert not decontaminate([traj("b", OTHER_Q, answer="So what is two plus two? Four.")], idx).removed
    # ... but a task that is that benchmark item (MMATH has 4-word problems), whole or wrapped in
    # an instruction, is a task-level hit
    for task in ("What is two plus two?", "Tell me: what is two plus two, then add one"):
        (hit,) = decontaminate([traj("c", task, answer="4")], idx).removed
        assert hit["where"] == "task" and hit["match"] == "what is two plus two"
    assert not decontaminate([traj("d", "two plus two")], idx).removed  # under 4 words: never


def test_gram_hashes_count():
    assert len(gram_hashes(words(BENCH_Q), 13)) == len(words(BENCH_Q)) - 12
    assert len(gram_hashes(["a"] * 5, 13)) == 0


def test_sources_from_files_and_datasets(tmp_path):
    import datasets

    (tmp_path / "b.jsonl").write_text(json.dumps({"problem": BENCH_Q}) + "\n")
    (tmp_path / "c.txt").write_text(OTHER_Q + "\n\n")
    datasets.Dataset.from_dict({"question": ["unrelated text " * 5]}).save_to_disk(str(tmp_path / "ds"))
    cfg = DecontamConfig(sources=[
        {"path": str(tmp_path / "b.jsonl"), "fields": ["problem"], "name": "jsonl-bench"},
        {"path": str(tmp_path / "c.txt")},
        {"dataset": str(tmp_path / "ds")},
    ])
    idx = load_index(cfg)
    assert idx.texts_per_benchmark == {"jsonl-bench": 1, "c": 1, "ds": 1}
    res = decontaminate([traj("a", BENCH_Q), traj("b", OTHER_Q), traj("c", "fresh words " * 10)], idx)
    assert {(h["id"], h["benchmark"]) for h in res.removed} == {("a", "jsonl-bench"), ("b", "c")}
    assert [t.id for t in res.kept] == ["c"]
    report = res.report(13)  # what run.py writes under report.json extra.decontamination
    assert report["removed"] == 2 and report["hits"] == res.removed and report["ngram"] == 13
    assert report["hits_per_benchmark"] == {"jsonl-bench": 1, "c": 1, "ds": 0}
    assert all(h["match"] in " ".join(words(BENCH_Q + " " + OTHER_Q)) for h in report["hits"])
    assert res.summary() == {"checked": {"jsonl-bench": 1, "c": 1, "ds": 1},
                             "hits": {"jsonl-bench": 1, "c": 1, "ds": 0}, "benchmark_seeds": {}}


def test_bad_sources_are_one_line_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_index(DecontamConfig(sources=[{"path": str(tmp_path / "missing.jsonl")}]))
    (tmp_path / "b.jsonl").write_text(json.dumps({"problem": BENCH_Q}) + "\n")
    with pytest.raises(ConfigError, match="no field"):
        load_index(DecontamConfig(sources=[{"path": str(tmp_path / "b.jsonl")}]))  # default field: question
    with pytest.raises(ValueError, match="exactly one"):
        RunConfig(domain="math", decontam={"sources": [{}]})


def test_disabled_or_empty_index_keeps_everything():
    assert len(load_index(DecontamConfig(enabled=False, sources=[{"path": "/nope.txt"}]))) == 0
    res = decontaminate([traj("a", BENCH_Q)], index())
    assert [t.id for t in res.kept] == ["a"] and not res.removed


@pytest.mark.ray
def test_ray_chunks_agree_with_in_process():
    import ray

    trajs = [traj(f"t{i:03d}", BENCH_Q if i % 7 == 0 else f"{OTHER_Q} variant {i}") for i in range(60)]
    local = decontaminate(trajs, index(BENCH_Q), chunk_size=8, use_ray=False)
    started = not ray.is_initialized()  # another test of the session may have started Ray
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        remote = decontaminate(trajs, index(BENCH_Q), chunk_size=8)
    finally:
        if started:
            ray.shutdown()
    assert remote.removed == local.removed and len(local.removed) == 9
