"""``memprog levels`` and ``memprog tune``: the write-verify protocols from the command line.

Both open a bench file (simulated or lab), run a protocol through the bench's
CellProgrammer and print a human summary, or with ``--json`` exactly one JSON document on
stdout (progress bars and errors go to stderr). ``levels`` reproduces the level-ladder
figures (Rao 2023 Fig. 1g: 2,048 levels 2 µS apart; Diao 2025: 512 states); ``tune``
programs a set of cells, or a whole conductance map from a ``.npy``/``.csv`` file.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from memprog.cli import options as O
from memprog.cli.common import BenchOpt, JsonOpt, ProgressOpt, fail
from memprog.cli.outputs import ForceOpt, refuse_existing
from memprog.cli.runs import DbOpt
from memprog.core.errors import ConfigError, MemprogError


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
    from memprog.jobs.weights import load_conductance_map

    if not path.exists():
        raise ConfigError("map", str(path), "an existing .npy or .csv file")
    return load_conductance_map(path, "map")


def _progress(flag: bool | None, as_json: bool) -> bool:
    if flag is not None:
        return flag
    return sys.stderr.isatty()


def register(app: typer.Typer) -> None:
    """Add ``levels`` and ``tune`` to the ``memprog`` app."""

    @app.command("levels")
    def levels_cmd(
        bench: BenchOpt = "sim_onchip",
        levels: Annotated[int, typer.Option("--levels", callback=O.LEVELS, help="Number of levels.")] = 2048,
        start_us: Annotated[float, typer.Option("--start-us", callback=O.G_US, help="First level (µS).")] = 50.0,
        step_us: Annotated[
            float, typer.Option("--step-us", callback=O.G_US, help="Spacing of the levels (µS).")
        ] = 2.0,
        protocol: Annotated[
            str, typer.Option("--protocol", callback=O.choice("denoise", "denoise-off", "alibart", "feedforward"), help="denoise | denoise-off | alibart | feedforward")
        ] = "denoise",
        row: Annotated[int, typer.Option("--row", callback=O.ROW, help="Cell row.")] = 0,
        col: Annotated[int, typer.Option("--col", callback=O.ROW, help="Cell column.")] = 0,
        tolerance_us: Annotated[
            float, typer.Option("--tolerance-us", callback=O.TOLERANCE_US, help="Every verification read within this (µS).")
        ] = 1.0,
        verify_reads: Annotated[
            int, typer.Option("--verify-reads", callback=O.READS, help="Reads per level after programming.")
        ] = 5,
        out: Annotated[Path, typer.Option("--out", callback=O.out_file(), help="PNG of the ladder (an existing file is refused without --force).")] = Path(
            "memprog_levels.png"
        ),
        force: ForceOpt = False,
        progress: ProgressOpt = None,
        as_json: JsonOpt = False,
        db: DbOpt = None,
        settle_s: Annotated[
            float | None,
            typer.Option(
                "--settle-s",
                callback=O.SETTLE_S,
                help="Bench time waited before each level's verification (default: the "
                "chip technology's; 0: none).",
            ),
        ] = None,
        criterion: Annotated[
            str,
            typer.Option(
                "--criterion",
                callback=O.choice("every-read", "mean"),
                help="every-read: every verification read within the tolerance (Rao); "
                "mean: the verification mean within it, reads added where noise needs them.",
            ),
        ] = "every-read",
        trace: Annotated[
            bool,
            typer.Option(
                "--trace",
                help="Also store every pulse and read in the run (memprog db export --traces).",
            ),
        ] = False,
    ) -> None:
        """Program one cell through a ladder of equally spaced levels and verify each.

        Reports the levels attempted, the levels whose every verification read lies within
        --tolerance-us of the level, the largest error, the pulses, and the wall and bench
        time; draws the ladder to --out. The run is stored (--db); exit 0 when every level
        is within tolerance, 1 when one is not.
        """
        from memprog.cli.runs import Outcome, run_command
        from memprog.protocols.ladder import ladder_levels, run_ladder
        from memprog.reporting.outcome import ladder_outcome

        t0 = time.perf_counter()
        try:
            lv = ladder_levels(start_us, step_us, levels)
        except MemprogError as exc:
            raise fail(exc) from exc

        def precheck(cfg: Any) -> None:  # before the run exists (memprog.bench.precheck)
            from memprog.bench import precheck as pc

            pc.check_cells(cfg, np.array([row]), np.array([col]), ("--row", "--col"))
            _check_levels_fit(levels, start_us, step_us, lv, *pc.target_range_us(cfg))
            pc.check_targets(cfg, lv)
            refuse_existing(out, force)  # an earlier ladder stays unless --force (issue 27)

        def body(ctx: Any) -> Any:
            with ctx.open_bench(bench) as b:
                _check_levels_fit(levels, start_us, step_us, lv, *b.programmer.info.g_range_us)
                res = run_ladder(
                    b.programmer,
                    row,
                    col,
                    lv,
                    protocol=protocol,
                    verify_reads=verify_reads,
                    tolerance_us=tolerance_us,
                    sink=ctx.sink,
                    progress=_progress(progress, as_json),
                    settle_s=settle_s,
                    criterion=criterion,
                )
                bench_time = b.bench_time_s
                technology = b.programmer.info.technology
                chip_id = b.config.chip.id
            _plot_ladder(res, technology, out, ctx.run_id, chip_id)
            summary = res.summary()
            summary.update(
                {
                    "bench": bench,
                    "technology": technology,
                    "png": str(out),
                    "wall_s": time.perf_counter() - t0,
                    "bench_time_s": bench_time,
                    "protocol_wall_s": res.wall_s,
                    "protocol_bench_time_s": res.bench_time_s,
                }
            )
            human = (
                f"{technology}, cell ({row},{col}), {protocol}: {summary['levels_within_tolerance']} of "
                f"{summary['levels_attempted']} levels ({lv[0]:g} to {lv[-1]:g} µS, {step_us:g} µS apart) "
                f"with every one of {verify_reads} verification reads within ±{tolerance_us:g} µS\n"
                f"max error {summary['max_error_us']:.3f} µS; {summary['pulses']} pulses "
                f"({summary['pulses_per_level']:.2f} per level, {summary['setup_pulses']} setup); "
                f"linearity R² {summary['linearity_r2']:.6f}\n"
                f"wall {summary['wall_s']:.2f} s, simulated bench time {bench_time:.3f} s; plot: {out}"
                f"\nfigures measured after a {summary['settle_s']:g} s settle per level "
                f"({summary['settle_retunes']} levels re-tuned after it)"
            )
            # one outcome (memprog.reporting.outcome): the counts and the exit decision
            oc = ladder_outcome(res)
            summary["outcome"] = oc
            human += (
                f"\nresult: {oc['working_within_tolerance']} of {oc['working']} levels within tolerance"
                f" ({'holds' if oc['ok'] else 'FAILED'}, exit {oc['exit_code']}: {oc['rule']})"
            )
            return Outcome(summary, human, failed_cells=oc["failed"])

        run_command(
            body,
            db=db,
            kind="levels",
            bench=bench,
            as_json=as_json,
            protocol=protocol,
            params={
                "levels": levels, "start_us": start_us, "step_us": step_us, "row": row,
                "col": col, "tolerance_us": tolerance_us, "verify_reads": verify_reads,
                "settle_s": settle_s, "criterion": criterion, "trace": trace,
            },
            cells_total=levels,
            trace=trace,
            precheck=precheck,
        )  # fmt: skip

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
    ) -> None:
        """Tune cells (the grid --rows x --cols) or a whole --map to their targets.

        The run is stored (--db; its id is printed to stderr at the start). Exit 0 when every
        working cell is within tolerance (stuck cells are reported, not failed), 1 when a
        working cell is not, 2 on bad input, 3 on an instrument or storage
        error, 130/143/129 when interrupted (the finished cells are kept; --resume RUN_ID
        continues a --map job).
        """
        from memprog.cli.runs import Outcome, run_command
        from memprog.protocols.alibart import tune_alibart
        from memprog.protocols.array import ArrayParams, alibart_defaults, program_array
        from memprog.protocols.denoise import DenoiseParams, tune_denoise
        from memprog.protocols.feedforward import FeedforwardParams, tune_feedforward
        from memprog.protocols.settle import resolve_settle_s, retention_check
        from memprog.reporting.outcome import describe, result_outcome

        t0 = time.perf_counter()
        show = _progress(progress, as_json)
        m = o = r = c = t = None
        try:
            if protocol not in ("alibart", "denoise", "feedforward", "predictive"):
                raise ConfigError("protocol", protocol, "alibart, denoise, feedforward or predictive")
            if map_path is None and (rows is None or cols is None or target_us is None):
                raise ConfigError("--rows/--cols/--target-us", None, "all three, or --map")
            if resume is not None and map_path is None:
                raise ConfigError("--resume", resume, "only with --map (an array job)")
            if protocol == "predictive":  # its own bounds, checked before any run exists
                from memprog.protocols.predictive import PredictiveParams

                PredictiveParams(**{k: v for k, v in {"max_pulses": max_pulses, "tolerance_rel": tolerance_rel,
                                                      "settle_s": settle_s}.items() if v is not None})
            if map_path is not None:
                m = load_map(map_path)
                o = parse_indices(origin, "origin")
                if o.size != 2:
                    raise ConfigError("origin", origin, "ROW,COL")
                if protocol == "feedforward":
                    raise ConfigError("protocol", protocol, "alibart, denoise or predictive for a --map")
            else:
                rr = parse_indices(rows, "rows")  # type: ignore[arg-type]
                cc = parse_indices(cols, "cols")  # type: ignore[arg-type]
                r, c = (a.ravel() for a in np.meshgrid(rr, cc, indexing="ij"))
                t = parse_values(target_us, "target_us")  # type: ignore[arg-type]
            delays = None if retention_s is None else list(parse_values(retention_s, "retention_s"))
        except MemprogError as exc:
            raise fail(exc) from exc
        job = None
        if m is not None:
            job = {
                "map_sha256": map_digest(m),
                "map_shape": list(m.shape),
                "origin": [int(o[0]), int(o[1])],  # type: ignore[index]
                "order": order,
                "protocol": protocol,
            }
        params: dict[str, Any] = {
            "protocol": protocol, "order": order, "tolerance_rel": tolerance_rel,
            "max_pulses": max_pulses, "map": None if map_path is None else str(map_path),
            "job": job, "pid": os.getpid(), "settle_s": settle_s, "retention_s": delays, "trace": trace,
        }  # fmt: skip
        resume_from: list[Any] = []
        resume_info: list[Any] = []

        def check_resume(store: Any) -> None:
            if resume is not None:
                resume_from.append(check_resumable(store, resume, job, bench))

        def precheck(cfg: Any) -> None:  # before the run exists (memprog.bench.precheck)
            from memprog.bench import precheck as pc

            if m is not None:
                pc.check_map(cfg, m, (int(o[0]), int(o[1])))  # type: ignore[index]
            else:
                pc.check_cells(cfg, r, c)
                pc.check_targets(cfg, t)
            refuse_existing(png, force, "--png")  # earlier outputs stay unless --force (issue 27)
            refuse_existing(out, force)

        def body(ctx: Any) -> Any:
            if out is not None:
                ctx.on_interrupt(lambda: _write_partial_csv(ctx, out))
            with ctx.open_bench(bench) as b:
                prog = b.programmer
                ali = alibart_defaults(prog.info, prog.limits)
                if settle_s is not None:
                    ali = ali.model_copy(update={"settle_s": settle_s})
                eff_settle = resolve_settle_s(prog, settle_s)
                upd: dict[str, Any] = {}
                if tolerance_rel is not None:
                    upd["tolerance_rel"] = tolerance_rel
                if max_pulses is not None:
                    upd["max_pulses"] = max_pulses
                if upd:
                    ali = type(ali)(**{**ali.model_dump(), **upd})
                if m is not None:
                    ap = ArrayParams(
                        protocol=protocol, order=order, alibart=ali, settle_s=settle_s,
                        **({"tolerance_rel": tolerance_rel} if tolerance_rel is not None else {}),
                        **({"max_pulses": max_pulses} if protocol == "predictive" and max_pulses else {}),
                    )
                    kept = None
                    if resume:
                        # resume reads before it trusts: every kept cell is read again, and
                        # those now outside the job's band are tuned with the unfinished ones
                        from memprog.jobs.resume_reads import reread_kept

                        kept, reread = reread_kept(
                            prog, ctx.store.resume_result(resume), ap.tolerance_rel,
                            ap.tolerance_min_us, int(np.isfinite(m).sum()), ctx.sink,
                        )  # fmt: skip
                        resume_info.append(reread)
                    res = program_array(
                        prog,
                        m,
                        ap,
                        origin=(int(o[0]), int(o[1])),  # type: ignore[index]
                        resume=kept if kept is not None and len(kept) else None,
                        sink=ctx.sink,
                        progress=show,
                    )
                elif protocol == "alibart":
                    res = tune_alibart(prog, r, c, t, params=ali, sink=ctx.sink, progress=show)
                elif protocol == "predictive":
                    from memprog.protocols.predictive import predictive_defaults, tune_predictive

                    res = tune_predictive(
                        prog, r, c, t, sink=ctx.sink, progress=show,
                        params=predictive_defaults(
                            prog.info, prog.limits, tolerance_rel=tolerance_rel, max_pulses=max_pulses,
                            settle_s=settle_s,
                        ),
                    )  # fmt: skip
                elif protocol == "denoise":
                    res = tune_denoise(
                        prog, r, c, t, sink=ctx.sink, progress=show,
                        params=_with_settle(DenoiseParams(), settle_s),
                    )  # fmt: skip
                else:
                    res = tune_feedforward(
                        prog, r, c, t, sink=ctx.sink, progress=show,
                        params=_with_settle(FeedforwardParams(), settle_s),
                    )  # fmt: skip
                retention = (
                    None
                    if delays is None
                    else retention_check(
                        prog, res.rows, res.cols, res.target_us, res.tolerance_us, delays,
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
                    "bench": bench,
                    "technology": technology,
                    "wall_s": time.perf_counter() - t0,
                    "bench_time_s": bench_time,
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
                f"{summary['within_tolerance']} within tolerance; {summary['pulses_mean']:.1f} pulses per cell "
                f"(max {summary['pulses_max']}); flags {', '.join(f'{k} {v}' for k, v in (summary['flags'] or {}).items()) or 'none'}\n"
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

        run_command(
            body,
            db=db,
            kind="array" if m is not None else "tune",
            bench=bench,
            as_json=as_json,
            protocol=f"array/{protocol}" if m is not None else protocol,
            params=params,
            cells_total=int(np.isfinite(m).sum()) if m is not None else int(r.size),  # type: ignore[union-attr]
            resumed_from=resume,
            before_start=check_resume,
            precheck=precheck,
            trace=trace,
        )


def _us(x: float | None) -> str:
    """A conductance for the human text; "n/a" rather than "nan" when there is none."""
    return "n/a" if x is None or x != x else f"{x:.3f} µS"


def _check_levels_fit(levels: int, start_us: float, step_us: float, lv: np.ndarray, lo_us: float, hi_us: float) -> None:
    """A ladder that leaves the chip's range is refused saying how many levels fit."""
    if lv[-1] > hi_us:
        fit = int(np.floor((hi_us - start_us) / step_us)) + 1 if start_us <= hi_us else 0
        raise ConfigError(
            "--levels",
            levels,
            f"<= {fit} ({start_us:g} µS + {step_us:g} µS steps must stay within "
            f"{lo_us:g}-{hi_us:g} µS on this chip)",
        )


