"""``report.html``: the run report with plots, one self-contained file (inline SVG, no CDN).

Written at the end of every run and by ``trajforge report RUN_DIR``, which also
recomputes ``report.json`` from the store and the shards (keeping what only the
run itself could measure: wall time, rollout time, dedupe and decontamination
counts). A mixture folder (``trajforge run all``) gets one page over all its
domain runs; each domain run keeps its own page.

Plots: trajectories per stage, why trajectories failed (verdict reasons without their
particulars), pass rate per domain, branch yield, token-length
histograms of the shards, dedupe/decontamination removals, throughput over time
(completion tokens of trajectories finishing in each time bin, from their timings).
A "Provenance" table shows report.json's token provenance per domain.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipelines import report_svg as svg
from pipelines.atomic import write_json, write_text
from pipelines.report import build_report
from pipelines.review.runfolder import RunFolder
from pipelines.store_stats import StoreStats
from schemas import Manifest, Trajectory, table_to_trajectories

# Fields only the run itself measured; a regenerated report.json keeps them.
_RUN_ONLY = ("tasks", "units_total", "units_run_now", "units_resumed", "dedupe_removed_exact",
             "dedupe_removed_near", "wall_s", "rollout_s", "completion_tokens_per_s", "extra", "funnel")


def _domain_runs(run_dir: Path) -> list[Path]:
    if (run_dir / "trajectories").is_dir():
        return [run_dir]
    return sorted(p.parent for p in run_dir.glob("*/trajectories") if p.is_dir())


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def regenerate_report_json(run_dir: Path) -> dict[str, Any]:
    """Recompute a domain run's report.json from its store and shards."""
    run = RunFolder(run_dir)
    old = run.report()
    manifest = run.manifest(run_dir / "shards") if (run_dir / "shards" / "manifest.json").is_file() else None
    units = [p for folder in run.store_dirs for p in sorted(folder.glob("unit-*.parquet"))]
    # Unit by unit: the counters add up, so no more than one unit's trajectories are held at once.
    stats = StoreStats.total(StoreStats.of(table_to_trajectories(pq.read_table(p))) for p in units)
    task_ids = {t for p in units for t in pq.read_table(p, columns=["task_id"]).column("task_id").to_pylist()}
    report = build_report(
        domain=old.get("domain") or run.run_config().get("domain", "") or next(iter(stats.provenance), ""),
        tasks=old.get("tasks", len(task_ids)),
        units_total=old.get("units_total", len(units)),
        units_run_now=0,
        stats=stats,
        removed_exact=old.get("dedupe_removed_exact", 0),
        removed_near=old.get("dedupe_removed_near", 0),
        manifest=manifest or Manifest(tokenizer_id=""),
        wall_s=old.get("wall_s", 0.0),
        rollout_s=old.get("rollout_s", 0.0),
        completion_tokens_now=0,
    ).to_dict()
    report.update({k: old[k] for k in _RUN_ONLY if k in old})
    write_json(run_dir / "report.json", report)
    return report


def _cost_rows(name: str, funnel: dict[str, Any]) -> list[tuple[str, str]]:
    """The funnel's cost per accepted trajectory and per loss-carrying token, as summary rows."""
    rows = []
    for scope in ("per_accepted_trajectory", "per_loss_token"):
        cost = funnel.get(scope)
        if cost:
            rows.append((f"{name} · cost {scope.replace('_', ' ')}",
                         ", ".join(f"{key} {value:.4g}" for key, value in cost.items())))
    return rows


def _stages(report: dict[str, Any], config: dict[str, Any]) -> list[tuple[str, float]]:
    if not report:
        return []
    include_all = config.get("shards", {}).get("include") == "all"
    selected = report.get("trajectories", 0) if include_all else report.get("passed", 0)
    decontam = report.get("extra", {}).get("decontamination", {}).get("removed", 0)
    dedupe = report.get("dedupe_removed_exact", 0) + report.get("dedupe_removed_near", 0)
    return [
        ("seed tasks", report.get("tasks", 0)),
        ("rollouts (originals)", report.get("originals", 0)),
        ("+ branches", report.get("trajectories", 0)),
        ("passed", report.get("passed", 0)),
        ("selected for shards", selected),
        ("after decontamination", selected - decontam),
        ("after dedupe", selected - decontam - dedupe),
        ("shard rows", report.get("shard_rows", 0)),
    ]


