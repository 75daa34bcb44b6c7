"""report.html: every plot is there, the page is self-contained, and `trajforge report`
recomputes report.json from the store while keeping what only the run measured."""

from __future__ import annotations

import json
import re
import shutil

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.report_html import regenerate, render_html, throughput, write_report_html
from schemas import Timings, TokenCounts, Trajectory
from tests.pipelines.review.runfixture import make_run

TITLES = ("pass rate per domain", "branch yield", "trajectories per stage", "removals", "shard row length",
          "loss-carrying tokens per row", "throughput over time")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, model_dir):
    path = tmp_path_factory.mktemp("report") / "run"
    make_run(path, model_dir)
    return path


def test_page_has_every_plot_and_needs_nothing_from_outside(run_dir):
    html = render_html(run_dir)
    assert html.count("<svg") >= len(TITLES)
    for title in TITLES:
        assert title in html, title
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # no CDN, no remote fonts
    assert "<script" not in html
    # pass rate per domain from the store: math 4/8 originals, agentic-cot 4/6
    assert "math (4/8)" in html and "agentic-cot (4/6)" in html
    assert "math (2/4)" in html  # branch yield: 2 of 4 failed parents rescued
    assert "after decontamination" in html and ">2</text>" in html  # decontamination removals from report.json
    # which benchmarks were checked, and hits per benchmark (zeros too)
    assert "mmath (374 texts)" in html and "champ (270 texts)" in html and "decontamination hits per benchmark" in html


def test_throughput_bins_hold_every_completion_token():
    ts = [Trajectory(id=f"t{i}", task_id="k", domain="math", messages=[], tokens=TokenCounts(completion=10 * i),
                     timings=Timings(started_at=1000.0 + i, total_s=1.0)) for i in range(1, 11)]
    points = throughput(ts, bins=5)
    width = points[1][0] - points[0][0]
    assert len(points) == 5 and sum(rate * width for _, rate in points) == pytest.approx(sum(10 * i for i in range(1, 11)))
    assert throughput([t.model_copy(update={"timings": Timings()}) for t in ts]) == []


