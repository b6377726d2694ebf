"""The runs table: the page ``/`` and ``GET /api/runs``, which the page polls every second."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from memprog.dashboard.pages import page
from memprog.dashboard.records import encode

router = APIRouter()


@router.get("/", include_in_schema=False)
def runs_page(request: Request) -> HTMLResponse:
    """The runs table."""
    return page(request, "runs.html")


@router.get("/api/runs")
def api_runs(
    request: Request,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    bench: Annotated[str | None, Query(max_length=512)] = None,
    chip_id: Annotated[str | None, Query(max_length=256)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> Response:
    """Runs, newest first, with progress (cells done/total, fraction, cells per second)."""
    data = request.app.state.data.runs(
        kind=kind, bench=bench, chip_id=chip_id, status=status, limit=limit
    )
    return Response(
        encode(data), media_type="application/json", headers={"cache-control": "no-store"}
    )
