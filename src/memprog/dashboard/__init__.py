"""``memprog dashboard``: a local web page over the run store.

Runs (live while running), a run's array heat maps with per-cell drill-down, level
ladders, and the variability tables — each page a view of a JSON endpoint under ``/api``
that a script can fetch. Read-only, loopback by default, a token on any other bind.

Layout: :mod:`.data` (the only module that reads the store), which hands its frames to
:mod:`.records` (run ids, JSON-ready values, progress, the encoder), :mod:`.cell_figures`
(counts, histogram, maps, ladder from one cells snapshot), :mod:`.variability_view` and
:mod:`.fleet_view` (a fleet run's chips, totals and yield histogram);
:mod:`.app` (wiring), ``routes_*`` and :mod:`.pages` (one router per page family),
:mod:`.security` (the guard), :mod:`.assets` (the in-memory front end), :mod:`.server`
(uvicorn), ``static/`` (HTML/JS/CSS).
"""

from __future__ import annotations

from memprog.dashboard.app import create_app
from memprog.dashboard.data import DashboardData
from memprog.dashboard.records import NotFound

__all__ = ["DashboardData", "NotFound", "create_app"]
