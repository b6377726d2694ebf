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

The same lifecycle without the printing and the exit, for a command used as a library
function (``memprog.cli.program.program_command``): :func:`begin_run` then
:func:`run_body`, inside :func:`memprog.core.signals.handle_signals`. The resume rules every
resumable command shares (the run's kind, that it is unfinished, that no live process still
owns it, the same chip, resumed once) are :func:`check_resumable_run`.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, NoReturn

import typer

import memprog
from memprog.bench.assembly import check_stack_options
from memprog.cli.common import debug_enabled
from memprog.core.bench_config import load_bench_config
from memprog.core.errors import ConfigError, MemprogError
from memprog.core.jsonout import dumps, sanitize
from memprog.core.signals import (
    EXIT_BAD_INPUT,
    exit_code_for_signal,
    handle_signals,
    interrupt_signum,
    signal_name,
    signals_deferred,
)
from memprog.reporting.outcome import exit_code_for_cells, exit_code_for_error
from memprog.sim_instruments.chip_state import persistent, state_dir

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

    @property
    def code(self) -> int:
        """The exit code (:mod:`memprog.reporting.outcome`'s rule unless the job decided)."""
        return int(self.exit_code) if self.exit_code is not None else exit_code_for_cells(self.failed_cells)


@dataclass
class RunContext:
    """Given to a command body: the store, the run, and the bench it opens.

    ``store`` and ``handle`` are None for a run that is not stored (``train`` without
    ``--db``, ``program_command(store_runs=False)``)."""

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
    def run_id(self) -> str | None:
        """The run's id (None when the run is not stored)."""
        return None if self.handle is None else self.handle.run_id

    @property
    def sink(self) -> Any:
        """The run's :class:`~memprog.store.StoreSink` (pass it to protocols); None unstored."""
        return None if self.handle is None else self.handle.sink

    @contextmanager
    def open_bench(self, bench: str) -> Iterator[Any]:
        """``memprog.open_bench`` that records whether the safe state succeeded on exit."""
        # a signal during the open is held until the bench is in hand (signals_deferred),
        # then raised inside the try: the bench it finds connected is made safe. Looked up
        # on the package at each call (``memprog.open_bench``), the one public entry point
        b = None
        try:
            with signals_deferred():
                b = self.bench = memprog.open_bench(bench)
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


@dataclass
class RunState:
    """Where a run stands, for the failure report: the open store and the run's context."""

    store: Any = None
    ctx: RunContext | None = None

    def close(self) -> None:
        """Close the store (if one was opened)."""
        if self.store is not None:
            self.store.close()


def _bench_identity(config: Any, path: Any, bench: str) -> dict[str, Any]:
    return {
        "bench": bench,
        "bench_path": str(path),
        "chip_id": config.chip.id,
        "technology": config.chip.technology,
    }


def begin_run(
    state: RunState,
    *,
    db: str | None,
    bench: str | None,
    protocol: str | None = None,
    params: dict[str, Any] | None = None,
    cells_total: int | None = None,
    chip_id: str | None = None,
    before_start: Callable[[Any], dict[str, Any] | None] | None = None,
    precheck: Callable[[Any], None] | None = None,
    stored: bool = True,
) -> dict[str, Any]:
    """Everything before a run exists: the bench file, the simulated chip's state folder,
    the command's prechecks, the store, the resume checks. Returns the run's fields.

    Raises MemprogError with no run created (the store, if opened, is in ``state.store``).
    """
    fields: dict[str, Any] = {"protocol": protocol, "params": params, "cells_total": cells_total}
    if bench is None:
        fields["chip_id"] = chip_id
    else:
        config, path = load_bench_config(bench)
        check_stack_options(config, path)
        fields.update(_bench_identity(config, path, bench))
        if any(i.simulated for i in config.instruments.values()) and persistent():
            # a simulated chip keeps its state in a folder: an unusable one is refused here,
            # before a run exists (sim_instruments/chip_state.py)
            state_dir()
        if precheck is not None:
            precheck(config)
    if not stored:
        return fields
    # deferred: the store pulls in sqlalchemy and pandas (~0.3 s)
    from memprog.store import open_store

    state.store = open_store(db)
    if before_start is not None:
        fields.update(before_start(state.store) or {})
    return fields


