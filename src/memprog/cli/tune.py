"""``memprog tune``: the write-verify protocols from the command line.

It opens a bench file (simulated or lab), runs a protocol through the bench's
CellProgrammer and prints a human summary, or with ``--json`` exactly one JSON document on
stdout (progress bars and errors go to stderr). ``tune`` programs a set of cells, or a whole
conductance map from a ``.npy``/``.csv`` file (``--resume`` continues an interrupted map job
under the shared resume rules, :func:`memprog.cli.runs.check_resumable_run`). The level
ladder is ``memprog levels`` (:mod:`memprog.cli.levels`).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import numpy as np
import typer

from memprog.bench import precheck as pc
from memprog.cli import options as O
from memprog.cli.common import BenchOpt, JsonOpt, ProgressOpt, fail, show_progress
from memprog.cli.fleet_run import (
    ChipsEachOpt,
    EngineOpt,
    FleetOpt,
    RayAddressOpt,
    fleet_requested,
    run_protocol_fleet,
    tune_fleet_text,
)
from memprog.cli.outputs import ForceOpt, refuse_existing
from memprog.cli.runs import DbOpt, Outcome, check_resumable_run, run_command
from memprog.core.errors import ConfigError, MemprogError
from memprog.protocols import registry
from memprog.protocols.array import ArrayParams, program_array
from memprog.protocols.settle import resolve_settle_s, retention_check
from memprog.reporting.figures import (
    array_axes,
    heat_map,
    paint_flags,
    pyplot,
    robust_limits,
    run_title,
)
from memprog.reporting.outcome import ERROR_CMAP, FLAG_STUCK, describe, result_outcome


def parse_indices(text: str, name: str) -> np.ndarray:
    """``"3"``, ``"0,2,5"``, ``"0:8"`` (end excluded) or combinations like ``"0:4,9"``."""
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if ":" in part:
                a, b = part.split(":", 1)
                lo, hi = int(a), int(b)
                if hi <= lo:
                    raise ValueError
                out.extend(range(lo, hi))
            else:
                out.append(int(part))
    except ValueError:
        raise ConfigError(name, text, "indices like 3, 0,2,5 or 0:8 (end excluded)") from None
    if not out:
        raise ConfigError(name, text, "at least one index")
    return np.array(out, dtype=np.int64)


def parse_values(text: str, name: str) -> np.ndarray:
    """Comma-separated floats."""
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(name, text, "comma-separated numbers") from None
    if not vals:
        raise ConfigError(name, text, "at least one number")
    return np.array(vals)


def load_map(path: Path) -> np.ndarray:
    """A conductance map (µS) from ``.npy`` or ``.csv``: the one reader ``program`` uses too.

    Bounded by the largest chip before anything is allocated; a CSV header row only when no
    cell of the first row is a number; any other non-numeric cell refused with its line and
    column (:func:`memprog.jobs.weights.load_conductance_map`).
    """
    # deferred: memprog.jobs pulls in the store (sqlalchemy, pandas)
    from memprog.jobs.weights import load_conductance_map

    if not path.exists():
        raise ConfigError("map", str(path), "an existing .npy or .csv file")
    return load_conductance_map(path, "map")


def register(app: typer.Typer) -> None:
    """Add ``tune`` to the ``memprog`` app."""

    @app.command("tune")
    def tune_cmd(
        bench: BenchOpt = "sim_onchip",
        rows: Annotated[str | None, typer.Option("--rows", callback=O.index_list("cols"), help="Rows: 3 | 0,2,5 | 0:8.")] = None,
        cols: Annotated[str | None, typer.Option("--cols", callback=O.index_list("rows"), help="Columns, same forms.")] = None,
        target_us: Annotated[
            str | None, typer.Option("--target-us", callback=O.TARGETS_US, help="One target, or one per cell (row-major).")
        ] = None,
        map_path: Annotated[
            Path | None, typer.Option("--map", help="Conductance map (.npy/.csv, µS, NaN = skip).")
        ] = None,
        origin: Annotated[
            str, typer.Option("--origin", callback=O.index_list(), help="Map's top-left cell: ROW,COL.")
        ] = "0,0",
        protocol: Annotated[
            str, typer.Option("--protocol", callback=O.choice("alibart", "denoise", "feedforward", "predictive"), help="alibart | denoise | feedforward | predictive (learns each cell's response: a few pulses per cell)")
        ] = "alibart",
        order: Annotated[
            str,
            typer.Option(
                "--order",
                callback=O.choice("row-major", "column-major", "snake", "high-first", "low-first"),
                help="Map order: row-major | column-major | snake | high-first | low-first",
            ),
        ] = "row-major",
        tolerance_rel: Annotated[
            float | None, typer.Option("--tolerance-rel", callback=O.TOLERANCE_REL, help="Acceptance half-band as a fraction of the target (default: the protocol's own; Alibart 0.01 = 1 %).")
        ] = None,
        max_pulses: Annotated[
            int | None, typer.Option("--max-pulses", callback=O.PULSES, help="Pulse budget per cell (default: the protocol's own; Alibart 2000, denoise 400, feedforward 200).")
        ] = None,
        out: Annotated[
            Path | None, typer.Option("--out", callback=O.out_file(), help="CSV of the per-cell results (an existing file is refused without --force).")
        ] = None,
        png: Annotated[
            Path | None,
            typer.Option("--png", callback=O.out_file(), help="Draw target, final and error maps of the tuned cells into this PNG (an existing file is refused without --force)."),
        ] = None,
        progress: ProgressOpt = None,
        force: ForceOpt = False,
        as_json: JsonOpt = False,
        db: DbOpt = None,
        resume: Annotated[
            str | None,
            typer.Option(
                "--resume",
                help="RUN_ID of an interrupted --map job to continue (its finished cells are "
                "not pulsed again).",
            ),
        ] = None,
        settle_s: Annotated[
            float | None,
            typer.Option(
                "--settle-s",
                callback=O.SETTLE_S,
                help="Bench time waited before the final re-verify (once per batch; default: "
                "the chip technology's; 0: none).",
            ),
        ] = None,
        retention_s: Annotated[
            str | None,
            typer.Option(
                "--retention-s",
                callback=O.RETENTION_S,
                help="After programming, re-read the cells after these delays (s, e.g. "
                "10,3600; simulated or real) and report the fraction within tolerance.",
            ),
        ] = None,
        trace: Annotated[
            bool,
            typer.Option(
                "--trace",
                help="Also store every pulse and read in the run (memprog db export --traces).",
            ),
        ] = False,
        engine: EngineOpt = "local",
        ray_address: RayAddressOpt = None,
        chips: ChipsEachOpt = None,
        fleet: FleetOpt = None,
    ) -> None:
        """Tune cells (the grid --rows x --cols) or a whole --map to their targets.

        The run is stored (--db; its id is printed to stderr at the start). Exit 0 when every
        working cell is within tolerance (stuck cells are reported, not failed), 1 when a
        working cell is not, 2 on bad input, 3 on an instrument or storage
        error, 130/143/129 when interrupted (the finished cells are kept; --resume RUN_ID
        continues a --map job). --map with --chips N / --fleet F.yaml programs the same map
        on every chip of a fleet (--engine ray: one actor per chip), one array run per chip.
        """
        as_fleet = fleet_requested(engine, ray_address, chips, fleet)
        try:
            if as_fleet:
                check_fleet_tune(rows, cols, target_us, map_path, out, png, resume, retention_s, trace)
            job = parse_tune(
                bench, rows, cols, target_us, map_path, origin, protocol, order, tolerance_rel,
                max_pulses, out, png, resume, settle_s, retention_s, show_progress(progress),
            )  # fmt: skip
        except MemprogError as exc:
            raise fail(exc) from exc
        if as_fleet:
            tune_fleet(job, map_path, db, engine, ray_address, chips, fleet, force, as_json)

        def check_resume(store: Any) -> None:  # the shared resume rules, before the run exists
            if resume is not None:
                check_resumable(store, resume, job.fingerprint, bench)

        run_command(
            lambda ctx: tune_body(ctx, job),
            db=db,
            kind="array" if job.m is not None else "tune",
            bench=bench,
            as_json=as_json,
            protocol=f"array/{protocol}" if job.m is not None else protocol,
            params=job.run_params(map_path, trace),
            cells_total=job.cells_total,
            resumed_from=resume,
            before_start=check_resume,
            precheck=lambda cfg: tune_precheck(cfg, job, force),
            trace=trace,
        )


@dataclass
class TuneJob:
    """What ``tune`` checked before any run exists: the options, parsed and bounded."""

    bench: str
    protocol: str
    spec: Any  # the protocol's registry entry (memprog.protocols.registry)
    order: str
    tolerance_rel: float | None
    max_pulses: int | None
    settle_s: float | None
    delays: list[float] | None
    out: Path | None
    png: Path | None
    resume: str | None
    show: bool
    t0: float
    m: np.ndarray | None = None  # a --map job: the map, its file's name and top-left cell
    map_name: str | None = None
    origin: tuple[int, int] = (0, 0)
    r: np.ndarray | None = None  # a grid job: the cells and their targets
    c: np.ndarray | None = None
    t: np.ndarray | None = None

    @property
    def fingerprint(self) -> dict[str, Any] | None:
        """What a resumed map job must share with the run it continues (None: a grid job)."""
        if self.m is None:
            return None
        return {
            "map_sha256": map_digest(self.m),
            "map_shape": list(self.m.shape),
            "origin": [self.origin[0], self.origin[1]],
            "order": self.order,
            "protocol": self.protocol,
        }

    @property
    def cells_total(self) -> int:
        """The cells the job tunes (a map's NaN cells are skipped)."""
        return int(np.isfinite(self.m).sum()) if self.m is not None else int(self.r.size)  # type: ignore[union-attr]

    def run_params(self, map_path: Path | None, trace: bool) -> dict[str, Any]:
        """The parameters recorded in the run (a resume compares its ``job``)."""
        return {
            "protocol": self.protocol, "order": self.order, "tolerance_rel": self.tolerance_rel,
            "max_pulses": self.max_pulses, "map": None if map_path is None else str(map_path),
            "job": self.fingerprint, "pid": os.getpid(), "settle_s": self.settle_s,
            "retention_s": self.delays, "trace": trace,
        }  # fmt: skip


class Refusal(ConfigError):
    """A ConfigError (exit 2, one line) whose line is written out whole.

    Why: ``PARAM=VALUE is not allowed (allowed: ...)`` reads badly for options that are
    missing (``--cols=None``) or that exclude each other, and for a bound that depends on
    another option (``--protocol``); the parameter, value and allowed range stay on the
    exception for callers that read them.
    """

    def __init__(self, text: str, parameter: str, value: Any = None, allowed: str = "") -> None:
        super().__init__(parameter, value, allowed)
        Exception.__init__(self, text)


# the protocol settings the command line sets, by the option the user typed (registry)
USER_OPTIONS = {"tolerance_rel": "--tolerance-rel", "max_pulses": "--max-pulses", "settle_s": "--settle-s"}
GRID_OPTIONS = ("--rows", "--cols", "--target-us")


def check_grid_options(rows: str | None, cols: str | None, target_us: str | None, map_path: Path | None) -> None:
    """A map, or the three grid options: never both (a map carries its own cells and targets,
    so the grid options were silently ignored), never some of the three."""
    given = {n: v for n, v in zip(GRID_OPTIONS, (rows, cols, target_us), strict=True) if v is not None}
    if map_path is not None and given:
        shown = ", ".join(f"{n} {v}" for n, v in given.items())
        raise Refusal(
            f"--map cannot be combined with --rows/--cols/--target-us (given: {shown}; a map "
            "carries its own cells and targets)",
            "--map", str(map_path), "--map alone, or --rows, --cols and --target-us",
        )  # fmt: skip
    if map_path is None and len(given) < 3:
        missing = [n for n in GRID_OPTIONS if n not in given]
        verb = "is" if len(missing) == 1 else "are"
        raise Refusal(
            f"{' and '.join(missing)} {verb} missing (allowed: --rows, --cols and --target-us "
            "together, or --map)",
            missing[0], None, "--rows, --cols and --target-us together, or --map",
        )  # fmt: skip


def check_user_settings(spec: Any, protocol: str, *, for_map: bool = False, **user: Any) -> None:
    """The protocol's own bounds on the flags it takes, named as the user typed them.

    Why: the CLI's callbacks bound each flag for every protocol (``--max-pulses`` 1 to
    1000000); a protocol may allow less (predictive: >= 2). Its settings class says so
    (pydantic's check, the bound read from the class, not repeated here), and the message
    names the option and the protocol rather than ``PredictiveParams.max_pulses``.
    """
    for field, value in user.items():  # a flag the protocol would drop without a word
        # (a map job takes --tolerance-rel and --max-pulses as its own band and budget)
        if value is not None and field not in spec.user_fields and not for_map:
            option = USER_OPTIONS.get(field, field)
            takes = ", ".join(USER_OPTIONS.get(f, f) for f in spec.user_fields) or "none of them"
            raise Refusal(
                f"{option}={value!r} is not taken by --protocol {protocol} (it takes {takes}"
                + ("; its band is absolute, in µS" if field == "tolerance_rel" else "") + ")",
                option, value, f"left out for --protocol {protocol}",
            )  # fmt: skip
    try:
        spec.with_user(spec.settings(), **user)
    except ConfigError as exc:
        head, _, field = exc.parameter.partition(".")
        option = USER_OPTIONS.get(field)
        if head != spec.settings.__name__ or option is None:
            raise
        allowed = exc.allowed or exc.detail
        raise Refusal(
            f"{option}={exc.value!r} is not allowed for --protocol {protocol} (allowed: {allowed})",
            option, exc.value, f"{allowed} for --protocol {protocol}",
        ) from exc  # fmt: skip


def check_grid(rows: np.ndarray, cols: np.ndarray, targets: np.ndarray) -> None:
    """The grid's own consistency, before any run exists (the protocols refuse the same, but
    only once the run is open and the bench connected: a typo then left a failed run)."""
    for name, idx in (("--rows", rows), ("--cols", cols)):
        uniq, counts = np.unique(idx, return_counts=True)
        if uniq.size != idx.size:
            raise ConfigError(name, int(uniq[counts > 1][0]), "each index once (each cell at most once per run)")
    n = rows.size * cols.size
    if targets.size not in (1, n):
        raise ConfigError(
            "--target-us", f"{targets.size} values",
            f"one target for all cells, or one per cell: {n} (--rows {rows.size} x --cols {cols.size}, row-major)",
        )  # fmt: skip


def parse_tune(
    bench: str,
    rows: str | None,
    cols: str | None,
    target_us: str | None,
    map_path: Path | None,
    origin: str,
    protocol: str,
    order: str,
    tolerance_rel: float | None,
    max_pulses: int | None,
    out: Path | None,
    png: Path | None,
    resume: str | None,
    settle_s: float | None,
    retention_s: str | None,
    show: bool,
) -> TuneJob:
    """The options of ``memprog tune`` checked and parsed (ConfigError if not), before any
    run exists or the bench is opened."""
    t0 = time.perf_counter()
    spec = registry.get(protocol)
    check_grid_options(rows, cols, target_us, map_path)
    if resume is not None and map_path is None:
        raise ConfigError("--resume", resume, "only with --map (an array job)")
    # the protocol's own bounds on the flags it takes, checked before any run exists
    check_user_settings(
        spec, protocol, for_map=map_path is not None,
        tolerance_rel=tolerance_rel, max_pulses=max_pulses, settle_s=settle_s,
    )  # fmt: skip
    job = TuneJob(bench, protocol, spec, order, tolerance_rel, max_pulses, settle_s, None, out, png, resume, show, t0)
    if map_path is not None:
        job.m = load_map(map_path)
        job.map_name = map_path.name
        o = parse_indices(origin, "origin")
        if o.size != 2:
            raise ConfigError("origin", origin, "ROW,COL")
        job.origin = (int(o[0]), int(o[1]))
        registry.get(protocol, maps=True)
    else:
        rr = parse_indices(rows, "rows")  # type: ignore[arg-type]
        cc = parse_indices(cols, "cols")  # type: ignore[arg-type]
        job.t = parse_values(target_us, "target_us")  # type: ignore[arg-type]
        check_grid(rr, cc, job.t)
        job.r, job.c = (a.ravel() for a in np.meshgrid(rr, cc, indexing="ij"))
    job.delays = None if retention_s is None else list(parse_values(retention_s, "retention_s"))
    return job


def check_fleet_tune(
    rows: str | None, cols: str | None, target_us: str | None, map_path: Path | None, out: Path | None,
    png: Path | None, resume: str | None, retention_s: str | None, trace: bool,
) -> None:
    """What a fleet ``tune`` refuses before anything opens: a fleet programs one --map on
    every chip; each chip's cells are in its own run (``memprog db export --run``)."""
    for name, value in (("--rows", rows), ("--cols", cols), ("--target-us", target_us)):
        if value is not None:
            raise ConfigError(name, value, "a single-chip tune: with --chips/--fleet only --map (a fleet programs one map on every chip)")
    if map_path is None:
        raise ConfigError("--map", None, "a conductance map with --chips/--fleet (a fleet programs one map on every chip)")
    for name, value in (("--out", out), ("--png", png), ("--resume", resume), ("--retention-s", retention_s)):
        if value is not None:
            detail = "a fleet job resumes a lost chip itself" if name == "--resume" else "each chip's cells: memprog db export --run RUN_ID"
            raise ConfigError(name, str(value), "a single-chip tune (not with --chips/--fleet)", detail)
    if trace:
        raise ConfigError("--trace", True, "a single-chip tune (not with --chips/--fleet)")


def tune_fleet(
    job: TuneJob, map_path: Path | None, db: str | None, engine: str, ray_address: str | None,
    chips: int | None, fleet: Path | None, force: bool, as_json: bool,
) -> NoReturn:
    """``tune --map`` on every chip of a fleet (:func:`memprog.cli.fleet_run.run_protocol_fleet`)."""
    assert job.m is not None

    def make_job() -> Any:
        # deferred: the fleet room imports the jobs (sqlalchemy, pandas)
        from memprog.fleet.protocol_job import tune_map_job

        return tune_map_job(job.m, job.origin, job.protocol, job.order, job.tolerance_rel, job.max_pulses,
                            job.settle_s, job.run_params(map_path, False))  # fmt: skip

    def precheck(cfg: Any) -> None:  # each chip's bench file, before anything opens
        tune_precheck(cfg, job, force)

    run_protocol_fleet(
        make_job, job.bench, db, engine, ray_address, chips, fleet, as_json, job.show,
        run_params={"protocol": f"array/{job.protocol}", "map": None if map_path is None else str(map_path),
                    "job": job.fingerprint},
        describe=tune_fleet_text, precheck=precheck,
    )  # fmt: skip


def tune_precheck(cfg: Any, job: TuneJob, force: bool) -> None:
    """What the bench file alone can refuse, before the run exists (memprog.bench.precheck);
    earlier outputs stay unless --force (issue 27)."""
    if job.m is not None:
        try:
            pc.check_map(cfg, job.m, job.origin)
        except ConfigError as exc:
            if exc.parameter != "target_map_us":
                raise
            # the entry named as a negative one is (memprog.jobs.weights): file[row,col]
            lo, hi = pc.target_range_us(cfg)
            r, c = np.argwhere((job.m < lo) | (job.m > hi))[0]
            raise ConfigError(f"{job.map_name or 'map'}[{r},{c}]", float(job.m[r, c]), exc.allowed) from exc
    else:
        pc.check_cells(cfg, job.r, job.c, ("--rows", "--cols"))
        pc.check_targets(cfg, job.t, "--target-us")
    refuse_existing(job.png, force, "--png")
    refuse_existing(job.out, force)


def tune_body(ctx: Any, job: TuneJob) -> Outcome:
    """The job on an open run (``ctx``: a :class:`memprog.cli.runs.RunContext`): open the
    bench, tune (a grid, or a map through the array job, resumed when asked), record every
    cell's final row, write the outputs, say what holds."""
    spec, m, resume, out, png, show = job.spec, job.m, job.resume, job.out, job.png, job.show
    tolerance_rel, max_pulses, settle_s = job.tolerance_rel, job.max_pulses, job.settle_s
    resume_info: list[Any] = []
    if out is not None:
        ctx.on_interrupt(lambda: _write_partial_csv(ctx, out))
    with ctx.open_bench(job.bench) as b:
        prog = b.programmer
        # the protocol's settings for this stack, with the flags it takes (registry)
        settings = spec.with_user(
            spec.defaults(prog.info, prog.limits),
            tolerance_rel=tolerance_rel, max_pulses=max_pulses, settle_s=settle_s,
        )  # fmt: skip
        eff_settle = resolve_settle_s(prog, settle_s)
        # the relative band the cells were judged against (None: the protocol's is absolute)
        band_rel = settings.tolerance_rel if "tolerance_rel" in spec.user_fields else None
        if m is not None:
            ap = ArrayParams(
                protocol=job.protocol, order=job.order, settle_s=settle_s,
                **({spec.name: settings} if spec.name in ArrayParams.model_fields else {}),
                **({"tolerance_rel": tolerance_rel} if tolerance_rel is not None else {}),
                **({"max_pulses": max_pulses} if spec.caller_band and max_pulses else {}),
            )
            band_rel = ap.tolerance_rel  # a map's cells are judged against the job's band
            kept = None
            if resume:
                # resume reads before it trusts: every kept cell is read again, and
                # those now outside the job's band are tuned with the unfinished ones
                # deferred: memprog.jobs pulls in the store (sqlalchemy, pandas)
                from memprog.jobs.resume_reads import reread_kept

                kept, reread = reread_kept(
                    prog, ctx.store.resume_result(resume), ap.tolerance_rel,
                    ap.tolerance_min_us, int(np.isfinite(m).sum()), ctx.sink, keep_unaccepted=False,
                )  # fmt: skip
                resume_info.append(reread)
            res = program_array(
                prog,
                m,
                ap,
                origin=job.origin,
                resume=kept if kept is not None and len(kept) else None,
                sink=ctx.sink,
                progress=show,
            )
        else:
            res = spec.tuner(prog, settings).tune(job.r, job.c, job.t, sink=ctx.sink, progress=show)
        retention = (
            None
            if job.delays is None
            else retention_check(
                prog, res.rows, res.cols, res.target_us, res.tolerance_us, job.delays,
                whole_array=len(res) > 0.5 * prog.info.rows * prog.info.cols,
                converged=res.converged,
            )
        )  # fmt: skip
        bench_time = b.bench_time_s
        technology = prog.info.technology
        chip_id = b.config.chip.id
    ctx.sink.record_results(res)  # the final (re-verified) row of every cell
    if out is not None:
        res.to_frame().to_csv(out, index=False)
    summary = res.summary()
    summary.update(
        {
            "bench": job.bench,
            "technology": technology,
            "wall_s": time.perf_counter() - job.t0,
            "bench_time_s": bench_time,
            "tolerance_rel": band_rel,
        }
    )
    if resume is not None:
        summary["resumed_from"] = resume
        if resume_info:
            summary["resume"] = resume_info[0].summary(resume)
    if out is not None:
        summary["csv"] = str(out)
    summary["settle_s"] = eff_settle
    if retention is not None:
        summary["retention"] = retention
    if png is not None:
        _plot_tune(res, technology, png, ctx.run_id, chip_id)
        summary["png"] = str(png)
    human = (
        f"{technology}, {res.protocol}: {summary['converged']} of {summary['cells']} cells converged, "
        f"{summary['within_tolerance']} within tolerance ({_band(summary)}); {summary['pulses_mean']:.1f} pulses per cell "
        f"(max {summary['pulses_max']}); flags (what happened on the way; a cell may carry several) {', '.join(f'{k} {v}' for k, v in (summary['flags'] or {}).items()) or 'none'}\n"
        f"max error of converged cells {_us(summary.get('max_abs_error_converged_us'))}; "
        f"wall {summary['wall_s']:.2f} s, simulated bench time {bench_time:.3f} s"
        + (f"; plot: {png}" if png is not None else "")
        + (f"; cells: {out}" if out is not None else "")
    )
    if retention is not None:
        human += "".join(
            f"\nafter {d['delay_s']:g} s: {d['within']} of {d['cells']} cells "
            f"({100 * d['fraction_within']:.2f} %; "
            f"{100 * d['fraction_within_converged']:.2f} % of the converged) within tolerance, "
            f"max |error| {d['max_abs_error_us']:.3f} µS"
            for d in retention
        )
    if resume_info:
        human += "\n" + resume_info[0].text(resume)
    # one outcome (memprog.reporting.outcome): the counts and the exit decision
    oc = result_outcome(res)
    summary["outcome"] = oc
    human += (
        f"\nresult: {describe(oc)}; {'holds' if oc['ok'] else 'FAILED'} "
        f"(exit {oc['exit_code']}: {oc['rule']})"
    )
    return Outcome(summary, human, failed_cells=oc["failed"])


def _band(summary: dict[str, Any]) -> str:
    """The tolerance the cells were judged against, for the human text: ``±1 % of target,
    3-15 µS`` (a relative band with its floor), ``±0.4 µS`` (an absolute one)."""
    lo, hi, rel = summary.get("tolerance_us_min"), summary.get("tolerance_us_max"), summary.get("tolerance_rel")
    us = "n/a" if lo is None else f"{lo:.3g} µS" if lo == hi else f"{lo:.3g}-{hi:.3g} µS"
    return f"±{100 * rel:g} % of target, {us}" if rel is not None else f"±{us}"


def _us(x: float | None) -> str:
    """A conductance for the human text; "n/a" rather than "nan" when there is none."""
    return "n/a" if x is None or x != x else f"{x:.3f} µS"


def map_digest(m: np.ndarray) -> str:
    """SHA-256 of a map's shape and values (NaN-aware), to recognise the same map again."""
    a = np.ascontiguousarray(np.asarray(m, dtype=np.float64))
    h = hashlib.sha256(repr(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def check_resumable(store: Any, run_id: str, job: dict[str, Any] | None, bench: str) -> dict:
    """The run to resume, or a ConfigError saying why it cannot be resumed.

    The rules every resumable command shares are :func:`memprog.cli.runs.check_resumable_run`;
    ``tune --map`` adds one: the same map, origin, order and protocol."""

    def same_map(run: dict[str, Any]) -> None:
        old = (run.get("params") or {}).get("job") or {}
        for key in ("map_sha256", "map_shape", "origin", "order", "protocol"):
            if job is not None and old.get(key) != job.get(key):
                what = "map" if key == "map_sha256" else key
                raise ConfigError(
                    "--resume",
                    run_id,
                    "the same map, origin, order and protocol as the interrupted run",
                    f"the {what} differs ({old.get(key)} in the run, {job.get(key)} now)"
                    if key != "map_sha256"
                    else "a different map (its contents differ)",
                )

    return check_resumable_run(
        store, run_id, kind="array", what="a `memprog tune --map` run", bench=bench, same_job=same_map
    )


def _write_partial_csv(ctx: Any, out: Path) -> str | None:
    """On interruption: the finished cells from the store to ``out``."""
    ctx.sink.flush()
    df = ctx.store.cells(ctx.run_id)
    df.drop(columns=[c for c in ("seq",) if c in df]).to_csv(out, index=False)
    return f"{len(df)} cells in {out}"


def _plot_tune(res: Any, technology: str, out: Path, run_id: str | None = None, chip: str | None = None) -> None:
    """Target, final and relative-error maps over the bounding box of the tuned cells.

    Percentile colour limits (memprog.reporting.figures): a stuck cell at 10 µS among 500 µS targets
    saturates (and is painted in the stuck colour) instead of stretching the scale.
    """
    plt = pyplot()
    r0, c0 = int(res.rows.min()), int(res.cols.min())
    shape = (int(res.rows.max()) - r0 + 1, int(res.cols.max()) - c0 + 1)
    target = np.full(shape, np.nan)
    final = np.full(shape, np.nan)
    target[res.rows - r0, res.cols - c0] = res.target_us
    final[res.rows - r0, res.cols - c0] = res.final_us
    err_pct = 100.0 * (final - target) / target
    extent = (c0 - 0.5, c0 + shape[1] - 0.5, r0 + shape[0] - 0.5, r0 - 0.5)
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.0), constrained_layout=True)
    ok = ~res.has_flag(FLAG_STUCK)
    lo, hi, note = robust_limits(np.concatenate([res.target_us, res.final_us[ok]]))
    beyond = int(((res.final_us < lo) | (res.final_us > hi)).sum())
    heat_map(fig, axes[0], target, extent, (lo, hi, note), "viridis", "target conductance (µS)")
    fin_note = note.split(";")[0] + (f"; {beyond} beyond (saturated)" if beyond else "")
    heat_map(fig, axes[1], final, extent, (lo, hi, fin_note), "viridis", "final read (µS)")
    rel = 100.0 * (res.final_us - res.target_us) / res.target_us
    e_lo, e_hi, _ = robust_limits(rel[ok], symmetric=True)
    n_beyond = int((np.abs(rel) > e_hi).sum())
    e_note = "±99th percentile of working cells" + (
        f"; {n_beyond} beyond (saturated)" if n_beyond else ""
    )
    heat_map(fig, axes[2], err_pct, extent, (e_lo, e_hi, e_note), ERROR_CMAP, "error (% of target)")
    axes[0].set_title("target")
    axes[1].set_title("final read (stuck and failed cells painted)")
    axes[2].set_title("(final − target) / target (stuck and failed cells painted)")
    for ax in axes[1:]:
        paint_flags(ax, extent, (r0, c0), shape, res.rows, res.cols, res.flags)
    for ax in axes:
        array_axes(ax)
    fig.suptitle(
        f"{run_title('tune', run_id, chip, technology)}, {res.protocol}: "
        f"{int(res.converged.sum())}/{len(res)} cells converged",
        fontsize=10,
    )
    fig.savefig(out, dpi=100)
    plt.close(fig)


__all__ = ["register", "parse_indices", "parse_values", "load_map"]