@dataclass(slots=True)
class _Verdict:
    passed: bool
    infrastructure: bool


@dataclass(slots=True)
class _Timings:
    started_at: float
    total_s: float


@dataclass(slots=True)
class _Tokens:
    completion: int


@dataclass(slots=True)
class Outline:
    """What the page plots of a trajectory, read from the store's light columns (never its messages
    or token trace), so the page of a large run costs a few hundred bytes per trajectory. Shaped
    like a ``Trajectory`` where the plots look."""

    domain: str
    parent_id: str | None
    verdict: _Verdict | None
    timings: _Timings
    tokens: _Tokens


_OUTLINE_COLUMNS = ["domain", "parent_id", "passed", "failure_cause", "completion_tokens", "timings_json"]


def outlines(run: RunFolder) -> list[Outline]:
    out: list[Outline] = []
    for folder in run.store_dirs:
        for path in sorted(folder.glob("unit-*.parquet")):
            names = set(pq.ParquetFile(path).schema_arrow.names)
            table = pq.read_table(path, columns=[c for c in _OUTLINE_COLUMNS if c in names])
            for row in table.to_pylist():
                timings = json.loads(row["timings_json"] or "{}")
                verdict = None if row["passed"] is None else _Verdict(
                    row["passed"], row.get("failure_cause") == "infrastructure")
                out.append(Outline(row["domain"], row["parent_id"], verdict,
                                   _Timings(timings.get("started_at", 0.0), timings.get("total_s", 0.0)),
                                   _Tokens(row["completion_tokens"] or 0)))
    return out


def _per_domain(trajectories: list[Trajectory] | list[Outline]) -> tuple[list, list]:
    by: dict[str, list[Trajectory]] = {}
    for t in trajectories:
        by.setdefault(t.domain, []).append(t)
    pass_rate, branch_yield = [], []
    for domain, ts in sorted(by.items()):
        originals = [t for t in ts if t.parent_id is None and not (t.verdict and t.verdict.infrastructure)]
        ok = sum(1 for t in originals if t.verdict and t.verdict.passed)
        pass_rate.append((f"{domain} ({ok}/{len(originals)})", ok / len(originals) if originals else 0.0))
        parents = {t.parent_id for t in ts if t.parent_id}
        rescued = {t.parent_id for t in ts if t.parent_id and t.verdict and t.verdict.passed}
        branch_yield.append((f"{domain} ({len(rescued)}/{len(parents)})", len(rescued) / len(parents) if parents else 0.0))
    return pass_rate, branch_yield


def throughput(trajectories: list[Trajectory] | list[Outline], bins: int = 30) -> list[tuple[float, float]]:
    """(seconds since the first start, completion tokens/s) of trajectories finishing in each bin."""
    timed = [t for t in trajectories if t.timings.started_at > 0]
    if not timed:
        return []
    t0 = min(t.timings.started_at for t in timed)
    ends = [(t.timings.started_at + t.timings.total_s - t0, t.tokens.completion) for t in timed]
    span = max(e for e, _ in ends) or 1.0
    width = span / bins
    tokens = [0.0] * bins
    for end, n in ends:
        tokens[min(bins - 1, int(end / width))] += n
    return [((i + 0.5) * width, tokens[i] / width) for i in range(bins)]


def _shard_lengths(run: RunFolder) -> tuple[list[int], list[int]]:
    if not run.shard_dirs:
        return [], []
    shard_dir = run.shard_dirs[0]
    lengths, losses = [], []
    for entry in run.manifest(shard_dir).shards:
        table = pq.read_table(shard_dir / entry.file, columns=["num_tokens", "num_loss_tokens"])
        lengths += table.column(0).to_pylist()
        losses += table.column(1).to_pylist()
    return lengths, losses


