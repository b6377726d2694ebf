"""``memprog db ...`` (the run store and the variability database) and ``memprog characterize``.

Thin over :mod:`memprog.store` (the CLI never builds SQL): every command takes ``--db URL``
(default ``$MEMPROG_DB`` or the user's SQLite file) and ``--json`` (one document on stdout).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from memprog.bench.precheck import reachable_cells
from memprog.cli import options as O
from memprog.cli.common import BenchOpt, JsonOpt, ProgressOpt, emit, fail, show_progress
from memprog.cli.fleet_run import (
    ChipsEachOpt,
    EngineOpt,
    FleetOpt,
    RayAddressOpt,
    characterize_fleet_text,
    fleet_requested,
    run_protocol_fleet,
)
from memprog.cli.runs import DbOpt, Outcome, run_command
from memprog.core.errors import ConfigError, MemprogError
from memprog.core.jsonout import dumps
from memprog.protocols.characterize import CharacterizeParams, characterize

db_app = typer.Typer(help="The run store and the variability database.", no_args_is_help=True)


def _open(db: str | None, read_only: bool = True) -> Any:
    # deferred: the store pulls in sqlalchemy and pandas
    from memprog.store import open_store

    try:
        return open_store(db, read_only=read_only)
    except MemprogError as exc:
        raise fail(exc) from exc


def _records(df: Any) -> list[dict[str, Any]]:
    return json.loads(df.to_json(orient="records", date_format="iso"))


@db_app.command("summary")
def summary_cmd(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Runs by status and kind, stored cells, and what each variability table holds."""
    # deferred: the store pulls in sqlalchemy and pandas
    from memprog.store import VariabilityDB, mask_url

    store = _open(db)
    try:
        runs = store.list_runs()
        tables = VariabilityDB(store=store).summary()
        doc = {
            "db": mask_url(store.url),
            "runs": int(len(runs)),
            "by_status": {k: int(v) for k, v in runs["status"].value_counts().items()},
            "by_kind": {k: int(v) for k, v in runs["kind"].value_counts().items()},
            "cells": int(runs["cells_done"].fillna(0).sum()),
            "variability": tables,
        }
    except MemprogError as exc:
        raise fail(exc) from exc
    finally:
        store.close()
    lines = [f"store {doc['db']}: {doc['runs']} runs, {doc['cells']} stored cells"]
    lines.append("  by status: " + (", ".join(f"{k} {v}" for k, v in doc["by_status"].items()) or "none"))
    lines.append("  by kind:   " + (", ".join(f"{k} {v}" for k, v in doc["by_kind"].items()) or "none"))
    lines.append(
        f"  variability ({tables['characterize_runs']} characterize runs): "
        + ", ".join(f"{t} {tables[t]} samples" for t in ("imprecision", "disturb", "stuck", "rtn"))
    )
    lines.append("  twin (memprog sim calibrate): " + ", ".join(f"{t} {tables[t]} samples" for t in ("response", "noise", "relax")))
    emit(doc, as_json, "\n".join(lines))


