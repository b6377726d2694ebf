"""The run store and the variability database (floor 3, lowest room there: it imports only
:mod:`memprog.core` and the protocols' result types). ``engine`` opens SQLite or PostgreSQL
(``schema_lock`` + ``migrate`` keep the schema current), ``runs`` writes a run's life,
``queries`` reads it back, ``sink`` records protocol events, ``run_scope`` holds one run
open, ``variability`` and ``chips`` are the per-chip views.

    from memprog.store import open_store, stored_run

    store = open_store()                      # $MEMPROG_DB or the user's SQLite file
    with stored_run(store, kind="tune", bench="sim_onchip") as run:
        res = tune_alibart(prog, rows, cols, targets, sink=run.sink)
        run.sink.record_results(res)
    store.cells(run.run_id)                   # pandas, one row per cell

The rooms of the store, in the order they build on each other:

* :mod:`.urls` (masking secrets), :mod:`.errors` (``StoreError``), :mod:`.records` (run
  kinds, statuses, how values are encoded), :mod:`.models` and :mod:`.columnar` (the tables,
  and why cells are stored in Arrow column batches), :mod:`.migrate` (Alembic, run on open);
* :mod:`.queries` (the read side: runs, cells, events, traces, samples),
  :mod:`.sink` (``StoreSink``, the ``EventSink`` protocols write into),
  :mod:`.runs` (``Store``: a run's life — start, finish, resume, reap, delete);
* :mod:`.engine` (``open_store``: from a URL to a checked, migrated store),
  :mod:`.run_scope` (``stored_run``: a run that ends however its block ends);
* :mod:`.variability` (seed 001's tables derived from characterisation runs),
  :mod:`.chips`.
"""

from __future__ import annotations

from memprog.store.engine import default_db_url, open_store
from memprog.store.errors import StoreError
from memprog.store.records import RUN_KINDS, RUN_STATUSES
from memprog.store.run_scope import RunHandle, stored_run
from memprog.store.runs import Store
from memprog.store.sink import StoreSink
from memprog.store.urls import mask_url
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