def _with_settle(params: Any, settle_s: float | None) -> Any:
    """``params`` with its ``settle_s`` replaced when the user gave one."""
    return params if settle_s is None else params.model_copy(update={"settle_s": settle_s})


def map_digest(m: np.ndarray) -> str:
    """SHA-256 of a map's shape and values (NaN-aware), to recognise the same map again."""
    a = np.ascontiguousarray(np.asarray(m, dtype=np.float64))
    h = hashlib.sha256(repr(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def check_resumable(store: Any, run_id: str, job: dict[str, Any] | None, bench: str) -> dict:
    """The run to resume, or a ConfigError saying why it cannot be resumed."""
    run = store.get_run(run_id)  # unknown -> ConfigError naming the run
    if run["kind"] != "array":
        raise ConfigError("--resume", run_id, "a `memprog tune --map` run", f"it is a {run['kind']} run")
    if run["status"] == "complete":
        raise ConfigError("--resume", run_id, "an interrupted run", "it finished (status complete)")
    from memprog.store.core import run_alive_here

    if run_alive_here(run):
        pid = run.get("pid") or run["params"].get("pid")
        raise ConfigError("--resume", run_id, "an interrupted run", f"it is still running (pid {pid})")
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
    from memprog.core.bench_config import load_bench_config

    chip = load_bench_config(bench)[0].chip.id
    if run.get("chip_id") and run["chip_id"] != chip:
        raise ConfigError("--resume", run_id, f"a run on chip {chip}", f"it ran on chip {run['chip_id']}")
    from memprog.store.core import check_not_resumed

    check_not_resumed(store, run_id)  # a run is resumed once (naming the run that did)
    return run


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
    from memprog.reporting.figures import (
        array_axes,
        heat_map,
        paint_flags,
        pyplot,
        robust_limits,
        run_title,
    )
    from memprog.reporting.outcome import ERROR_CMAP, FLAG_STUCK

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


def _plot_ladder(res: Any, technology: str, out: Path, run_id: str | None = None, chip: str | None = None) -> None:
    """The ladder: each level's verified mean against its target, and each level's largest
    verification error against the tolerance (levels outside it in their own colour)."""
    from matplotlib.lines import Line2D

    from memprog.reporting.figures import pyplot, run_title
    from memprog.reporting.outcome import CATEGORY_COLOURS, NOT_CONVERGED, WITHIN

    plt = pyplot()
    k = np.arange(res.levels_us.size)
    fig, (ax1, ax2) = plt.subplots(
        2, 1, figsize=(8, 7), gridspec_kw={"height_ratios": [3, 1.3]}, constrained_layout=True
    )
    ok = np.asarray(res.within, dtype=bool)
    bad_colour, good_colour = CATEGORY_COLOURS[NOT_CONVERGED], CATEGORY_COLOURS[WITHIN]
    ax1.plot(k, res.levels_us, "-", lw=0.6, color="k", label="target level")
    ax1.plot(k[ok], res.verify_mean_us[ok], ".", ms=2, color=good_colour,
             label=f"verified mean, within ±{res.tolerance_us:g} µS ({int(ok.sum())})")
    ax1.plot(k[~ok], res.verify_mean_us[~ok], "x", ms=4, color=bad_colour,
             label=f"verified mean, outside ({int((~ok).sum())})")
    ax1.set_ylabel("conductance (µS)")
    ax1.set_xlabel("level number")
    ax1.set_title(
        f"{run_title('levels', run_id, chip, technology)}\n"
        f"{res.levels_us.size} levels, {res.protocol}: {int(ok.sum())} within ±{res.tolerance_us:g} µS",
        fontsize=10,
    )
    ax1.legend(loc="upper left", fontsize=8)
    ax2.plot(k[ok], res.verify_max_err_us[ok], ".", ms=2, color=good_colour)
    ax2.plot(k[~ok], res.verify_max_err_us[~ok], "x", ms=4, color=bad_colour)
    ax2.axhline(res.tolerance_us, color="k", ls=":", lw=0.8)
    ax2.legend(handles=[Line2D([], [], color="k", ls=":", lw=0.8, label=f"tolerance {res.tolerance_us:g} µS")],
               loc="upper left", fontsize=8)
    ax2.set_xlabel("level number")
    ax2.set_ylabel("largest |read − level| (µS)")
    fig.savefig(out, dpi=110)
    plt.close(fig)


__all__ = ["register", "parse_indices", "parse_values", "load_map"]