@db_app.command("chips")
def chips_cmd(
    db: DbOpt = None,
    chip: Annotated[str | None, typer.Option("--chip", help="Only this chip id.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Each chip the store knows and the weights last programmed on it: sha256, source,
    run id, when, and chip accuracy where the run measured it (a run that did not finish
    is marked PARTIAL: the chip holds a mix).

    Example: memprog db chips --json
    """
    # deferred: the store pulls in sqlalchemy and pandas
    from memprog.store.chips import chips_on_record, format_chips

    store = _open(db)
    try:
        chips = chips_on_record(store, chip)
    except MemprogError as exc:
        raise fail(exc) from exc
    finally:
        store.close()
    if chip is not None and not chips:
        raise fail(ConfigError("--chip", chip, "a chip id this store has runs for", "memprog db chips lists them"))
    emit({"chips": chips}, as_json, format_chips(chips))


@db_app.command("runs")
def runs_cmd(
    db: DbOpt = None,
    kind: Annotated[str | None, typer.Option("--kind", callback=O.choice_of(lambda: __import__("memprog.store").store.RUN_KINDS), help="Only runs of this kind.")] = None,
    status: Annotated[str | None, typer.Option("--status", callback=O.choice_of(lambda: __import__("memprog.store").store.RUN_STATUSES), help="Only runs with this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", callback=O.int_in(1, O.MAX_LIMIT), help="At most this many (newest first).")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The stored runs, newest first: run_id, kind, bench, status, start, cells done."""
    store = _open(db)
    try:
        df = store.list_runs(kind=kind, status=status, limit=limit)
    except MemprogError as exc:
        raise fail(exc) from exc
    finally:
        store.close()
    if as_json:
        typer.echo(dumps({"runs": _records(df)}))
        return
    if df.empty:
        typer.echo("no runs")
        return
    lines = [f"{'run_id':12}  {'kind':12} {'status':11} {'started (UTC)':19}  {'cells':>11}  bench"]
    for r in df.itertuples():
        total = "" if r.cells_total is None or r.cells_total != r.cells_total else f"/{int(r.cells_total)}"
        # a fleet run stores no cells of its own (its chips' runs do): "0" would read as lost work
        cells = "in chips" if r.kind == "fleet" else str(int(r.cells_done)) + total
        lines.append(
            f"{r.run_id:12}  {r.kind:12} {r.status:11} {r.started_at:%Y-%m-%d %H:%M:%S}  "
            f"{cells:>11}  {r.bench or ''}"
        )
    typer.echo("\n".join(lines))


@db_app.command("export")
def export_cmd(
    run: Annotated[str, typer.Option("--run", help="RUN_ID to export.")],
    out: Annotated[Path, typer.Option("--out", callback=O.out_file(".parquet", ".csv"), help="File to write (.parquet or .csv).")],
    traces: Annotated[
        bool,
        typer.Option(
            "--traces",
            help="The run's pulse/read trace (stored with --trace) instead of its cells.",
        ),
    ] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One row per cell of a run (row, col, target_us, final_us, pulses, converged, flags,
    ...), or with --traces one row per pulse or read: record, kind, row, col, amplitude_v,
    width_s, gate_v, g_us."""
    if out.suffix not in (".parquet", ".csv"):
        raise fail(ConfigError("--out", str(out), "a .parquet or .csv file"))
    store = _open(db)
    try:
        info = store.get_run(run)
        df = store.traces(run) if traces else store.cells(run).drop(columns=["seq"])
        if traces and df.empty:
            raise ConfigError("--traces", run, "a run stored with --trace", "it holds no trace")
    except MemprogError as exc:
        raise fail(exc) from exc
    finally:
        store.close()
    try:
        if out.suffix == ".parquet":
            df.to_parquet(out, index=False)
        else:
            df.to_csv(out, index=False)
    except OSError as exc:
        raise fail(ConfigError("--out", str(out), "a writable file", exc.strerror or str(exc))) from exc
    what = "trace_records" if traces else "cells"
    doc = {"run_id": run, "status": info["status"], what: int(len(df)), "out": str(out)}
    emit(doc, as_json, f"run {run} ({info['status']}): {len(df)} {what.replace('_', ' ')} -> {out}")


@db_app.command("export-variability")
def export_variability_cmd(
    out: Annotated[Path, typer.Option("--out", callback=O.out_file(".parquet"), help="Parquet file to write.")],
    db: DbOpt = None,
    chip_id: Annotated[str | None, typer.Option("--chip-id", help="Only this chip.")] = None,
    technology: Annotated[str | None, typer.Option("--technology", help="Only this technology.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every characterisation sample (imprecision, disturb, stuck, rtn, range, and the twin's
    response, noise, relax) to one Parquet file, for a training machine or one that runs
    `memprog sim calibrate` (`memprog db import-variability` there)."""
    # deferred: the store pulls in sqlalchemy and pandas
    from memprog.store import VariabilityDB

    try:
        vdb = VariabilityDB(db, chip_id=chip_id, technology=technology)
    except MemprogError as exc:
        raise fail(exc) from exc
    try:
        counts = vdb.export_parquet(out)
    except MemprogError as exc:
        raise fail(exc) from exc
    finally:
        vdb.close()
    doc = {"out": str(out), "rows": counts}
    emit(doc, as_json, f"{out}: " + ", ".join(f"{t} {n}" for t, n in counts.items()))


@db_app.command("import-variability")
def import_variability_cmd(
    path: Annotated[Path, typer.Argument(help="Parquet file from `memprog db export-variability`.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Load an exported variability file into this store (as characterize runs)."""
    # deferred: the store pulls in sqlalchemy and pandas
    from memprog.store import import_variability

    try:
        doc = import_variability(db, path)
    except MemprogError as exc:
        raise fail(exc) from exc
    emit(
        doc,
        as_json,
        f"imported {len(doc['runs'])} characterize runs: "
        + ", ".join(f"{t} {n}" for t, n in doc["rows"].items()),
    )


@db_app.command("upgrade")
def upgrade_cmd(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Create or migrate the store's schema to this memprog's newest revision."""
    # deferred: the store pulls in sqlalchemy and pandas
    from memprog.store import mask_url, migrate

    store = _open(db, read_only=False)
    with store.engine.connect() as c:
        rev = migrate.current_revision(c)
    store.close()
    doc = {"db": mask_url(store.url), "revision": rev}
    emit(doc, as_json, f"{doc['db']}: schema revision {rev} (newest)")


@db_app.command("reap")
def reap_cmd(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Mark 'interrupted' the runs left 'running' by a process of this host that is gone.

    A run killed outright (kill -9, a power cut) never ends itself; every new run does this
    too. Runs of other hosts are left alone (their processes cannot be seen from here).
    """
    # deferred: the store pulls in sqlalchemy and pandas
    from memprog.store import mask_url

    store = _open(db, read_only=False)
    try:
        reaped = store.reap_dead_runs()
    except MemprogError as exc:
        raise fail(exc) from exc
    finally:
        store.close()
    doc = {"db": mask_url(store.url), "reaped": reaped}
    emit(doc, as_json, f"{doc['db']}: {len(reaped)} run(s) marked interrupted" + "".join(f"\n  {r}" for r in reaped))


@db_app.command("variability")
def variability_cmd(
    db: DbOpt = None,
    chip_id: Annotated[str | None, typer.Option("--chip-id", help="Only this chip.")] = None,
    technology: Annotated[str | None, typer.Option("--technology", help="Only this technology.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The derived tables: imprecision by level (and its fit), disturb by later writes,
    stuck fractions, RTN before/after denoising."""
    # deferred: the store pulls in sqlalchemy and pandas
    from memprog.store import VariabilityDB

    try:
        vdb = VariabilityDB(db, chip_id=chip_id, technology=technology)
        doc = variability_report(vdb)
        if not doc["runs"]["characterize_runs"]:
            raise _no_characterize_runs(db, chip_id, technology)
    except MemprogError as exc:
        raise fail(exc) from exc
    emit(doc, as_json, format_variability(doc))


def _no_characterize_runs(url: str | None, chip_id: str | None, technology: str | None) -> ConfigError:
    """Nothing to derive the tables from: say which command stores what they need.

    Why: an empty table set printed with exit 0 reads like "no variability", and leaves a
    new user guessing where the data comes from (like ``db export --traces`` on a run
    without traces, "nothing to show" is refused input, exit 2).
    """
    # deferred: the store pulls in sqlalchemy and pandas
    from memprog.store import default_db_url, mask_url

    db_opt = "" if url is None else f" --db {mask_url(url)}"  # --db given: the same store
    url = url or default_db_url()
    which = " ".join(
        f"--{k} {v}" for k, v in (("chip-id", chip_id), ("technology", technology)) if v is not None
    )
    return ConfigError(
        "db",
        mask_url(url),
        "a store holding characterize runs" + (f" ({which})" if which else ""),
        f"it holds none; run `memprog characterize --bench BENCH{db_opt}` first "
        "(it stores the samples these tables come from)",
    )


def variability_report(vdb: Any) -> dict[str, Any]:
    """The derived tables as plain JSON-ready data (missing tables: None)."""
    # deferred: the store pulls in sqlalchemy and pandas
    from memprog.store import MissingDataError

    doc: dict[str, Any] = {"runs": vdb.summary()}

    def get(name: str, fn: Any) -> None:
        try:
            v = fn()
            doc[name] = _records(v) if hasattr(v, "to_json") else v
        except MissingDataError:
            doc[name] = None

    get("imprecision", vdb.imprecision)
    get("imprecision_fit", vdb.imprecision_fit)
    get("disturb", vdb.disturb_table)
    get("stuck_fractions", vdb.stuck_fractions)
    get("rtn", vdb.rtn_stats)
    get("g_range_us", vdb.g_range_us)
    return doc


def format_variability(doc: dict[str, Any]) -> str:
    """Human text of :func:`variability_report`."""
    lines = []
    if doc.get("g_range_us"):
        # not the chip's range (30-4,800 µS on sim_onchip): where most working cells reach
        # from both rails (median RESET to 10th-percentile SET), margins inside; the
        # imprecision levels span it, so the line says so
        lo, hi = doc["g_range_us"]
        lines.append(f"imprecision levels {lo:.1f}-{hi:.1f} µS (working range: median RESET to 10th-percentile SET state, margins inside)")
    if doc.get("imprecision"):
        lines.append("tuning imprecision   level µS   std %   mean offset %   reads")
        for r in doc["imprecision"]:
            lines.append(
                f"                     {r['level_us']:8.1f}  {r['std_pct']:6.3f}  {r['mean_offset_pct']:+13.3f}  {r['n_samples']:6d}"
            )
        f = doc["imprecision_fit"]
        lines.append(
            f"  fit std%(G) = {f['slope_pct_per_us']:.5f}·G + {f['intercept_pct']:.3f}; "
            f"offset {f['offset_mean_pct']:+.3f} ± {f['offset_std_pct']:.3f} %"
        )
    if doc.get("disturb"):
        lines.append("disturb   later writes   mean µS   std µS      n")
        for r in doc["disturb"]:
            std = r["std_us"]  # null for one sample (no spread to take): "-", not "nan"
            std_s = "-" if std is None or std != std else f"{std:.2f}"
            lines.append(f"          {r['later_writes']:12d}  {r['mean_us']:+8.2f}  {std_s:>7}  {r['n']:5d}")
    if doc.get("stuck_fractions"):
        s = doc["stuck_fractions"]
        lines.append(f"stuck: HRS {100 * s['hrs']:.2f} %, LRS {100 * s['lrs']:.2f} % of {s['cells']} cells")
    if doc.get("rtn"):
        order = {"before": 0, "after": 1}  # the table comes sorted by name: after first
        for r in sorted(doc["rtn"], key=lambda r: order.get(r["phase"], 2)):
            lines.append(f"RTN {r['phase']:6}: spread mean {r['mean_us']:.3f} µS, p90 {r['p90_us']:.3f} µS ({r['n']} cells)")
    return "\n".join(lines) or "no characterisation data"


def register(app: typer.Typer) -> None:
    """Add ``db`` and ``characterize`` to the ``memprog`` app."""
    app.add_typer(db_app, name="db")

    @app.command("characterize")
    def characterize_cmd(
        bench: BenchOpt = "sim_k4200_707b",
        devices: Annotated[int | None, typer.Option("--devices", callback=O.int_in(1, O.MAX_DEVICES), help="Devices for the imprecision and RTN tests, and random working cells for the response, noise and relax tests (memprog sim calibrate). Default 8, or every cell the stack reaches when fewer (a probe station); more than it reaches is refused.")] = None,
        levels: Annotated[int, typer.Option("--levels", callback=O.int_in(2, 64), help="Equidistant target levels.")] = 8,
        repeats: Annotated[int, typer.Option("--repeats", callback=O.int_in(1, 1000), help="Tune/untune repeats per level and device.")] = 5,
        reads: Annotated[int, typer.Option("--reads", callback=O.int_in(2, 1000), help="Consecutive reads after each tune.")] = 10,
        disturb_cells: Annotated[int | None, typer.Option("--disturb-cells", callback=O.int_in(0, O.MAX_CELLS), help="Cells programmed in order for the disturb test (default: the whole array, at most 64; 0: none, the disturb test is skipped).")] = None,
        seed: Annotated[int, typer.Option("--seed", callback=O.SEED, help="Seed of the random disturb targets.")] = 0,
        response_repeats: Annotated[int, typer.Option("--response-repeats", callback=O.int_in(0, 100), help="Repeats of each response pulse on --devices random cells (for memprog sim calibrate; 0: none, the response test is skipped).")] = 3,
        db: DbOpt = None,
        progress: ProgressOpt = None,
        as_json: JsonOpt = False,
        engine: EngineOpt = "local",
        ray_address: RayAddressOpt = None,
        chips: ChipsEachOpt = None,
        fleet: FleetOpt = None,
    ) -> None:
        """Characterise the bench's chip as seed 001 does and store the samples.

        Stuck census and working range (every cell the stack reaches, at most the first
        4,096 in row-major order, driven to its SET and RESET rails at the ramp caps), tuning
        imprecision (--devices x --levels x --repeats tunes from the off state, --reads
        consecutive reads after each), disturb (--disturb-cells programmed in order, each
        re-read after every later write), RTN (read spread before and after denoising);
        then on --devices random working cells the pulse response (amplitude x width x
        gate), read and telegraph noise, relaxation over bench time: what `memprog sim
        calibrate` fits a twin from. The derived tables: `memprog db variability`.

        --chips N / --fleet F.yaml characterise every chip of a fleet (--engine ray: one
        actor per chip, in parallel), one characterize run per chip in the one store, and
        print the yield view (stuck fraction and working range per chip side by side).
        """
        try:
            asked = {"devices": devices} if devices is not None else {}  # unset: the default, cut to the stack
            cp = CharacterizeParams(
                **asked, levels=levels, repeats=repeats, reads=reads,
                disturb_cells=disturb_cells, seed=seed, response_repeats=response_repeats,
            )  # fmt: skip
        except MemprogError as exc:
            raise fail(exc) from exc
        except ValueError as exc:
            raise fail(ConfigError("characterize", str(exc).splitlines()[0])) from exc
        show = show_progress(progress)
        if fleet_requested(engine, ray_address, chips, fleet):
            characterize_fleet(bench, cp, db, engine, ray_address, chips, fleet, as_json, show)
        # the procedures an option of 0 turns off: listed under "skipped" as the stack's are
        off = {name: f"turned off by {opt} 0" for name, opt, v in
               (("disturb", "--disturb-cells", disturb_cells), ("response", "--response-repeats", response_repeats))
               if v == 0}  # fmt: skip
        t0 = time.perf_counter()

        def body(ctx: Any) -> Any:
            # deferred: the store pulls in sqlalchemy and pandas
            from memprog.store import VariabilityDB, mask_url

            with ctx.open_bench(bench) as b:
                rep = characterize(b.programmer, cp, sink=ctx.sink, progress=show)
                bench_time = b.bench_time_s
                chip_id = b.config.chip.id
            ctx.sink.flush()
            doc = variability_report(VariabilityDB(store=ctx.store, run_ids=[ctx.run_id]))
            skipped = {**off, **rep.pop("skipped", {})}
            doc.update({"counts": rep, "skipped": skipped, "wall_s": time.perf_counter() - t0, "bench_time_s": bench_time,
                        "bench": bench, "chip_id": chip_id,
                        # g_range_us by what it is (not the chip's range): what the levels span
                        "imprecision_levels_us": doc.get("g_range_us")})  # fmt: skip
            human = format_variability(doc) + "".join(f"\nskipped: {k} ({why})" for k, why in skipped.items()) + (
                f"\nwall {doc['wall_s']:.1f} s, bench time {bench_time:.2f} s; tables: memprog db variability; "
                f"a twin: memprog sim calibrate{' --db ' + mask_url(db) if db else ''} --chip {chip_id} --write-bench twin.yaml"
            )
            return Outcome(doc, human, failed_cells=0)

        run_command(
            body, db=db, kind="characterize", bench=bench, as_json=as_json,
            protocol="characterize", params=cp.model_dump(),
            precheck=lambda cfg: characterize_precheck(cfg, cp),
        )  # fmt: skip


def reachable_count(config: Any) -> int:
    """How many cells the bench file's stack reaches (:func:`memprog.bench.precheck.reachable_cells`)."""
    cells = reachable_cells(config)
    return int(config.chip.rows * config.chip.cols) if cells is None else len(cells)


def characterize_precheck(config: Any, cp: CharacterizeParams) -> None:
    """Sizes the bench cannot hold, refused before the run is stored (memprog.bench.precheck).

    Why here: ``--devices 65`` on an 8x8 chip used to create a run, open the bench, and
    only then be refused by the protocol, leaving a ``failed`` run for a typo. The rule is
    the protocol's own (``_reachable`` in protocols/characterize.py, which stays for library
    callers): an explicit size above what the stack reaches; a default is cut down there."""
    n = reachable_count(config)
    asked = cp.model_fields_set
    checks = (("devices", cp.devices, min(cp.census_cells or 4096, n)), ("disturb_cells", cp.disturb_cells, n))
    for name, value, most in checks:
        if name in asked and value is not None and value > most:
            raise ConfigError("--" + name.replace("_", "-"), value, f"<= {most}", "the cells the bench's stack reaches")


def characterize_fleet(
    bench: str, cp: CharacterizeParams, db: str | None, engine: str, ray_address: str | None,
    chips: int | None, fleet: Path | None, as_json: bool, show: bool,
) -> NoReturn:
    """``characterize`` on every chip of a fleet (:func:`memprog.cli.fleet_run.run_protocol_fleet`):
    each chip's run stores what the single command stores for its chip (its samples and the
    derived tables of that run), so ``db variability --chip-id`` and ``sim calibrate --chip``
    work per chip."""

    def make_job() -> Any:
        # deferred: the fleet room imports the jobs (sqlalchemy, pandas)
        from memprog.fleet.protocol_job import characterize_job

        return characterize_job(cp)

    def precheck(cfg: Any) -> None:  # each chip's bench file, before anything opens
        characterize_precheck(cfg, cp)

    def summarize(store: Any, run_id: str | None, got: dict[str, Any]) -> dict[str, Any]:
        # deferred: the store pulls in sqlalchemy and pandas
        from memprog.store import VariabilityDB, mask_url

        doc = variability_report(VariabilityDB(store=store, run_ids=[run_id]))
        doc.update({k: got[k] for k in ("counts", "wall_s", "bench_time_s", "outcome")})
        doc.update({"bench": bench, "run_id": run_id, "db": mask_url(store.url)})
        return doc

    run_protocol_fleet(
        make_job, bench, db, engine, ray_address, chips, fleet, as_json, show,
        run_params={"protocol": "characterize", "params": cp.model_dump()},
        describe=characterize_fleet_text, summarize=summarize, precheck=precheck,
    )  # fmt: skip
