"""How every pulsing command runs: a stored run, signals caught, the bench left safe, one
line saying what happened, and an exit code a script can act on.

Why one helper: ``tune``, ``levels``, ``characterize`` and the commands that come later
(program, in-situ training) must all behave the same when a lab user presses Ctrl-C, a job
scheduler sends SIGTERM or a terminal closes (SIGHUP): the stack unwinds, ``open_bench``'s
exit puts every source at 0 V and opens the matrix, the finished cells are committed to the
store and to the command's own output files, the run is marked ``interrupted``, and stderr
gets exactly one line saying so. Exit codes:

====  ==========================================================
0     what the job was asked for holds (memprog.reporting.outcome: every working cell within
      tolerance; stuck cells are reported, not failed)
1     the command ran, but it does not hold (working cells outside tolerance)
2     bad input (options, bench file, map, database URL)
3     instrument or storage error (the instrument said no, a reply could not be parsed,
      the database failed mid-run); the bench was made safe
130   interrupted by SIGINT (Ctrl-C); 143 by SIGTERM; 129 by SIGHUP
====  ==========================================================

Usage (a command body gets a :class:`RunContext`)::

    def body(ctx):
        with ctx.open_bench(bench) as b:
            res = tune_alibart(b.programmer, r, c, t, sink=ctx.sink)
        ctx.sink.record_results(res)
        return Outcome(res.summary(), "human text", failed_cells=int((~res.converged).sum()))

    run_command(body, db=db, kind="tune", bench=bench, as_json=as_json, protocol="alibart")
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, NoReturn

import typer

from memprog.core.errors import (
    ConfigError,
    InstrumentError,
    MemprogError,
    ProtocolError,
    SafetyError,
)
from memprog.core.jsonout import sanitize
from memprog.core.signals import (
    EXIT_BAD_INPUT,
    EXIT_CELLS_FAILED,
    EXIT_INSTRUMENT,
    EXIT_OK,
    exit_code_for_signal,
    handle_signals,
    interrupt_signum,
    signal_name,
)

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Run store URL (any SQLAlchemy URL; default: $MEMPROG_DB, else an SQLite file "
        "in the user's data directory).",
    ),
]


@dataclass
class Outcome:
    """What a command body returns: its JSON summary, its human text, failed cells."""

    summary: dict[str, Any]
    human: str
    failed_cells: int = 0
    #: the exit code when the job's own rule decides it (``program``: the chip's accuracy
    #: against software); None: 1 when ``failed_cells``, else 0
    exit_code: int | None = None


@dataclass
class RunContext:
    """Given to a command body: the store, the run, and the bench it opens."""

    store: Any
    handle: Any
    kind: str
    bench: Any = None
    bench_safe: bool | None = None
    bench_safe_error: str | None = None
    partial_outputs: list[Callable[[], str | None]] = field(default_factory=list)
    #: the command that continues this run when it is interrupted (said in the one line)
    resume_hint: str | None = None

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.handle.run_id

    @property
    def sink(self) -> Any:
        """The run's :class:`~memprog.store.StoreSink` (pass it to protocols)."""
        return self.handle.sink

    @contextmanager
    def open_bench(self, bench: str) -> Iterator[Any]:
        """``memprog.open_bench`` that records whether the safe state succeeded on exit."""
        from memprog import open_bench

        # a signal during the open is held until the bench is in hand (signals_deferred),
        # then raised inside the try: the bench it finds connected is made safe
        from memprog.core.signals import signals_deferred

        b = None
        try:
            with signals_deferred():
                b = self.bench = open_bench(bench)
            yield b
        except BaseException:
            b = b if b is not None else self.bench
            if b is not None:
                self.bench = b
                self._close(b, reraise=False)
            raise
        self._close(b, reraise=True)

    def _close(self, b: Any, reraise: bool) -> None:
        try:
            b.close()
            self.bench_safe = True
        except Exception as exc:  # noqa: BLE001 - reported in the one-line message
            self.bench_safe = False
            self.bench_safe_error = " ".join(str(exc).split())
            if reraise:
                raise

    def on_interrupt(self, write: Callable[[], str | None]) -> None:
        """Register a writer of partial outputs (returns the path written, or None)."""
        self.partial_outputs.append(write)

    def safe_text(self) -> str:
        """What was made safe, for the one stderr line."""
        if self.bench is None:
            return "no bench was open"
        name = self.bench.config.name
        insts = ", ".join(self.bench.instruments) or "instruments"
        if self.bench_safe is False:
            return f"bench {name}: SAFE STATE FAILED ({self.bench_safe_error}); check the instruments"
        return f"bench {name} made safe ({insts}: sources at 0 V, outputs off, matrix open)"


