"""The ASGI app: one FastAPI application, one router module per page family.

``create_app`` wires the read-only data layer (:mod:`.data`), the in-memory assets
(:mod:`.assets`) and the guard (:mod:`.security`) together; the routers only translate
HTTP to data-layer calls. Every page route has a JSON twin under ``/api``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from memprog.core.errors import ConfigError, MemprogError
from memprog.dashboard import pages, routes_run, routes_runs, routes_variability
from memprog.dashboard.assets import load_assets
from memprog.dashboard.data import DashboardData
from memprog.dashboard.records import NotFound, StoreBusy
from memprog.dashboard.security import Guard


def create_app(store: Any, *, token: str | None = None, local: bool = True,
               variability: Any = None) -> Any:  # fmt: skip
    """The dashboard app over ``store`` (an open, read-only :class:`memprog.store.Store`).

    Args:
        store: the run store to show.
        token: when given, every request must carry it (see :mod:`.security`).
        local: the server binds a loopback address (enables the Host-header check).
        variability: optional ``chip_id -> VariabilityDB`` factory (tests).

    Returns:
        The ASGI application (FastAPI wrapped in the guard).
    """
    app = FastAPI(title="memprog dashboard", docs_url=None, redoc_url=None)
    app.state.data = DashboardData(store, variability=variability)
    app.state.assets = load_assets()
    app.state.db_url = getattr(store, "url", "")

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "not_found", "detail": str(exc)}, status_code=404)
        return HTMLResponse(pages.not_found_page(str(exc)), status_code=404)

    @app.exception_handler(ConfigError)
    async def bad_input(request: Request, exc: ConfigError) -> Response:
        return JSONResponse({"error": "bad_request", "detail": str(exc)}, status_code=400)

    @app.exception_handler(StoreBusy)
    async def busy(request: Request, exc: StoreBusy) -> Response:
        return JSONResponse({"error": "store_busy", "detail": str(exc)}, status_code=503,
                            headers={"retry-after": "1"})  # fmt: skip

    @app.exception_handler(MemprogError)
    async def store_error(request: Request, exc: MemprogError) -> Response:
        # the database failed under us (server gone, disk error): say so, never a bare 500
        return JSONResponse({"error": "store_error", "detail": str(exc)}, status_code=503,
                            headers={"retry-after": "2"})  # fmt: skip

    @app.exception_handler(404)
    async def no_route(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse(
                {"error": "not_found", "detail": "no such endpoint"}, status_code=404
            )
        return HTMLResponse(pages.not_found_page("no such page"), status_code=404)

    app.include_router(pages.router)
    app.include_router(routes_runs.router)
    app.include_router(routes_run.router)
    app.include_router(routes_variability.router)
    return Guard(app, token=token, local=local)


__all__ = ["create_app"]
