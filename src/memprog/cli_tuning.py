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

from memprog.cli_common import BenchOpt, JsonOpt, ProgressOpt, fail
from memprog.cli_runs import DbOpt
from memprog.errors import ConfigError, MemprogError


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
    """A conductance map (µS) from ``.npy`` or ``.csv`` (comma-separated, NaN allowed)."""
    if not path.exists():
        raise ConfigError("map", str(path), "an existing .npy or .csv file")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".csv":
        # labready: one header row (column names) is skipped; anything else is refused clearly
        lines = path.read_text().splitlines()
        first = lines[0] if lines else ""
        skip = 0
        try:
            [float(v) for v in first.split(",") if v.strip()]
        except ValueError:
            skip = 1
        try:
            return np.loadtxt(path, delimiter=",", ndmin=2, skiprows=skip)
        except ValueError as exc:
            raise ConfigError(
                "map", str(path), "comma-separated numbers in µS (NaN to skip), at most one header row",
                " ".join(str(exc).split()),
            ) from None
    raise ConfigError("map", str(path), "a .npy or .csv file")


def _progress(flag: bool | None, as_json: bool) -> bool:
    if flag is not None:
        return flag
    return sys.stderr.isatty()


def register(app: typer.Typer) -> None:
    """Add ``levels`` and ``tune`` to the ``memprog`` app."""

    @app.command("levels")
    def levels_cmd(
        bench: BenchOpt = "sim_onchip",
        levels: Annotated[int, typer.Option("--levels", help="Number of levels.")] = 2048,
        start_us: Annotated[float, typer.Option("--start-us", help="First level (µS).")] = 50.0,
        step_us: Annotated[
            float, typer.Option("--step-us", help="Spacing of the levels (µS).")
        ] = 2.0,
        protocol: Annotated[
            str, typer.Option("--protocol", help="denoise | denoise-off | alibart | feedforward")
        ] = "denoise",
        row: Annotated[int, typer.Option("--row", help="Cell row.")] = 0,
        col: Annotated[int, typer.Option("--col", help="Cell column.")] = 0,
        tolerance_us: Annotated[
            float, typer.Option("--tolerance-us", help="Every verification read within this (µS).")
        ] = 1.0,
        verify_reads: Annotated[
            int, typer.Option("--verify-reads", help="Reads per level after programming.")
        ] = 5,
        out: Annotated[Path, typer.Option("--out", help="PNG of the ladder.")] = Path(
            "memprog_levels.png"
        ),
        progress: ProgressOpt = None,
        as_json: JsonOpt = False,
        db: DbOpt = None,
        settle_s: Annotated[
            float | None,
            typer.Option(
                "--settle-s",
                help="Bench time waited before each level's verification (default: the "
                "chip technology's; 0: none).",
            ),
        ] = None,
        criterion: Annotated[
            str,
            typer.Option(
                "--criterion",
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
        time; draws the ladder to --out. The run is stored (--db); exit 1 if a level's
        protocol did not converge.
        """
        from memprog.cli_runs import Outcome, run_command
        from memprog.protocols.ladder import ladder_levels, run_ladder

        t0 = time.perf_counter()
        try:
            lv = ladder_levels(start_us, step_us, levels)
        except MemprogError as exc:
            raise fail(exc) from exc

        def body(ctx: Any) -> Any:
            with ctx.open_bench(bench) as b:
                lo_us, hi_us = b.programmer.info.g_range_us  # say how many levels fit
                if lv[-1] > hi_us:
                    fit = int(np.floor((hi_us - start_us) / step_us)) + 1 if start_us <= hi_us else 0
                    raise ConfigError(
                        "--levels",
                        levels,
                        f"<= {fit} ({start_us:g} µS + {step_us:g} µS steps must stay within "
                        f"{lo_us:g}-{hi_us:g} µS on this chip)",
                    )
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
            _plot_ladder(res, technology, out)
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
            return Outcome(summary, human, failed_cells=int((~res.converged).sum()))

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
        )  # fmt: skip

    @app.command("tune")
    def tune_cmd(
        bench: BenchOpt = "sim_onchip",
        rows: Annotated[str | None, typer.Option("--rows", help="Rows: 3 | 0,2,5 | 0:8.")] = None,
        cols: Annotated[str | None, typer.Option("--cols", help="Columns, same forms.")] = None,
        target_us: Annotated[
            str | None, typer.Option("--target-us", help="One target, or one per cell (row-major).")
        ] = None,
        map_path: Annotated[
            Path | None, typer.Option("--map", help="Conductance map (.npy/.csv, µS, NaN = skip).")
        ] = None,
        origin: Annotated[
            str, typer.Option("--origin", help="Map's top-left cell: ROW,COL.")
        ] = "0,0",
        protocol: Annotated[
            str, typer.Option("--protocol", help="alibart | denoise | feedforward")
        ] = "alibart",
        order: Annotated[
            str,
            typer.Option(
                "--order", help="Map order: row-major | column-major | snake | high-first"
            ),
        ] = "row-major",
        tolerance_rel: Annotated[
            float | None, typer.Option("--tolerance-rel", help="Relative band (Alibart).")
        ] = None,
        max_pulses: Annotated[
            int | None, typer.Option("--max-pulses", help="Pulse budget per cell.")
        ] = None,
        out: Annotated[
            Path | None, typer.Option("--out", help="CSV of the per-cell results.")
        ] = None,
        png: Annotated[
            Path | None,
            typer.Option("--png", help="Draw target, final and error maps of the tuned cells."),
        ] = None,
        progress: ProgressOpt = None,
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
                help="Bench time waited before the final re-verify (once per batch; default: "
                "the chip technology's; 0: none).",
            ),
        ] = None,
        retention_s: Annotated[
            str | None,
            typer.Option(
                "--retention-s",
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
        cell converged, 1 when some did not, 2 on bad input, 3 on an instrument or storage
        error, 130/143/129 when interrupted (the finished cells are kept; --resume RUN_ID
        continues a --map job).
        """
        from memprog.cli_runs import Outcome, run_command
        from memprog.protocols.alibart import tune_alibart
        from memprog.protocols.array import ArrayParams, alibart_defaults, program_array
        from memprog.protocols.denoise import DenoiseParams, tune_denoise
        from memprog.protocols.feedforward import FeedforwardParams, tune_feedforward
        from memprog.protocols.settle import resolve_settle_s, retention_check

        t0 = time.perf_counter()
        show = _progress(progress, as_json)
        m = o = r = c = t = None
        try:
            if protocol not in ("alibart", "denoise", "feedforward"):
                raise ConfigError("protocol", protocol, "alibart, denoise or feedforward")
            if map_path is None and (rows is None or cols is None or target_us is None):
                raise ConfigError("--rows/--cols/--target-us", None, "all three, or --map")
            if resume is not None and map_path is None:
                raise ConfigError("--resume", resume, "only with --map (an array job)")
            if map_path is not None:
                m = load_map(map_path)
                o = parse_indices(origin, "origin")
                if o.size != 2:
                    raise ConfigError("origin", origin, "ROW,COL")
                if protocol == "feedforward":
                    raise ConfigError("protocol", protocol, "alibart or denoise for a --map")
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

        def check_resume(store: Any) -> None:
            if resume is not None:
                resume_from.append(check_resumable(store, resume, job, bench))

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
                    res = program_array(
                        prog,
                        m,
                        ArrayParams(protocol=protocol, order=order, alibart=ali, settle_s=settle_s),
                        origin=(int(o[0]), int(o[1])),  # type: ignore[index]
                        resume=ctx.store.resume_result(resume) if resume else None,
                        sink=ctx.sink,
                        progress=show,
                    )
                elif protocol == "alibart":
                    res = tune_alibart(prog, r, c, t, params=ali, sink=ctx.sink, progress=show)
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
            if out is not None:
                summary["csv"] = str(out)
            summary["settle_s"] = eff_settle
            if retention is not None:
                summary["retention"] = retention
            if png is not None:
                _plot_tune(res, technology, png)
                summary["png"] = str(png)
            human = (
                f"{technology}, {res.protocol}: {summary['converged']} of {summary['cells']} cells converged, "
                f"{summary['within_tolerance']} within tolerance; {summary['pulses_mean']:.1f} pulses per cell "
                f"(max {summary['pulses_max']}); flags {summary['flags'] or 'none'}\n"
                f"max error of converged cells {summary.get('max_abs_error_converged_us', float('nan')):.3f} µS; "
                f"wall {summary['wall_s']:.2f} s, simulated bench time {bench_time:.3f} s"
                + (f"; plot: {png}" if png is not None else "")
            )
            if retention is not None:
                human += "".join(
                    f"\nafter {d['delay_s']:g} s: {d['within']} of {d['cells']} cells "
                    f"({100 * d['fraction_within']:.2f} %; "
                    f"{100 * d['fraction_within_converged']:.2f} % of the converged) within tolerance, "
                    f"max |error| {d['max_abs_error_us']:.3f} µS"
                    for d in retention
                )
            return Outcome(summary, human, failed_cells=int((~res.converged).sum()))

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
            trace=trace,
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
    from memprog.bench_config import load_bench_config

    chip = load_bench_config(bench)[0].chip.id
    if run.get("chip_id") and run["chip_id"] != chip:
        raise ConfigError("--resume", run_id, f"a run on chip {chip}", f"it ran on chip {run['chip_id']}")
    return run


def _write_partial_csv(ctx: Any, out: Path) -> str | None:
    """On interruption: the finished cells from the store to ``out``."""
    ctx.sink.flush()
    df = ctx.store.cells(ctx.run_id)
    df.drop(columns=[c for c in ("seq",) if c in df]).to_csv(out, index=False)
    return f"{len(df)} cells in {out}"


def _plot_tune(res: Any, technology: str, out: Path) -> None:
    """Target, final and relative-error maps over the bounding box of the tuned cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r0, c0 = int(res.rows.min()), int(res.cols.min())
    shape = (int(res.rows.max()) - r0 + 1, int(res.cols.max()) - c0 + 1)
    target = np.full(shape, np.nan)
    final = np.full(shape, np.nan)
    target[res.rows - r0, res.cols - c0] = res.target_us
    final[res.rows - r0, res.cols - c0] = res.final_us
    err_pct = 100.0 * (final - target) / target
    lim = max(float(np.nanmax(np.abs(err_pct))) if np.isfinite(err_pct).any() else 1.0, 1e-3)
    extent = (c0 - 0.5, c0 + shape[1] - 0.5, r0 + shape[0] - 0.5, r0 - 0.5)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), constrained_layout=True)
    vmin, vmax = float(np.nanmin(target)), float(np.nanmax(target))
    for ax, data, title in ((axes[0], target, "target (µS)"), (axes[1], final, "final read (µS)")):
        im = ax.imshow(data, extent=extent, vmin=vmin, vmax=vmax, cmap="viridis")
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title(title)
    im = axes[2].imshow(err_pct, extent=extent, vmin=-lim, vmax=lim, cmap="coolwarm")
    fig.colorbar(im, ax=axes[2], shrink=0.8)
    bad = ~res.converged
    if bad.any():
        axes[2].plot(res.cols[bad], res.rows[bad], "kx", ms=4, label="not converged")
        axes[2].legend(loc="upper right", fontsize=7)
    axes[2].set_title("error (% of target)")
    for ax in axes:
        ax.set_xlabel("column")
        ax.set_ylabel("row")
    fig.suptitle(f"memprog tune, {technology}, {res.protocol}: {int(res.converged.sum())}/{len(res)} converged")
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _plot_ladder(res: Any, technology: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = np.arange(res.levels_us.size)
    fig, (ax1, ax2) = plt.subplots(
        2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax1.plot(k, res.verify_mean_us, ".", ms=1.5, label="verification reads (mean)")
    ax1.plot(k, res.levels_us, "-", lw=0.5, color="k", label="target")
    ax1.set_ylabel("conductance (µS)")
    ax1.set_title(f"memprog {technology}: {res.levels_us.size} levels, {res.protocol}")
    ax1.legend(loc="upper left", fontsize=8)
    ok = res.within
    ax2.plot(k[ok], res.verify_max_err_us[ok], ".", ms=1.5, color="tab:green")
    ax2.plot(k[~ok], res.verify_max_err_us[~ok], "x", ms=3, color="tab:red")
    ax2.axhline(res.tolerance_us, color="k", ls=":", lw=0.8)
    ax2.set_xlabel("level")
    ax2.set_ylabel("max |error| (µS)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


__all__ = ["register", "parse_indices", "parse_values", "load_map"]
