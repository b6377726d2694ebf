"""The dashboard's front end, held in memory: a request path never reaches the file system.

The pages are small static HTML shells plus one JavaScript file each that fetches the JSON
endpoints and draws with Plotly. Everything is read once, at app construction, from the
package (``importlib.resources``) — the page files from ``memprog.dashboard/static`` and
``plotly.min.js`` from the ``plotly`` Python package's bundled copy — into a dict keyed by
a fixed asset name. Serving an asset is a dict lookup; an unknown name is a 404. So there
is no directory listing, no path join, no ``..`` to worry about, and no CDN (lab machines
are often offline).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from memprog.core.errors import ConfigError

MEDIA = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}  # fmt: skip


@dataclass(frozen=True)
class Asset:
    """One served file: its bytes, media type and a content hash (for caching)."""

    body: bytes
    media_type: str
    etag: str


def _asset(name: str, body: bytes) -> Asset:
    ext = name[name.rfind(".") :]
    return Asset(body, MEDIA[ext], hashlib.sha256(body).hexdigest()[:16])


def load_assets() -> dict[str, Asset]:
    """Every static file of the package, plus ``plotly.min.js``, keyed by file name."""
    out: dict[str, Asset] = {}
    static = resources.files("memprog.dashboard").joinpath("static")
    for entry in static.iterdir():
        name = entry.name
        if entry.is_file() and name[name.rfind(".") :] in MEDIA:
            out[name] = _asset(name, entry.read_bytes())
    out["plotly.min.js"] = _asset("plotly.min.js", plotly_js())
    return out


def plotly_js() -> bytes:
    """The plotly.js bundle shipped inside the ``plotly`` Python package."""
    try:
        ref = resources.files("plotly").joinpath("package_data", "plotly.min.js")
        return ref.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ConfigError(
            "plotly", "missing", "the plotly package (pip install plotly)",
            "the dashboard serves plotly.min.js from it",
        ) from exc  # fmt: skip


__all__ = ["Asset", "load_assets", "plotly_js"]
