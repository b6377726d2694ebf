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
from memprog.protocols.settle_choice import BUDGET_FRACTION, RelaxFit, fit_relax_samples
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
        settle_from_db: Annotated[
            str | None,
            typer.Option(
                "--settle-from-db",
                help="Choose each level's settle from this chip's measured relaxation: the "
                "relax table of the latest `memprog characterize` run of the bench's chip in "
                "the store at this URL (protocols/settle_choice.py); not with --settle-s.",
            ),
        ] = None,
        validate_every: Annotated[
            int,
            typer.Option(
                "--validate-every", callback=O.int_in(0, 1_000_000),
                help="Every Nth level (and the last) waits the technology's settle more and "
                "is read again, never re-tuned: a check of a shortened settle (0: none).",
            ),
        ] = 0,
        final_wait_s: Annotated[
            float,
            typer.Option(
                "--final-wait-s", callback=O.float_in(0.0, O.MAX_RETENTION_S, "s"),
                help="After the ladder, wait this much more and read the last level again (0: no).",
            ),
        ] = 0.0,
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
            if settle_from_db is not None and settle_s is not None:
                raise ConfigError("--settle-s", settle_s, "not given with --settle-from-db (it chooses each level's settle)")
        except MemprogError as exc:
            raise fail(exc) from exc
        chosen: dict[str, Any] = {}

        def precheck(cfg: Any) -> None:  # before the run exists (memprog.bench.precheck)
            pc.check_cells(cfg, np.array([row]), np.array([col]), ("--row", "--col"))
            _check_levels_fit(levels, start_us, step_us, lv, *pc.target_range_us(cfg))
            pc.check_targets(cfg, lv)
            refuse_existing(out, force)  # an earlier ladder stays unless --force (issue 27)
            if settle_from_db is not None:  # a store without this chip's relax table: exit 2
                chosen.update(_relax_from_db(settle_from_db, cfg.chip.id, cfg.chip.technology, cfg.chip.twin_of))

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
                    settle_rule=_rule(chosen["fit"], tolerance_us) if chosen else None,
                    validate_every=validate_every,
                    final_wait_s=final_wait_s,
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
            if chosen:
                # each level waited its own settle (settle_wait_mean_s, _max_s, _total_s): no
                # one configured settle_s exists, and the mean under that name read as one
                summary["settle_s"] = None
                summary["settle_from"] = {
                    "db": chosen["db"], "run_id": chosen["run_id"], "chip_id": chosen["chip_id"],
                    **chosen["fit"].summary(),
                    "budget_us": BUDGET_FRACTION * tolerance_us,
                }  # fmt: skip
            human = (
                f"{technology}, cell ({row},{col}), {protocol}: {summary['levels_within_tolerance']} of "
                f"{summary['levels_attempted']} levels ({lv[0]:g} to {lv[-1]:g} µS, {step_us:g} µS apart) "
                f"with every one of {verify_reads} verification reads within ±{tolerance_us:g} µS\n"
                f"max error {summary['max_error_us']:.3f} µS; {summary['pulses']} pulses "
                f"({summary['pulses_per_level']:.2f} per level, {summary['setup_pulses']} setup); "
                f"linearity R² {summary['linearity_r2']:.6f}\n"
                f"wall {summary['wall_s']:.2f} s, simulated bench time {bench_time:.3f} s; plot: {out}"
                f"\nfigures measured after {_settle_words(summary, chip_id)} per level "
                f"({_count(summary['settle_retunes'], 'level')} re-tuned after it)"
            )
            if "validated_levels" in summary:
                human += (
                    f"\nvalidation: {summary['validated_within']} of {summary['validated_levels']} levels "
                    f"still within ±{tolerance_us:g} µS after {summary['validate_wait_s']:g} s more "
                    f"(max {summary['validated_max_error_us']:.3f} µS)"
                )
            if summary.get("final_check"):
                fc = summary["final_check"]
                human += f"\nlast level after {fc['wait_s']:g} s more: max error {fc['max_error_us']:.3f} µS"
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
                "settle_from_db": None if settle_from_db is None else _masked(settle_from_db),
                "validate_every": validate_every, "final_wait_s": final_wait_s,
            },
            cells_total=levels,
            trace=trace,
            precheck=precheck,
        )  # fmt: skip


def _relax_from_db(url: str, chip_id: str, technology: str, twin_of: str | None = None) -> dict[str, Any]:
    """The chip's measured relaxation, fitted: from its latest complete characterize run
    (one session of the chip, as the twin takes it), else from every run the store holds.
    Runs of the chip id under another technology are not this chip's (a bench file reused
    with its id unchanged): refused, named. A twin (``twin_of``) with no run of its own
    takes its chip's: the rehearsal chooses the settles the job on that chip would."""
    # deferred: sqlalchemy and pandas, only with --settle-from-db
    from memprog.store import VariabilityDB

    vdb = VariabilityDB(url, chip_id=chip_id)
    every = vdb.runs()
    if len(every) == 0 and twin_of is not None:
        own = _relax_from_db(url, twin_of, technology)
        return own | {"chip_id": twin_of}
    if len(every) == 0:
        raise ConfigError(
            "--settle-from-db", _masked(url), f"a store holding a characterize run of chip {chip_id} (its relax table)",
            f"it holds none: run memprog characterize on this bench with --db {_masked(url)} first",
        )  # fmt: skip
    techs = sorted({str(t) for t in every["technology"].dropna()})
    if technology not in techs:
        raise ConfigError(
            "--settle-from-db", _masked(url), f"characterize runs of chip {chip_id} as {technology} (the bench's chip)",
            f"its runs of {chip_id} are of {techs}: another chip under the same id",
        )  # fmt: skip
    vdb = VariabilityDB(url, chip_id=chip_id, technology=technology)
    runs = vdb.runs()
    done = runs[runs["status"] == "complete"] if len(runs) else runs
    run_id = str(done["run_id"].iloc[0]) if len(done) else None  # list_runs: newest first
    if run_id is not None:
        vdb = VariabilityDB(url, chip_id=chip_id, run_ids=[run_id])
    return {"fit": fit_relax_samples(vdb.raw("relax")), "run_id": run_id, "db": _masked(url), "chip_id": chip_id}


def _masked(url: str) -> str:
    """``url`` with its credentials masked, as every stored or printed URL."""
    # deferred: the store package opens sqlalchemy, only with --settle-from-db
    from memprog.store import mask_url

    return mask_url(url)


def _rule(fit: RelaxFit, tolerance_us: float) -> Any:
    """Each level's settle from its movement, to a remainder of a quarter of the tolerance."""
    budget = BUDGET_FRACTION * tolerance_us
    return lambda movement_us: float(fit.settle_for_movement(movement_us, budget))


def _count(n: int, noun: str) -> str:
    """``1 level``, ``2 levels``: the human text's counts read as English."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _settle_words(summary: dict[str, Any], chip_id: str | None = None) -> str:
    if summary.get("settle_rule"):
        src = summary.get("settle_from") or {}
        # a twin's ladder settles from its chip's table: say whose
        whose = f"chip {src['chip_id']}'s" if src.get("chip_id") not in (None, chip_id) else "the chip's"
        return (
            f"a settle from {whose} measured relaxation (mean {summary['settle_wait_mean_s']:.2f} s, "
            f"max {summary['settle_wait_max_s']:.2f} s, {summary['settle_wait_total_s']:.0f} s in all)"
        )
    return f"a {summary['settle_s']:g} s settle"


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