_PROVENANCE_COLUMNS = (  # (section, key, heading) of report.json's provenance, in table order
    ("shards", "rows", "shard rows"), ("shards", "token_exact_rows", "token-exact"),
    ("shards", "not_token_exact_rows", "not token-exact"), ("shards", "drift_rows", "drift"),
    ("shards", "inserted_tokens", "inserted tokens"), ("shards", "loss_tokens", "loss tokens"),
    ("store", "trajectories", "stored trajectories"), ("store", "with_trace", "with token trace"),
    ("store", "with_inserted", "with inserted (3)"), ("store", "with_guided", "with grammar (2)"),
)


def _provenance_table(reports: list[dict[str, Any]]) -> str:
    """Token provenance per domain; drift is highlighted when not 0 (a row whose ids do not
    decode to its stored message means the shards train on text nobody reviewed)."""
    body = []
    for report in reports:
        for domain, counts in sorted((report.get("provenance") or {}).items()):
            cells = []
            for section, key, _ in _PROVENANCE_COLUMNS:
                value = counts.get(section, {}).get(key, 0)
                bad = " bad" if key == "drift_rows" and value else ""
                cells.append(f'<td class="n {section}-{key}{bad}">{value}</td>')
            body.append(f'<tr data-domain="{escape(domain)}"><td>{escape(domain)}</td>{"".join(cells)}</tr>')
    if not body:
        return '<p class="sub">no provenance in report.json (written before token traces): run `trajforge report`</p>'
    head = "".join(f"<th>{escape(h)}</th>" for _, _, h in _PROVENANCE_COLUMNS)
    return f'<table class="provenance"><tr><th>domain</th>{head}</tr>{"".join(body)}</table>'