def test_regenerate_recomputes_from_the_store_and_keeps_run_only_fields(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    before = json.loads((copy / "report.json").read_text())
    broken = {**before, "passed": 999, "branches": 0}
    (copy / "report.json").write_text(json.dumps(broken))
    result = CliRunner().invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    after = json.loads((copy / "report.json").read_text())
    assert after["passed"] == before["passed"] == 10 and after["branches"] == 8
    assert after["wall_s"] == 12.5 and after["dedupe_removed_exact"] == 1 and after["extra"]["decontamination"]["removed"] == 2
    assert (copy / "report.html").stat().st_size > 1000
    # why the failures failed, counted by reason shape (the fixture's "boxed wrong #3" etc.)
    reasons = after["failure_reasons"]
    assert sum(reasons.values()) == after["failed"] and reasons["boxed wrong #N"] >= 2
    assert "why trajectories failed — math" in (copy / "report.html").read_text()


def test_reason_shapes_blank_the_particulars():
    from pipelines.report import reason_shape

    assert reason_shape("boxed '9' != gold '8'") == reason_shape("boxed '12' != gold '3/4'") == "boxed '…' != gold '…'"
    assert reason_shape("boxed '8' == gold '8', but wrong arithmetic: '72 / 9 = 9' (72 / 9 is 8)") == \
        "boxed '…' == gold '…', but wrong arithmetic: '…' (…)"
    assert reason_shape("3 of 5 tests failed") == "N of N tests failed"
    assert reason_shape("") == "(no reason)" and len(reason_shape("x" * 500)) == 90


def test_mixture_folder_gets_one_page_over_its_domain_runs(run_dir, tmp_path):
    mix = tmp_path / "all"
    shutil.copytree(run_dir, mix / "math")
    (mix / "report.json").write_text(json.dumps({"domains": {}, "runs": {"math": {"status": "ok"}}}))
    written = regenerate(mix)
    assert mix / "report.html" in written and mix / "math" / "report.html" in written
    assert "trajectories per stage — math" in (mix / "report.html").read_text()
    assert json.loads((mix / "report.json").read_text())["runs"]["math"]["status"] == "ok"  # mixing report kept
    assert write_report_html(mix).is_file()


@pytest.fixture(scope="module")
def trace_run(tmp_path_factory, model_dir):
    from tests.pipelines.review.tracefixture import make_trace_run

    path = tmp_path_factory.mktemp("report-trace") / "run"
    return path, make_trace_run(path, model_dir)


def test_report_counts_token_provenance_per_domain(trace_run):
    run_dir, trajectories = trace_run
    prov = json.loads((run_dir / "report.json").read_text())["provenance"]
    inserted = sum(t.token_trace.count(3) for t in trajectories if t.id == "t-ins1")  # the one passed row with any
    assert inserted > 0
    shards = [r for f in sorted((run_dir / "shards").glob("math-*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert prov["math"]["shards"] == {"rows": 4, "token_exact_rows": 4, "not_token_exact_rows": 0, "drift_rows": 1,
                                      "inserted_tokens": inserted,
                                      "loss_tokens": sum(r["num_loss_tokens"] for r in shards)}
    assert prov["math"]["store"] == {
        "trajectories": 5, "with_trace": 5, "with_inserted": 2, "with_guided": 2,
        "inserted_tokens": sum(t.token_trace.count(3) for t in trajectories if t.token_trace),
        "guided_tokens": sum(t.token_trace.count(2) for t in trajectories if t.token_trace)}
    assert prov["agentic-cot"]["shards"]["not_token_exact_rows"] == 1 and prov["agentic-cot"]["shards"]["token_exact_rows"] == 0
    assert prov["agentic-cot"]["store"]["trajectories"] == 1 and prov["agentic-cot"]["store"]["with_trace"] == 0
    # under the default policy no inserted token carries loss
    assert all(not (m and s == 3) for r in shards for m, s in zip(r["loss_mask"], r["token_source"]))


def test_report_page_shows_provenance_and_highlights_drift(trace_run, tmp_path):
    run_dir, _ = trace_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    before = json.loads((copy / "report.json").read_text())["provenance"]
    regenerate(copy)  # `trajforge report` recomputes the same provenance from the store and the manifest
    assert json.loads((copy / "report.json").read_text())["provenance"] == before
    html = (copy / "report.html").read_text()
    section = html.split('id="provenance"')[1].split("</section>")[0]
    math = section.split('data-domain="math"')[1].split("</tr>")[0]
    cot = section.split('data-domain="agentic-cot"')[1].split("</tr>")[0]
    assert '<td class="n shards-drift_rows bad">1</td>' in math
    assert '<td class="n shards-drift_rows">0</td>' in cot
    assert '<td class="n store-with_inserted">2</td>' in math and '<td class="n store-with_guided">2</td>' in math
    assert '<td class="n shards-token_exact_rows">4</td>' in math and '<td class="n shards-not_token_exact_rows">1</td>' in cot


def test_text_mode_runs_report_no_exact_rows_and_old_reports_say_why(run_dir, tmp_path):
    prov = json.loads((run_dir / "report.json").read_text())["provenance"]
    assert prov["math"]["store"]["with_trace"] == 0 and prov["math"]["shards"]["token_exact_rows"] == 0
    assert prov["math"]["shards"]["not_token_exact_rows"] == prov["math"]["shards"]["rows"] > 0
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    old = json.loads((copy / "report.json").read_text())
    del old["provenance"]
    (copy / "report.json").write_text(json.dumps(old))
    assert "no provenance in report.json" in render_html(copy)


def test_page_reads_light_columns_with_the_plots_of_whole_trajectories(run_dir):
    from pipelines.report_html import _per_domain, outlines
    from pipelines.review.runfolder import RunFolder

    run = RunFolder(run_dir)
    light, whole = outlines(run), run.trajectories
    assert len(light) == len(whole) > 0
    assert _per_domain(light) == _per_domain(whole)
    assert throughput(light, bins=7) == throughput(whole, bins=7)
