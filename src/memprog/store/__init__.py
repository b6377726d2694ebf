"""The run store and the variability database (issue 9).

    from memprog.store import open_store, stored_run

    store = open_store()                      # $MEMPROG_DB or the user's SQLite file
    with stored_run(store, kind="tune", bench="sim_onchip") as run:
        res = tune_alibart(prog, rows, cols, targets, sink=run.sink)
        run.sink.record_results(res)
    store.cells(run.run_id)                   # pandas, one row per cell

See :mod:`memprog.store.core` (runs, cells, events, traces), :mod:`memprog.store.models`
(the tables and why cells are stored in column batches), :mod:`memprog.store.migrate`
(Alembic, run on open) and :mod:`memprog.store.variability` (seed 001's tables).
"""

from __future__ import annotations

from memprog.store.core import (
    RUN_KINDS,
    RUN_STATUSES,
    RunHandle,
    Store,
    StoreError,
    StoreSink,
    default_db_url,
    mask_url,
    open_store,
    stored_run,
)
from memprog.store.variability import MissingDataError, VariabilityDB, import_variability

__all__ = [
    "RUN_KINDS",
    "RUN_STATUSES",
    "MissingDataError",
    "RunHandle",
    "Store",
    "StoreError",
    "StoreSink",
    "VariabilityDB",
    "default_db_url",
    "import_variability",
    "mask_url",
    "open_store",
    "stored_run",
]
