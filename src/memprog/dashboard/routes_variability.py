"""Variability: the page ``/variability`` and ``GET /api/variability[?chip_id=...]``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from memprog.dashboard.pages import page

router = APIRouter()


@router.get("/variability", include_in_schema=False)
def variability_page(request: Request) -> HTMLResponse:
    """The variability plots."""
    return page(request, "variability.html")


@router.get("/api/variability")
def api_variability(
    request: Request, chip_id: Annotated[str | None, Query(max_length=256)] = None
) -> JSONResponse:
    """Imprecision by level with its fit, disturb by later writes, stuck census and RTN, per
    chip (every chip with a characterisation when ``chip_id`` is not given)."""
    return JSONResponse(request.app.state.data.variability(chip_id or None),
                        headers={"cache-control": "no-store"})  # fmt: skip