def run_body(
    body: Callable[[RunContext], Outcome],
    state: RunState,
    fields: dict[str, Any],
    *,
    kind: str,
    resumed_from: str | None = None,
    trace: bool = False,
) -> Outcome:
    """Run ``body`` as a stored run of ``kind`` (unstored when :func:`begin_run` opened no
    store); the run ends ``complete``, ``failed`` or ``interrupted`` as the body does."""
    if state.store is None:
        state.ctx = RunContext(None, None, kind)
        return body(state.ctx)
    # deferred: the store pulls in sqlalchemy and pandas
    from memprog.store import mask_url, stored_run

    with ExitStack() as stack:
        # a signal while the run is being created waits until the run is in hand (its
        # "started" line is printed by then), so the run is marked interrupted and named
        with signals_deferred():
            handle = stack.enter_context(
                stored_run(state.store, kind=kind, resumed_from=resumed_from, trace=trace, **fields)
            )
            state.ctx = RunContext(state.store, handle, kind)
        outcome = body(state.ctx)
        outcome.summary.setdefault("run_id", handle.run_id)
        outcome.summary.setdefault("db", mask_url(state.store.url))
        handle.summary = sanitize(outcome.summary, fallback=str)
    return outcome


def check_resumable_run(
    store: Any,
    run_id: str,
    *,
    kind: str,
    what: str,
    bench: str,
    same_job: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The stored run ``run_id`` if it can be resumed, else a ConfigError saying why not.

    Why one implementation: ``tune --map --resume`` and ``program --resume`` must refuse the
    same things in the same order: a run of another kind, a finished run, a run whose
    process still lives on this host (a resume would pulse its cells twice), a run of
    another job (``same_job``, the command's own comparison), another chip, and a run
    already resumed once (that run holds its cells).
    """
    # deferred: the store pulls in sqlalchemy and pandas (the caller's store is open already)
    from memprog.store.runs import check_not_resumed, run_alive_here

    run = store.get_run(run_id)  # unknown: ConfigError naming the run
    if run.get("kind") != kind:
        raise ConfigError("--resume", run_id, what, f"it is a {run.get('kind')!r} run")
    if run.get("status") == "complete":
        raise ConfigError("--resume", run_id, "an interrupted run", "it finished (status complete)")
    if run_alive_here(run):
        pid = run.get("pid") or (run.get("params") or {}).get("pid")
        raise ConfigError("--resume", run_id, "an interrupted run", f"it is still running (pid {pid})")
    if same_job is not None:
        same_job(run)
    chip = load_bench_config(bench)[0].chip.id
    if run.get("chip_id") and chip and run["chip_id"] != chip:
        raise ConfigError("--resume", run_id, f"a run on chip {chip}", f"it ran on chip {run['chip_id']}")
    check_not_resumed(store, run_id)  # a run is resumed once (naming the run that did)
    return run


def _emit_json(doc: dict[str, Any]) -> None:
    typer.echo(dumps(doc, fallback=str))


def run_command(
    body: Callable[[RunContext], Outcome],
    *,
    db: str | None,
    kind: str,
    bench: str | None,
    as_json: bool,
    protocol: str | None = None,
    params: dict[str, Any] | None = None,
    cells_total: int | None = None,
    resumed_from: str | None = None,
    trace: bool = False,
    before_start: Callable[[Any], dict[str, Any] | None] | None = None,
    precheck: Callable[[Any], None] | None = None,
    chip_id: str | None = None,
    stored: bool = True,
    prepare: Callable[[], None] | None = None,
) -> NoReturn:
    """Run ``body`` as a stored run of ``kind`` on ``bench``; print; exit with the code.

    Args:
        body: the command's work (opens the bench through ``ctx.open_bench``).
        db: the store URL (None: the default store).
        bench: the bench file the run is on (None: a run on no bench, e.g. ``train``; then
            ``chip_id`` names the chip the run is about).
        before_start: called with the open store before the run starts (checks that need
            the store, e.g. that a resumed run exists); its ConfigError exits 2 with no run.
            It may return a dict of run fields that replace the given ones (a resumed
            ``program`` run takes its protocol and parameters from the run it continues).
        precheck: called with the validated bench file (BenchConfig) before the store is
            opened: input checks that need no instrument (:mod:`memprog.bench.precheck`); its
            ConfigError exits 2 with no run created and the store untouched.
        stored: False runs the body with no store (``train`` without ``--db``): the same
            signals, one-line errors and exit codes, no run recorded.
        prepare: the command's own input checks that may take time (``program`` fetches
            its weights), run first under the same signal handling; its MemprogError exits
            with :func:`memprog.reporting.outcome.exit_code_for_error`'s code (a failed
            download is 3, bad input 2) and no run.
    """
    state = RunState()
    with handle_signals():
        try:
            if prepare is not None:
                try:
                    prepare()
                except MemprogError as exc:
                    _fail(exc, exit_code_for_error(exc))
            try:
                fields = begin_run(
                    state, db=db, bench=bench, protocol=protocol, params=params,
                    cells_total=cells_total, chip_id=chip_id, before_start=before_start,
                    precheck=precheck, stored=stored,
                )  # fmt: skip
            except MemprogError as exc:
                state.close()
                _fail(exc, EXIT_BAD_INPUT)
            outcome = run_body(body, state, fields, kind=kind, resumed_from=resumed_from, trace=trace)
        except (KeyboardInterrupt, Exception) as exc:
            if not isinstance(exc, KeyboardInterrupt | MemprogError) and interrupt_signum(exc) is None:
                raise
            _report_failure(exc, state.ctx, state.store, as_json)
        except BaseException as exc:  # memprog.core.signals.Interrupted
            if interrupt_signum(exc) is None:
                raise
            _report_failure(exc, state.ctx, state.store, as_json)
    if as_json:
        _emit_json(outcome.summary)
    else:
        typer.echo(outcome.human)
    # on stderr in both modes: stdout stays one JSON document, and a script's log still
    # says the run was stored, as it said it started
    if state.store is not None and state.ctx is not None and state.ctx.handle is not None:
        # deferred: the store pulls in sqlalchemy and pandas
        from memprog.store import mask_url

        typer.echo(f"memprog: run {state.ctx.run_id} stored (db {mask_url(state.store.url)})", err=True)
    state.close()
    raise typer.Exit(outcome.code)


def _print_traceback_if_debug(exc: BaseException) -> None:
    """``--debug`` / ``MEMPROG_DEBUG=1``: the traceback behind the one-line error."""
    if debug_enabled():
        typer.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)


def _fail(exc: MemprogError, code: int) -> NoReturn:
    _print_traceback_if_debug(exc)
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(code)


def _report_failure(exc: BaseException, ctx: RunContext | None, store: Any, as_json: bool) -> NoReturn:
    """One stderr line (and with --json one JSON document), partial outputs, the exit."""
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
    if store is not None:
        # deferred: the store pulls in sqlalchemy and pandas
        from memprog.store import mask_url

        where = f"db {mask_url(store.url)}"
    else:
        where = "no store"
    if signum is not None:
        code = exit_code_for_signal(signum)
        # a characterisation stores samples as it goes, not finished cells
        what = "the samples stored so far kept" if ctx is not None and ctx.kind == "characterize" else f"{cells} finished cells kept"
        kept = (
            f"run {run_id} marked interrupted, {what} ({where}"
            + (f"; {', '.join(written)}" if written else "")
            + ")"
            + (f"; continue with {ctx.resume_hint}" if ctx is not None and ctx.resume_hint else "")
            if run_id is not None
            else "the run was not stored"
            if ctx is not None
            else "no run had started"
        )
        line = f"memprog: interrupted by {signal_name(signum)}: {safe}; {kept}"
    else:
        code = exit_code_for_error(exc)
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


__all__ = [
    "DbOpt",
    "Outcome",
    "RunContext",
    "RunState",
    "begin_run",
    "check_resumable_run",
    "run_body",
    "run_command",
]
