"""Token provenance on the reviewer page: assistant turns drawn from the token trace with
inserted text marked, a legend, the loss view from the trace, and the "has inserted text" filter."""

from __future__ import annotations

import re
from html import unescape

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from pipelines.review.app import create_app
from pipelines.review.listing import Filters
from pipelines.tokenize import RowOptions, loss_mask
from tests.pipelines.review.tracefixture import INSERTED_PREFIX


@pytest.fixture(scope="module")
def client(trace_run):
    return TestClient(create_app(trace_run[0], Filters(sample=None)))


def runs(html: str, source: int) -> list[str]:
    turns = "".join(re.findall(r'<pre class="trace-turn">(.*?)</pre>', html, re.DOTALL))
    return [unescape(t) for t in re.findall(rf'<span class="run src-{source}"[^>]*>(.*?)</span>', turns, re.DOTALL)]


def test_the_inserted_filter_lists_exactly_the_trajectories_with_inserted_tokens(client, trace_run):
    expected = sorted(i for i, t in trace_run[1].items() if t.token_trace and 3 in t.token_trace.sources)
    assert expected == ["t-ins1", "t-ins2"]
    body = client.get("/api/trajectories?inserted=yes").json()
    assert sorted(r["id"] for r in body["rows"]) == expected and body["matching"] == 2
    assert body["counts"]["inserted"] == {"no": 4, "yes": 2}
    # counts under the other filters, as for every facet: the failed one is t-ins2 alone
    assert client.get("/api/trajectories?verdict=failed").json()["counts"]["inserted"] == {"yes": 1}
    assert sorted(r["id"] for r in client.get("/api/trajectories?inserted=no").json()["rows"]) == \
        ["t-drift4", "t-exact0", "t-guided5", "t-text3"]
    page = client.get("/?inserted=yes").text
    assert 'name="inserted"' in page and "has inserted text" in page and ">yes (2)</option>" in page
    assert page.count('class="row"') == 2


def test_the_legend_and_the_inserted_runs_are_on_the_page(client):
    html = client.get("/t/t-ins1").text
    legend = html.split('id="source-legend"')[1].split("</div>")[0]
    for source, name in ((0, "context"), (1, "sampled"), (2, "grammar"), (3, "inserted")):
        assert f'class="run src-{source}"' in legend and name in legend
    inserted = runs(html, 3)
    assert inserted == ["<tool_call>\n", "\n</tool_call>", INSERTED_PREFIX]  # exactly the framework's text
    assert any(r.startswith('{"name": "python"') for r in runs(html, 2))  # the grammar-constrained call
    assert runs(html, 1) == ["Let me compute.\n", "<|im_end|>", "\\boxed{5}.<|im_end|>"]  # the sampled end tokens too
    assert re.search(r'class="run src-1"[^>]*title="sampled · \d+ tokens · mean logprob -0\.500"', html)
    assert 'data-source="3" title="inserted · ' in html and "mean logprob" not in \
        re.search(r'data-source="3" title="([^"]*)"', html).group(1)  # nothing sampled, no logprob
    assert "drift:" not in html
    plain = client.get("/t/t-exact0").text
    assert runs(plain, 3) == [] and runs(plain, 2) == [] and 'id="source-legend"' in plain


def test_drift_is_flagged_and_text_mode_turns_render_as_before(client, trace_run):
    assert "⚠ drift" in client.get("/t/t-drift4").text
    text = client.get("/t/t-text3").text
    assert 'class="trace-turn"' not in text and "no token trace (text mode)" in text
    assert client.get("/api/trajectories/t-text3/trace").json()["status"] == "none"
    counts = client.get("/api/trajectories/t-ins1/trace").json()["counts"]
    trace = trace_run[1]["t-ins1"].token_trace
    assert counts == {"context": trace.count(0), "sampled": trace.count(1), "grammar": trace.count(2),
                      "inserted": trace.count(3)} and counts["inserted"] > 0


def test_loss_view_of_a_shard_row_carries_sources_and_no_loss_on_inserted(client, trace_run):
    run_dir = trace_run[0]
    row = next(r for f in sorted((run_dir / "shards").glob("*.parquet")) for r in pq.read_table(f).to_pylist()
               if r["trajectory_id"] == "t-ins1")
    body = client.get("/api/trajectories/t-ins1/tokens").json()
    assert body["status"] == "ok" and body["token_exact"] is True and body["text_drift"] is False
    assert [t["id"] for t in body["tokens"]] == row["input_ids"] == trace_run[1]["t-ins1"].token_trace.ids
    assert [t["source"] for t in body["tokens"]] == row["token_source"]
    assert [t["loss"] for t in body["tokens"]] == row["loss_mask"]
    assert not any(t["loss"] for t in body["tokens"] if t["source"] == 3)
    html = client.get("/t/t-ins1").text
    assert html.count('data-src="3"') == sum(1 for s in row["token_source"] if s == 3)


def test_loss_view_of_a_trajectory_without_a_row_comes_from_its_trace(client, trace_run):
    t = trace_run[1]["t-ins2"]  # failed: not in the shards
    body = client.get("/api/trajectories/t-ins2/tokens").json()
    assert body["status"] == "trace" and "not in any shard set" in body["note"]
    assert [x["id"] for x in body["tokens"]] == t.token_trace.ids
    assert [x["loss"] for x in body["tokens"]] == loss_mask(t.token_trace, t.messages, RowOptions(policy="assistant"))
    assert body["num_loss_tokens"] > 0 and not any(x["loss"] for x in body["tokens"] if x["source"] == 3)
    assert 'id="token-view"' in client.get("/t/t-ins2").text


def test_review_cli_has_an_inserted_flag(trace_run, monkeypatch):
    import pipelines.review.serve as serve_module
    from pipelines.cli import app

    seen = {}
    monkeypatch.setattr(serve_module, "serve", lambda run_dir, filters, *a, **k: seen.update(filters=filters))
    result = CliRunner().invoke(app, ["review", str(trace_run[0]), "--inserted", "--port", "0"])
    assert result.exit_code == 0, result.output
    assert seen["filters"].inserted == "yes" and "inserted=yes" in seen["filters"].query()
