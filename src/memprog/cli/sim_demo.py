"""``memprog sim demo``: the simulated chip at work, drawn."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from memprog.bench.assembly import open_bench
from memprog.cli import options as O
from memprog.cli.common import BenchOpt, JsonOpt, emit, fail
from memprog.cli.outputs import ForceOpt, refuse_existing
from memprog.core.errors import ConfigError, MemprogError
from memprog.reporting.figures import pyplot, run_title


def register(sim_app: typer.Typer) -> None:
    """Add ``sim demo`` to the ``sim`` group."""
    sim_app.command("demo")(sim_demo)


def sim_demo(
    bench: BenchOpt = "sim_onchip",
    cells: Annotated[int, typer.Option(callback=O.int_in(1, 64), help="Cells of row 0 to program.")] = 8,
    pulses: Annotated[int, typer.Option(callback=O.int_in(1, 500), help="SET pulses, then as many RESET pulses.")] = 40,
    set_v: Annotated[float, typer.Option(callback=O.float_in(0.0, O.MAX_ABS_V, "V", lo_open=True, why="SET pulses are positive"), help="SET pulse amplitude (V).")] = 1.15,
    reset_v: Annotated[float, typer.Option(callback=O.float_in(-O.MAX_ABS_V, 0.0, "V", hi_open=True, why="RESET pulses are negative"), help="RESET pulse amplitude (V, negative).")] = -1.25,
    width_s: Annotated[float, typer.Option(callback=O.WIDTH_S, help="Pulse width (s).")] = 200e-9,
    out: Annotated[Path, typer.Option(callback=O.out_file(), help="PNG to draw (an existing file is refused without --force).")] = Path("memprog_demo.png"),
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Show the simulated chip at work: identical pulses move conductances, nonlinearly.

    Programs ``cells`` cells of row 0 with ``pulses`` identical SET pulses then as many
    RESET pulses through the bench's own driver stack, reads after every pulse, prints
    the conductances and draws the potentiation/depression curves.
    """
    t0 = time.perf_counter()
    try:
        if reset_v >= 0:  # labready: a RESET pulse is negative; a positive one would SET
            raise ConfigError("--reset-v", reset_v, "< 0 V (RESET pulses are negative)")
        if set_v <= 0:
            raise ConfigError("--set-v", set_v, "> 0 V (SET pulses are positive)")
        refuse_existing(out, force)  # an earlier figure stays unless --force (issue 27)
        with open_bench(bench) as b:
            prog = b.programmer
            n = min(cells, prog.info.cols)
            rows = np.zeros(n, dtype=int)
            cols = np.arange(n)
            trace = np.empty((2 * pulses + 1, n))
            trace[0] = prog.read(rows, cols)
            for k in range(2 * pulses):
                amp = set_v if k < pulses else reset_v
                prog.pulse(rows, cols, amp, width_s)
                trace[k + 1] = prog.read(rows, cols)
            bench_time = b.bench_time_s
            technology = prog.info.technology
            chip_id = b.config.chip.id
    except MemprogError as exc:
        raise fail(exc) from exc
    _plot_demo(trace, pulses, technology, out, set_v, reset_v, width_s, chip_id)
    summary = {
        "bench": bench,
        "technology": technology,
        "cells": n,
        "pulses_per_cell": 2 * pulses,
        "initial_us": trace[0],
        "after_set_us": trace[pulses],
        "after_reset_us": trace[-1],
        "png": str(out),
        "wall_s": time.perf_counter() - t0,
        "bench_time_s": bench_time,
    }
    lines = [f"{technology}: {pulses} SET pulses of {set_v} V then {pulses} RESET pulses of {reset_v} V"]
    lines.append(" cell   start µS   after SET µS   after RESET µS")
    for i in range(n):
        lines.append(f"  {i:3d}  {trace[0, i]:9.1f}  {trace[pulses, i]:13.1f}  {trace[-1, i]:15.1f}")
    lines.append(f"plot: {out}   wall {summary['wall_s']:.2f} s   simulated bench time {bench_time * 1e3:.2f} ms")
    emit(summary, as_json, "\n".join(lines))


def _plot_demo(
    trace: np.ndarray, pulses: int, technology: str, out: Path,
    set_v: float = float("nan"), reset_v: float = float("nan"), width_s: float = float("nan"), chip: str | None = None,
) -> None:
    """Each cell's conductance after every pulse: the SET half, then the RESET half, with the
    pulse voltages written on each half and one legend entry per cell."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.6), constrained_layout=True)
    x = np.arange(trace.shape[0])
    for i in range(trace.shape[1]):
        ax.plot(x, trace[:, i], lw=1, label=f"cell (0, {i})")
    ax.axvline(pulses, color="k", ls=":", lw=0.8)
    ax.axvspan(0, pulses, color="#e8f5e9", zorder=0)
    ax.axvspan(pulses, 2 * pulses, color="#fce4ec", zorder=0)
    width = f", {width_s * 1e9:g} ns" if np.isfinite(width_s) else ""
    ax.text(pulses / 2, 0.97, f"{pulses} SET pulses of {set_v:+g} V{width}", transform=ax.get_xaxis_transform(),
            ha="center", va="top", fontsize=8)
    ax.text(1.5 * pulses, 0.97, f"{pulses} RESET pulses of {reset_v:+g} V{width}",
            transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=8)
    ax.set_xlabel("pulses applied (SET, then RESET); read after each")
    ax.set_ylabel("read conductance (µS)")
    ax.set_title(f"{run_title('sim demo', None, chip, technology)}: identical pulses, nonlinear response",
                 fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, title="cell (row, col)", title_fontsize=7)
    fig.savefig(out, dpi=110)
    plt.close(fig)