def _bench_identity(bench: str) -> dict[str, Any]:
    from memprog.core.bench_config import load_bench_config

    config, path = load_bench_config(bench)
    return {
        "bench": bench,
        "bench_path": str(path),
        "chip_id": config.chip.id,
        "technology": config.chip.technology,
    }


def _emit_json(doc: dict[str, Any]) -> None:
    from memprog.core.jsonout import dumps

    typer.echo(dumps(doc, fallback=str))


def run_command(
    body: Callable[[RunContext], Outcome],
    *,
    db: str | None,
    kind: str,
    bench: str,
    as_json: bool,
    protocol: str | None = None,
    params: dict[str, Any] | None = None,
    cells_total: int | None = None,
    resumed_from: str | None = None,
    trace: bool = False,
    before_start: Callable[[Any], None] | None = None,
    precheck: Callable[[Any], None] | None = None,
) -> NoReturn:
    """Run ``body`` as a stored run of ``kind`` on ``bench``; print; exit with the code.

    Args:
        body: the command's work (opens the bench through ``ctx.open_bench``).
        db: the store URL (None: the default store).
        before_start: called with the open store before the run starts (checks that need
            the store, e.g. that a resumed run exists); its ConfigError exits 2 with no run.
            It may return a dict of run fields that replace the given ones (a resumed
            ``program`` run takes its protocol and parameters from the run it continues).
        precheck: called with the validated bench file (BenchConfig) before the store is
            opened: input checks that need no instrument (:mod:`memprog.bench.precheck`); its
            ConfigError exits 2 with no run created and the store untouched.
    """
    from memprog.store import mask_url, open_store, stored_run

    ctx: RunContext | None = None
    store = None
    with handle_signals():
        try:
            try:
                ident = _bench_identity(bench)
                from memprog.core.bench_config import load_bench_config

                config = load_bench_config(bench)[0]
                if any(i.simulated for i in config.instruments.values()):
                    # a simulated chip keeps its state in a folder: an unusable one is refused
                    # here, before a run exists (sim_instruments/chip_state.py)
                    from memprog.sim_instruments.chip_state import persistent, state_dir

                    if persistent():
                        state_dir()
                if precheck is not None:
                    precheck(config)
                store = open_store(db)
                start = {"protocol": protocol, "params": params, "cells_total": cells_total}
                if before_start is not None:
                    start.update(before_start(store) or {})
            except MemprogError as exc:
                if store is not None:
                    store.close()
                _fail(exc, EXIT_BAD_INPUT)
            assert store is not None
            with stored_run(
                store,
                kind=kind,
                resumed_from=resumed_from,
                trace=trace,
                **start,
                **ident,
            ) as handle:
                ctx = RunContext(store, handle, kind)
                outcome = body(ctx)
                outcome.summary.setdefault("run_id", handle.run_id)
                outcome.summary.setdefault("db", mask_url(store.url))
                handle.summary = sanitize(outcome.summary, fallback=str)
        except (KeyboardInterrupt, Exception) as exc:
            if not isinstance(exc, KeyboardInterrupt | MemprogError) and interrupt_signum(exc) is None:
                raise
            _report_failure(exc, ctx, store, as_json)
        except BaseException as exc:  # memprog.core.signals.Interrupted
            if interrupt_signum(exc) is None:
                raise
            _report_failure(exc, ctx, store, as_json)
    if as_json:
        _emit_json(outcome.summary)
    else:
        typer.echo(outcome.human)
        typer.echo(f"memprog: run {handle.run_id} stored (db {mask_url(store.url)})", err=True)
    if store is not None:
        store.close()
    if outcome.exit_code is not None:
        raise typer.Exit(outcome.exit_code)
    raise typer.Exit(EXIT_CELLS_FAILED if outcome.failed_cells else EXIT_OK)


