"""What every page family shares: the page shell response, static assets, health, the 404 page.

Pages are static HTML shells whose script fetches the JSON endpoints; the server never
puts data into HTML (so there is nothing to escape but the 404 message, which is escaped).
"""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from memprog.dashboard.records import NotFound
from memprog.store import mask_url

router = APIRouter()


def page(request: Request, name: str) -> HTMLResponse:
    a = request.app.state.assets[name]
    return HTMLResponse(a.body, headers={"cache-control": "no-cache"})


@router.get("/static/{name}", include_in_schema=False)
def static(request: Request, name: str) -> Response:
    """An asset by its fixed name (a dict lookup; never a file-system path)."""
    a = request.app.state.assets.get(name)
    if a is None or name.endswith(".html"):
        raise NotFound(f"no asset {name[:40]!r}")
    if request.headers.get("if-none-match") == a.etag:
        return Response(status_code=304)
    return Response(a.body, media_type=a.media_type,
                    headers={"etag": a.etag, "cache-control": "max-age=3600"})  # fmt: skip


@router.get("/api/health")
def health(request: Request) -> JSONResponse:
    """Liveness and which store is shown (password masked)."""
    return JSONResponse({"ok": True, "db": mask_url(request.app.state.db_url or "")})


def not_found_page(message: str) -> str:
    """The 404 page: what was not found, and a link back to the runs."""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Not found · memprog dashboard</title><link rel="stylesheet" href="/static/dashboard.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml"></head>
<body><header><a class="brand" href="/">memprog</a></header><main class="notfound">
<h1>404 — not found</h1><p id="message">{html.escape(message)}</p>
<p><a id="back" href="/">← back to all runs</a></p></main></body></html>"""


__all__ = ["NotFound", "not_found_page", "router"]
