"""The reviewer API and pages through FastAPI's TestClient on a real (synthetic) run folder."""

from __future__ import annotations

import json
import threading

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from pipelines.review.app import create_app
from pipelines.review.listing import Filters
from pipelines.review.marks import MarkStore
from pipelines.shards import sha256_file
from schemas import Manifest


@pytest.fixture(scope="module")
def client(fixture_run):
    return TestClient(create_app(fixture_run[0], Filters(sample=None)))


def ids(client, query=""):
    return [r["id"] for r in client.get(f"/api/trajectories?{query}").json()["rows"]]


def test_counts_and_filters_match_the_store(client, fixture_run):
    trajs = fixture_run[1].values()
    body = client.get("/api/trajectories").json()
    assert body["total"] == body["matching"] == len(trajs) == 22
    assert body["counts"]["domain"] == {"agentic-cot": 6, "math": 16}
    assert body["counts"]["kind"] == {"branch": 8, "original": 14}
    assert body["counts"]["verdict"] == {"failed": 12, "passed": 10}
    narrowed = client.get("/api/trajectories?domain=math&verdict=passed&kind=branch").json()
    assert sorted(r["id"] for r in narrowed["rows"]) == ["b-math01-0", "b-math05-0"]
    # counts of a facet are taken under the *other* filters: what choosing each value would show
    assert narrowed["counts"]["kind"] == {"branch": 2, "original": 4}
    assert narrowed["counts"]["domain"] == {"math": 2}
    assert all(r["domain"] == "agentic-cot" and not r["passed"] for r in
               client.get("/api/trajectories?domain=agentic-cot&verdict=failed").json()["rows"])


def test_the_reason_facet_counts_and_filters_by_reason_shape(client):
    counts = client.get("/api/trajectories?domain=math&verdict=failed").json()["counts"]["reason"]
    assert counts == {"boxed wrong #N": 4, "branch N of N": 6}  # the fixture's math failures, particulars blanked
    rows = client.get("/api/trajectories?reason=branch+N+of+N&verdict=failed").json()["rows"]
    assert len(rows) == 6 and all(r["id"].startswith("b-math") and not r["passed"] for r in rows)
    assert 'name="reason"' in client.get("/").text


def test_sample_is_reproducible_and_filter_consistent(client):
    first = ids(client, "sample=7&seed=3")
    assert len(first) == 7 and first == ids(client, "sample=7&seed=3")
    assert ids(client, "sample=7&seed=4") != first
    # narrowing keeps the order: the math part of the sample is a prefix of the math sample
    everything = ids(client, "seed=3")
    math_ids = [i for i in everything if "math" in i]
    assert ids(client, "domain=math&seed=3") == math_ids
    assert ids(client, "domain=math&seed=3&sample=4") == math_ids[:4]
    assert client.get("/api/trajectories?sample=x").status_code == 400


def test_list_page_shows_counts_and_links(client):
    html = client.get("/?domain=math&kind=branch&sample=5&seed=1").text
    assert "showing <b id=\"shown\">5</b> of <b id=\"matching\">8</b>" in html
    assert html.count('class="row"') == 5
    assert "/t/b-math" in html and "domain=math" in html


def test_trajectory_page_shows_messages_tools_verdict_and_lineage(client):
    html = client.get("/t/b-math01-0").text
    assert "branch of <a href=\"/t/t-math01" in html and "cut before message <b>2</b>" in html
    assert "/t/b-math01-1" in html  # the sibling, with its verdict
    assert "branch 0 of 1" in html  # this branch's verdict reason
    parent = client.get("/t/t-math01").text
    assert "print(11 + 3)" in parent and "observation of <b>python</b>" in parent  # call args + observation
    assert "b-math01-0" in parent and "b-math01-1" in parent  # children listed
    assert "not in any shard set" in parent  # failed -> not in the shards
    assert 'class="tool-failure"' not in parent  # its call succeeded
    assert '<span class="tool-failure">error: refused</span>' in client.get("/t/t-math03").text  # the result's reason
    cot = client.get("/t/t-cot00").text
    for phase in ("analysis", "plan", "action", "reflection", "summary"):
        assert f'class="phase ph-{phase}"' in cot
    assert "&lt;analysis&gt;" not in cot.split('id="messages"')[1].split('id="tokens"')[0]  # tags became labels
    assert client.get("/t/nope").status_code == 404


