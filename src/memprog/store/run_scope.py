"""``with stored_run(store, kind=...) as run:``: a run that ends however its block ends.

Why it exists: a run must never be left ``running`` by a command that stopped. The block
ends it ``complete`` (or the status the command set), ``interrupted`` on Ctrl-C or a
caught signal (its buffered cells committed first), ``failed`` on any other exception,
which is then re-raised unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from memprog.core.signals import interrupt_signum, signal_name
from memprog.store.errors import one_line
from memprog.store.runs import Store
from memprog.store.sink import StoreSink
from memprog.store.urls import mask_url


@dataclass
class RunHandle:
    """What :func:`stored_run` yields: the run id, its sink, and how it should end."""

    store: Store
    run_id: str
    sink: StoreSink
    status: str = "complete"
    summary: dict[str, Any] = field(default_factory=dict)
    #: after the block: whether the run's final status reached the store
    finished: bool = False


@contextmanager
def stored_run(store: Store, *, trace: bool = False, quiet: bool = False, **start_run_kwargs: Any) -> Iterator[RunHandle]:
    """Start a run, yield a :class:`RunHandle`, end the run however the block ends.

    Prints ``memprog: run <id> started (db <masked url>)`` to stderr (unless ``quiet``).
    Normal exit: status ``complete`` (or the handle's ``status``). KeyboardInterrupt or
    :class:`memprog.core.signals.Interrupted`: the buffered cells are committed, the run is
    marked ``interrupted`` and the exception re-raised. Any other exception: ``failed``.
    """
    run_id = store.start_run(**start_run_kwargs)
    if not quiet:
        print(f"memprog: run {run_id} started (db {mask_url(store.url)})", file=sys.stderr, flush=True)
    handle = RunHandle(store, run_id, store.sink(run_id, trace=trace))
    try:
        yield handle
    except BaseException as exc:
        signum = interrupt_signum(exc)
        status = "interrupted" if signum is not None else "failed"
        summary = dict(handle.summary)
        summary.setdefault("error" if signum is None else "interrupted_by", signal_name(signum) if signum is not None else one_line(exc))
        try:
            handle.sink.close()
        except BaseException:  # noqa: BLE001 - the original exception matters more
            pass
        try:
            store.finish_run(run_id, status, summary)
            handle.finished = True
        except BaseException:  # noqa: BLE001
            pass
        raise
    else:
        handle.sink.close()
        store.finish_run(run_id, handle.status, handle.summary)
        handle.finished = True



__all__ = ["RunHandle", "stored_run"]
