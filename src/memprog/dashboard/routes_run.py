"""One run: the page ``/runs/{run_id}`` and its endpoints — record and statistics, heat maps,
per-cell drill-down, ladder, events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from memprog.dashboard.pages import page

router = APIRouter()
NO_STORE = {"cache-control": "no-store"}


@router.get("/runs/{run_id}", include_in_schema=False)
def run_page(request: Request, run_id: str) -> HTMLResponse:
    """One run; an unknown or malformed run id is a 404 page with a link back. A fleet run
    (no cells of its own) gets the fleet page: its chips, their runs, the totals."""
    run = request.app.state.data.require_run(run_id)  # raises NotFound
    return page(request, "fleet.html" if run.get("kind") == "fleet" else "run.html")


@router.get("/api/runs/{run_id}")
def api_run(request: Request, run_id: str) -> JSONResponse:
    """The run's record (params, summary), progress, counts, flag census, error histogram."""
    return JSONResponse(request.app.state.data.run(run_id), headers=NO_STORE)


@router.get("/api/runs/{run_id}/fleet")
def api_fleet(request: Request, run_id: str) -> JSONResponse:
    """A fleet run: one row per chip (its program run, cells within/total, stuck, pulses,
    bench time, accuracy, restarts), the totals, and a yield study's accuracy histogram."""
    return JSONResponse(request.app.state.data.fleet(run_id), headers=NO_STORE)


@router.get("/api/runs/{run_id}/maps")
def api_maps(
    request: Request, run_id: str, encoding: Annotated[str, Query(max_length=8)] = "json"
) -> Response:
    """Target, achieved and error conductance grids (µS) and the flagged cells by kind
    (``encoding=f32``: grids as base64 float32, what the page uses)."""
    body = request.app.state.data.maps_json(run_id, encoding)
    return Response(body, media_type="application/json", headers=NO_STORE)


@router.get("/api/runs/{run_id}/cells/{row}/{col}")
def api_cell(
    request: Request,
    run_id: str,
    row: Annotated[int, Path(ge=0, le=1_000_000)],
    col: Annotated[int, Path(ge=0, le=1_000_000)],
) -> JSONResponse:
    """One cell's result and its pulse/read trace."""
    return JSONResponse(request.app.state.data.cell(run_id, row, col), headers=NO_STORE)


@router.get("/api/runs/{run_id}/ladder")
def api_ladder(request: Request, run_id: str) -> JSONResponse:
    """A ladder (``levels`` run): per level target, achieved, reads, tolerance band."""
    return JSONResponse(request.app.state.data.ladder(run_id), headers=NO_STORE)


@router.get("/api/runs/{run_id}/events")
def api_events(
    request: Request,
    run_id: str,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> JSONResponse:
    """The run's events (newest ``limit``), bulky array fields summarised by their length."""
    return JSONResponse(request.app.state.data.events(run_id, kind, limit), headers=NO_STORE)