def _print_traceback_if_debug(exc: BaseException) -> None:
    """``--debug`` / ``MEMPROG_DEBUG=1``: the traceback behind the one-line error."""
    from memprog.cli.common import debug_enabled

    if debug_enabled():
        import traceback

        typer.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)


def _fail(exc: MemprogError, code: int) -> NoReturn:
    _print_traceback_if_debug(exc)
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(code)


def _report_failure(exc: BaseException, ctx: RunContext | None, store: Any, as_json: bool) -> NoReturn:
    """One stderr line (and with --json one JSON document), partial outputs, the exit."""
    from memprog.store import StoreError, mask_url

    signum = interrupt_signum(exc)
    run_id = ctx.run_id if ctx is not None else None
    cells = 0
    cells_total = None
    if store is not None and run_id is not None:
        try:
            cells = store.cell_count(run_id)
            cells_total = store.get_run(run_id).get("cells_total")
        except MemprogError:
            pass
    written: list[str] = []
    if ctx is not None and signum is not None:
        for w in ctx.partial_outputs:
            try:
                p = w()
            except Exception:  # noqa: BLE001 - the store still holds the cells
                p = None
            if p:
                written.append(str(p))
    safe = ctx.safe_text() if ctx is not None else "no bench was open"
    where = f"db {mask_url(store.url)}" if store is not None else "no store"
    if signum is not None:
        code = exit_code_for_signal(signum)
        kept = (
            f"run {run_id} marked interrupted, {cells} finished cells kept ({where}"
            + (f"; {', '.join(written)}" if written else "")
            + ")"
            + (f"; continue with {ctx.resume_hint}" if ctx is not None and ctx.resume_hint else "")
            if run_id is not None
            else "no run had started"
        )
        line = f"memprog: interrupted by {signal_name(signum)}: {safe}; {kept}"
    else:
        code = (
            EXIT_BAD_INPUT
            if isinstance(exc, ConfigError | SafetyError) and not isinstance(exc, StoreError)
            else EXIT_INSTRUMENT
            if isinstance(exc, InstrumentError | ProtocolError | StoreError | OSError)
            else EXIT_INSTRUMENT
        )
        tail = f"; {safe}" if ctx is not None and ctx.bench is not None else ""
        run = ""
        if run_id:
            run = (
                f"; run {run_id} marked failed"
                if ctx is not None and ctx.handle.finished
                else f"; run {run_id} could not be marked failed (it stays 'running')"
            )
        line = f"error: {' '.join(str(exc).split())}{tail}{run}"
        _print_traceback_if_debug(exc)
    typer.echo(line, err=True)
    if as_json and signum is not None:
        _emit_json(
            {
                "status": "interrupted",
                "interrupted": True,
                "signal": signal_name(signum),
                "exit_code": code,
                "run_id": run_id,
                "cells_done": cells,
                "cells_total": cells_total,
                "safe_state": safe,
                "bench_safe": None if ctx is None else ctx.bench_safe,
                "outputs": written,
            }
        )
    sys.stderr.flush()
    raise typer.Exit(code)


__all__ = ["DbOpt", "Outcome", "RunContext", "run_command"]
