"""The reviewer web app (FastAPI + jinja2 templates + plain JS, no build step).

Pages: ``/`` (the sampled list with filters and counts) and ``/t/{id}`` (one
trajectory, its assistant turns drawn from the token trace when it has one).
JSON API under ``/api`` — the pages' JS uses it for marks, and scripts can too.
The store is read once at start (a finished run does not change); marks are read
from disk on every request, so several reviewers, even through separate app
processes on the same folder, see each other's marks on reload.
"""

from __future__ import annotations

from dataclasses import asdict
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel

from pipelines.review.listing import FACETS, Filters, build_listing, neighbours
from pipelines.review.marks import MarkError, MarkStore
from pipelines.review.provenance import LEGEND, trace_view
from pipelines.review.reviewed import NoShards, build_reviewed_shards
from pipelines.review.runfolder import RunFolder
from pipelines.review.view import lineage, message_views, phase_summary, token_view

PACKAGE = files("pipelines.review")


class MarkIn(BaseModel):
    decision: str
    comment: str = ""
    reviewer: str = ""


def _filters(request: Request, defaults: Filters) -> Filters:
    q = request.query_params
    sample_raw = q.get("sample")
    if sample_raw is None:
        sample = defaults.sample
    elif sample_raw in ("", "all"):
        sample = None
    else:
        try:
            sample = max(0, int(sample_raw))
        except ValueError:
            raise HTTPException(400, f"sample must be a number or 'all', not {sample_raw!r}") from None
    try:
        seed = int(q.get("seed", defaults.seed))
    except ValueError:
        raise HTTPException(400, "seed must be an integer") from None
    return Filters(
        **{facet: q.get(facet, getattr(defaults, facet)) for facet in FACETS}, sample=sample, seed=seed
    )


def _row(t: Any, marks: dict[str, dict]) -> dict[str, Any]:
    v = t.verdict
    return {
        "id": t.id,
        "task_id": t.task_id,
        "domain": t.domain,
        "kind": "branch" if t.parent_id else "original",
        "parent_id": t.parent_id,
        "branch_step": t.branch_step,
        "passed": bool(v and v.passed),
        "score": v.score if v else None,
        "reason": v.reason if v else "",
        "stop_reason": t.stop_reason,
        "messages": len(t.messages),
        "completion_tokens": t.tokens.completion,
        "mark": marks.get(t.id),
        "token_trace": t.token_trace is not None and len(t.token_trace) > 0,
    }


def create_app(run_dir: Path, defaults: Filters | None = None) -> FastAPI:
    run = RunFolder(run_dir)
    marks = MarkStore(run.dir)
    defaults = defaults or Filters(sample=50)
    env = Environment(
        loader=FileSystemLoader(str(PACKAGE / "templates")), autoescape=select_autoescape(["html"])
    )
    app = FastAPI(title="trajforge review", docs_url="/api/docs", redoc_url=None)
    app.mount("/static", StaticFiles(directory=str(PACKAGE / "static")), name="static")

    def page(name: str, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(run_dir=str(run.dir), **context))

    def listing(request: Request):
        f = _filters(request, defaults)
        current = marks.all()
        return f, current, build_listing(run.trajectories, f, current, run.inserted_ids)

    def trajectory(trajectory_id: str):
        t = run.by_id.get(trajectory_id)
        if t is None:
            raise HTTPException(404, f"no trajectory {trajectory_id!r} in {run.dir}")
        return t

    @app.get("/", response_class=HTMLResponse)
    def list_page(request: Request) -> HTMLResponse:
        f, current, result = listing(request)
        return page("list.html", f=f, listing=result, rows=[_row(t, current) for t in result.rows],
                    domains=sorted({t.domain for t in run.trajectories}))

    @app.get("/t/{trajectory_id}", response_class=HTMLResponse)
    def trajectory_page(trajectory_id: str, request: Request) -> HTMLResponse:
        t = trajectory(trajectory_id)
        f, current, result = listing(request)
        prev_id, next_id = neighbours(result, t.id)
        return page(
            "trajectory.html", f=f, t=t, row=_row(t, current), messages=message_views(t),
            phases=phase_summary(t), lineage=lineage(run, t), tokens=token_view(run, t),
            trace=trace_view(run, t), legend=LEGEND,
            prev_id=prev_id, next_id=next_id, task=t.task.model_dump() if t.task else None,
        )

    @app.get("/api/trajectories")
    def api_list(request: Request) -> dict[str, Any]:
        f, current, result = listing(request)
        return {"filters": asdict(f), "total": result.total, "matching": result.matching,
                "counts": result.counts, "rows": [_row(t, current) for t in result.rows]}

    @app.get("/api/trajectories/{trajectory_id}")
    def api_trajectory(trajectory_id: str) -> dict[str, Any]:
        t = trajectory(trajectory_id)
        return {**_row(t, marks.all()), "messages": message_views(t), "phases": phase_summary(t),
                "lineage": lineage(run, t)}

    @app.get("/api/trajectories/{trajectory_id}/tokens")
    def api_tokens(trajectory_id: str) -> dict[str, Any]:
        return asdict(token_view(run, trajectory(trajectory_id)))

    @app.get("/api/trajectories/{trajectory_id}/trace")
    def api_trace(trajectory_id: str) -> dict[str, Any]:
        return asdict(trace_view(run, trajectory(trajectory_id)))

    @app.get("/api/marks")
    def api_marks() -> dict[str, Any]:
        return marks.all()

    @app.post("/api/marks/{trajectory_id}")
    def api_mark(trajectory_id: str, body: MarkIn) -> dict[str, Any]:
        trajectory(trajectory_id)
        if body.decision == "clear":
            marks.clear(trajectory_id, reviewer=body.reviewer)
            return {"trajectory_id": trajectory_id, "decision": None}
        try:
            return marks.set(trajectory_id, body.decision, body.comment, body.reviewer)
        except MarkError as exc:
            raise HTTPException(400, str(exc)) from None

    @app.get("/api/export/accepted", response_class=PlainTextResponse)
    def api_export() -> str:
        path = marks.export_accepted()
        return path.read_text()

    @app.post("/api/reviewed-shards")
    def api_reviewed_shards() -> dict[str, Any]:
        marks.export_accepted()
        try:
            out, manifest = build_reviewed_shards(run.dir, marks.accepted_ids())
        except NoShards as exc:
            raise HTTPException(409, str(exc)) from None
        return {"dir": str(out), "rows": manifest.total_rows, "tokens": manifest.total_tokens,
                "files": [s.file for s in manifest.shards]}

    return app