def test_token_view_decodes_the_exact_shard_row_and_flags_loss(client, fixture_run, model_dir):
    from transformers import AutoTokenizer

    body = client.get("/api/trajectories/t-cot01/tokens").json()
    assert body["status"] == "ok" and body["tokenizer_id"].endswith("/" + model_dir.name)
    run_dir = fixture_run[0]
    manifest = Manifest.model_validate_json((run_dir / "shards" / "manifest.json").read_text())
    rows = [r for e in manifest.shards for r in pq.read_table(run_dir / "shards" / e.file).to_pylist()]
    row = next(r for r in rows if r["trajectory_id"] == "t-cot01")
    assert [t["id"] for t in body["tokens"]] == row["input_ids"]
    assert [t["loss"] for t in body["tokens"]] == row["loss_mask"]
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    assert "".join(t["text"] for t in body["tokens"]) == tok.decode(row["input_ids"])
    loss_text = "".join(t["text"] for t in body["tokens"] if t["loss"])
    assert "<summary>The sum is \\boxed{22}.</summary>" in loss_text and "USERTEXT" not in loss_text
    html = client.get("/t/t-cot01").text
    assert html.count('class="tk loss"') == row["num_loss_tokens"]
    assert client.get("/api/trajectories/b-math00-0/tokens").status_code == 404


def test_marks_persist_across_app_restarts_and_can_be_cleared(fresh_run):
    run_dir, _ = fresh_run
    c = TestClient(create_app(run_dir))
    saved = c.post("/api/marks/t-cot00", json={"decision": "accept", "comment": "clean", "reviewer": "ann"}).json()
    assert saved["decision"] == "accept"
    c.post("/api/marks/t-math00", json={"decision": "reject", "comment": "too easy"})
    assert c.post("/api/marks/t-math02", json={"decision": "maybe"}).status_code == 400
    assert c.post("/api/marks/nope", json={"decision": "accept"}).status_code == 404
    again = TestClient(create_app(run_dir))  # a restarted server reads the marks from the run folder
    assert {k: v["decision"] for k, v in again.get("/api/marks").json().items()} == {"t-cot00": "accept", "t-math00": "reject"}
    assert '<span class="mark accept" title="clean">' in again.get("/").text
    assert "clean</textarea>" in again.get("/t/t-cot00").text
    assert [r["id"] for r in again.get("/api/trajectories?mark=reject").json()["rows"]] == ["t-math00"]
    again.post("/api/marks/t-math00", json={"decision": "clear"})
    assert list(again.get("/api/marks").json()) == ["t-cot00"]
    history = [json.loads(line) for line in (run_dir / "review" / "history.jsonl").read_text().splitlines()]
    assert [h["decision"] for h in history] == ["accept", "reject", "clear"]


def test_concurrent_reviewers_lose_no_marks(fresh_run):
    run_dir, trajectories = fresh_run
    targets = sorted(trajectories)[:20]
    barrier = threading.Barrier(len(targets))
    errors = []

    def review(i: int, tid: str) -> None:
        try:
            store = MarkStore(run_dir)  # each reviewer with its own handle, as separate servers would be
            barrier.wait()
            store.set(tid, "accept" if i % 2 else "reject", comment=f"by {i}", reviewer=f"r{i}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=review, args=(i, t)) for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    marks = MarkStore(run_dir).all()
    assert sorted(marks) == targets
    assert all(marks[t]["comment"] == f"by {i}" for i, t in enumerate(targets))
    lines = (run_dir / "review" / "history.jsonl").read_text().splitlines()
    assert len(lines) == 20 and all(json.loads(line)["decision"] in ("accept", "reject") for line in lines)
    assert not list((run_dir / "review" / "marks").glob(".*"))  # no temp files left behind


def test_export_and_reviewed_shard_set(fresh_run):
    run_dir, _ = fresh_run
    c = TestClient(create_app(run_dir))
    for tid in ("t-cot00", "t-cot02", "b-math05-0", "t-math01"):  # t-math01 failed: accepted but not in shards
        c.post(f"/api/marks/{tid}", json={"decision": "accept"})
    c.post("/api/marks/t-cot01", json={"decision": "reject"})
    assert c.get("/api/export/accepted").text.split() == ["b-math05-0", "t-cot00", "t-cot02", "t-math01"]
    assert (run_dir / "review" / "accepted.txt").read_text().split() == ["b-math05-0", "t-cot00", "t-cot02", "t-math01"]
    body = c.post("/api/reviewed-shards").json()
    out = run_dir / "shards-reviewed"
    manifest = Manifest.model_validate_json((out / "manifest.json").read_text())
    assert body["rows"] == manifest.total_rows == 3
    kept = {r["trajectory_id"]: r for e in manifest.shards for r in pq.read_table(out / e.file).to_pylist()}
    assert sorted(kept) == ["b-math05-0", "t-cot00", "t-cot02"]
    source = {r["trajectory_id"]: r for f in (run_dir / "shards").glob("*.parquet") for r in pq.read_table(f).to_pylist()}
    assert all(kept[i]["input_ids"] == source[i]["input_ids"] and kept[i]["loss_mask"] == source[i]["loss_mask"] for i in kept)
    assert all(e.sha256 == sha256_file(out / e.file) for e in manifest.shards)
    assert manifest.tokenizer_id == Manifest.model_validate_json((run_dir / "shards" / "manifest.json").read_text()).tokenizer_id
    assert manifest.run_config["review"]["rows_kept"] == 3 and manifest.run_config["fixture"] is True
