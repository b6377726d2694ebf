"""``memprog levels``: one cell through a ladder of equally spaced levels, each verified.

Why a command of its own: the level ladder is how the literature states a chip's precision
(Rao 2023 Fig. 1g: 2,048 levels 2 µS apart; Diao 2025: 512 states), so ``levels``
reproduces that figure on any bench file (simulated or lab) through
:func:`memprog.protocols.ladder.run_ladder`, on the shared run lifecycle
(:func:`memprog.cli.runs.run_command`): a stored run, a PNG of the ladder, a human summary
or with ``--json`` exactly one JSON document, exit 0 when every level is within tolerance.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from memprog.bench import precheck as pc
from memprog.cli import options as O
from memprog.cli.common import BenchOpt, JsonOpt, ProgressOpt, fail, show_progress
from memprog.cli.outputs import ForceOpt, refuse_existing
from memprog.cli.runs import DbOpt, Outcome, run_command
from memprog.core.errors import ConfigError, MemprogError
from memprog.protocols.ladder import ladder_levels, run_ladder
from memprog.reporting.figures import pyplot, run_title
from memprog.reporting.outcome import CATEGORY_COLOURS, NOT_CONVERGED, WITHIN, ladder_outcome


def register(app: typer.Typer) -> None:
    """Add ``levels`` to the ``memprog`` app."""

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
        t0 = time.perf_counter()
        try:
            lv = ladder_levels(start_us, step_us, levels)
        except MemprogError as exc:
            raise fail(exc) from exc

        def precheck(cfg: Any) -> None:  # before the run exists (memprog.bench.precheck)
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
                    progress=show_progress(progress),
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


def _plot_ladder(res: Any, technology: str, out: Path, run_id: str | None = None, chip: str | None = None) -> None:
    """The ladder: each level's verified mean against its target, and each level's largest
    verification error against the tolerance (levels outside it in their own colour)."""
    # deferred: matplotlib (~0.3 s), only when a ladder is drawn
    from matplotlib.lines import Line2D

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


__all__ = ["register"]
