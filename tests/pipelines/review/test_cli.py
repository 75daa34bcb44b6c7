"""`trajforge review` from the command line: it prints a URL that serves the app;
`--export` writes the accepted ids and the reviewed shard set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.review.marks import MarkStore

REPO = Path(__file__).resolve().parents[3]


def test_review_export_writes_ids_and_shards(fresh_run):
    run_dir, _ = fresh_run
    MarkStore(run_dir).set("t-cot03", "accept")
    result = CliRunner().invoke(app, ["review", str(run_dir), "--export"])
    assert result.exit_code == 0, result.output
    assert (run_dir / "review" / "accepted.txt").read_text() == "t-cot03\n"
    assert (run_dir / "shards-reviewed" / "manifest.json").is_file()


def test_review_serves_at_the_printed_url(fixture_run):
    run_dir, _ = fixture_run
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "review", str(run_dir), "--port", "0", "--domain", "math",
         "--verdict", "failed", "--reason", "boxed wrong #N", "--sample", "3", "--seed", "9"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        seen = []  # library warnings on stderr may come first: read up to the URL line
        while not (seen and " at http://127.0.0.1:" in seen[-1]):
            line = proc.stdout.readline()
            assert line, "server exited before printing its URL:\n" + "".join(seen)
            seen.append(line)
        url = seen[-1].split(" at ")[1].split()[0]
        assert "domain=math" in url and "verdict=failed" in url and "sample=3" in url and "seed=9" in url
        assert "reason=boxed+wrong+%23N" in url
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and page.text.count('class="row"') == 3
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.parametrize("args, message", [
    (["/nonexistent/run"], "no run folder at /nonexistent/run"),
    (["{run}", "--verdict", "maybe"], "--verdict must be passed or failed"),
])
def test_bad_input_is_one_line(args, message, fixture_run):
    args = [a.format(run=fixture_run[0]) for a in args]
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "review", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