def render_html(run_dir: Path) -> str:
    run_dir = Path(run_dir)
    run = RunFolder(run_dir)
    trajectories = outlines(run)
    charts: list[str] = []
    summary_rows: list[tuple[str, str]] = []
    reports: list[dict[str, Any]] = []
    for sub in _domain_runs(run_dir):
        report, config = _read_json(sub / "report.json"), _read_json(sub / "run.json").get("config", {})
        reports.append(report)
        name = report.get("domain") or sub.name
        charts.append(svg.hbars(f"trajectories per stage — {name}", _stages(report, config)))
        decontam = report.get("extra", {}).get("decontamination", {}).get("removed", 0)
        charts.append(svg.hbars(f"removals — {name}", [
            ("dedupe exact", report.get("dedupe_removed_exact", 0)),
            ("dedupe near", report.get("dedupe_removed_near", 0)),
            ("decontamination", decontam),
            ("render errors", len(report.get("extra", {}).get("render_errors", []))),
        ], colors=svg.PALETTE[2:]))
        checked = report.get("extra", {}).get("decontamination", {})
        summary_rows.append((f"{name} · benchmarks checked", ", ".join(
            f"{b} ({n} texts)" for b, n in (checked.get("benchmarks") or {}).items()) or "none"))
        if checked.get("hits_per_benchmark"):
            charts.append(svg.hbars(f"decontamination hits per benchmark — {name}",
                                    list(checked["hits_per_benchmark"].items()), colors=svg.PALETTE[4:]))
        if checked.get("benchmark_seeds"):  # allow_benchmark_seeds: the run trains on these by choice
            summary_rows.append((f"{name} · seeded from benchmarks (allowed, not checked)", ", ".join(
                f"{b} ({e['tasks']} tasks)" for b, e in checked["benchmark_seeds"].items())))
        qa = report.get("extra", {}).get("seed_qa")
        if qa:  # seed-time task QA: unsound tasks dropped before any rollout; tasks an idle agent passes
            summary_rows.append((f"{name} · seed tasks checked / dropped as unsound",
                                 f"{qa.get('checked', 0)} / {qa.get('dropped', 0)}"))
            summary_rows.append((f"{name} · tasks passed by doing nothing (kept, marked)", str(qa.get("noop_passes", 0))
                                 + "".join(f"; {s}: {n}" for s, n in (qa.get("noop_passes_by_source") or {}).items())))
            if qa.get("dropped_by_reason"):
                charts.append(svg.hbars(f"seed tasks dropped as unsound — {name}", list(qa["dropped_by_reason"].items()),
                                        colors=svg.PALETTE[3:], width=1060, label_w=640))
        causes = report.get("failures_by_cause") or {}
        if causes:  # the model's failures apart from the infrastructure's (retried, never data)
            charts.append(svg.hbars(f"failures by cause — {name}", sorted(causes.items()), colors=svg.PALETTE[5:]))
        summary_rows.extend(_cost_rows(name, report.get("funnel") or {}))
        reasons = report.get("failure_reasons") or {}
        if reasons:
            charts.append(svg.hbars(f"why trajectories failed — {name}", list(reasons.items()),
                                    colors=svg.PALETTE[1:], width=1060, label_w=640))
        for key in ("trajectories", "passed", "pass_rate", "branch_yield", "infrastructure_retries", "shard_rows",
                    "tokens", "loss_tokens",
                    "wall_s", "completion_tokens_per_s"):
            if key in report:
                summary_rows.append((f"{name} · {key}", str(report[key])))
    pass_rate, branch_yield = _per_domain(trajectories)
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    charts.insert(0, svg.hbars("pass rate per domain (originals)", pass_rate, fmt=pct, max_value=1.0,
                               colors=svg.PALETTE))
    charts.insert(1, svg.hbars("branch yield (failed parents rescued by a branch)", branch_yield, fmt=pct,
                               max_value=1.0, colors=svg.PALETTE[3:]))
    lengths, losses = _shard_lengths(run)
    charts.append(svg.histogram("shard row length", lengths, xlabel="tokens per row"))
    charts.append(svg.histogram("loss-carrying tokens per row", losses, xlabel="loss tokens per row",
                                color=svg.PALETTE[2]))
    charts.append(svg.line("throughput over time", throughput(trajectories), xlabel="seconds since the first rollout",
                           ylabel="completion tokens/s"))
    top = run.report()
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in summary_rows)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>trajforge report — {escape(run_dir.name)}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 20px; color: #1d1d1f; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 18px; }}
svg.chart {{ background: #fff; border: 1px solid #e3e3e3; font: 12px system-ui, sans-serif; }}
table {{ border-collapse: collapse; }} td {{ border-bottom: 1px solid #eee; padding: 2px 10px; }}
pre {{ background: #f6f6f6; padding: 8px; overflow: auto; }}
table.provenance th {{ padding: 2px 10px; }} td.n {{ text-align: right; }} td.bad {{ background: #f8d0cc; color: #8a1c14; font-weight: 700; }}
</style></head><body>
<h1>trajforge run report</h1>
<p>{escape(str(run_dir.resolve()))} · {len(trajectories)} trajectories · generated {time.strftime('%Y-%m-%d %H:%M:%S')}</p>
<div class="charts">{''.join(charts)}</div>
<section id="provenance"><h2>Provenance</h2>
<p>Shard rows: token-exact rows hold the ids the engine saw and sampled; the others were tokenised from text.
Drift: an assistant turn's ids do not decode to its stored message (expected 0). Inserted tokens (source 3) were
written by the framework inside assistant turns; grammar tokens (source 2) were sampled under a grammar.</p>
{_provenance_table(reports)}</section>
<h2>numbers</h2><table>{rows}</table>
<details><summary>report.json</summary><pre>{escape(json.dumps(top, indent=2, sort_keys=True, default=str))}</pre></details>
</body></html>
"""


def write_report_html(run_dir: Path) -> Path:
    path = Path(run_dir) / "report.html"
    write_text(path, render_html(Path(run_dir)))
    return path


def regenerate(run_dir: Path) -> list[Path]:
    """``trajforge report``: report.json of every domain run, then every report.html."""
    run_dir = Path(run_dir)
    RunFolder(run_dir)  # one clear error for a folder that is not a run
    written: list[Path] = []
    subs = _domain_runs(run_dir)
    for sub in subs:
        regenerate_report_json(sub)
        written += [sub / "report.json", write_report_html(sub)]
    if subs != [run_dir]:  # a mixture: its report.json is the mixing report, kept; one page over all
        written.append(write_report_html(run_dir))
    return written
