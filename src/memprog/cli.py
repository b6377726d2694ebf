"""The ``memprog`` command line.

Every command prints a human summary by default and exactly one JSON document with
``--json`` (nothing else on stdout; progress bars go to stderr), so lab scripts can call it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from memprog.cli_common import BenchOpt, JsonOpt, emit, fail
from memprog.errors import ConfigError, MemprogError

app = typer.Typer(help="Program memristor chips to precise conductances.", no_args_is_help=True)
sim_app = typer.Typer(help="The simulated bench.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback behind an error (also MEMPROG_DEBUG=1).")
    ] = False,
) -> None:
    """Program memristor chips to precise conductances."""
    from memprog import cli_common

    cli_common.set_debug(debug)

@app.command()
def version(as_json: JsonOpt = False) -> None:
    """Show the memprog version."""
    from memprog import __version__

    emit({"version": __version__}, as_json, f"memprog {__version__}")


@sim_app.command("demo")
def sim_demo(
    bench: BenchOpt = "sim_onchip",
    cells: Annotated[int, typer.Option(min=1, max=64, help="Cells of row 0 to program.")] = 8,
    pulses: Annotated[int, typer.Option(min=1, max=500, help="SET pulses, then as many RESET pulses.")] = 40,
    set_v: Annotated[float, typer.Option(help="SET pulse amplitude (V).")] = 1.15,
    reset_v: Annotated[float, typer.Option(help="RESET pulse amplitude (V, negative).")] = -1.25,
    width_s: Annotated[float, typer.Option(help="Pulse width (s).")] = 200e-9,
    out: Annotated[Path, typer.Option(help="PNG to draw.")] = Path("memprog_demo.png"),
    as_json: JsonOpt = False,
) -> None:
    """Show the simulated chip at work: identical pulses move conductances, nonlinearly.

    Programs ``cells`` cells of row 0 with ``pulses`` identical SET pulses then as many
    RESET pulses through the bench's own driver stack, reads after every pulse, prints
    the conductances and draws the potentiation/depression curves.
    """
    from memprog import open_bench

    t0 = time.perf_counter()
    try:
        if reset_v >= 0:  # labready: a RESET pulse is negative; a positive one would SET
            raise ConfigError("--reset-v", reset_v, "< 0 V (RESET pulses are negative)")
        if set_v <= 0:
            raise ConfigError("--set-v", set_v, "> 0 V (SET pulses are positive)")
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
    except MemprogError as exc:
        raise fail(exc) from exc
    _plot_demo(trace, pulses, technology, out)
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


def _plot_demo(trace: np.ndarray, pulses: int, technology: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(trace, lw=1)
    ax.axvline(pulses, color="k", ls=":", lw=0.8)
    ax.set_xlabel("pulse number (SET, then RESET)")
    ax.set_ylabel("read conductance (µS)")
    ax.set_title(f"memprog simulated {technology}: identical pulses")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def _register_subcommands() -> None:
    from memprog import cli_tuning

    cli_tuning.register(app)
    from memprog import cli_sim  # labready: memprog sim serve

    cli_sim.register(sim_app)
    __import__("memprog.cli_db").cli_db.register(app)
    __import__("memprog.cli_insitu", fromlist=["register"]).register(app)
    __import__("memprog.cli_train", fromlist=["register"]).register(app)  # train, evaluate
    __import__("importlib").import_module("memprog.cli_program").register(app)
    __import__("memprog.cli_dashboard").cli_dashboard.register(app)


_register_subcommands()


def main() -> None:
    """Entry point of the ``memprog`` script."""
    try:
        app()
    except MemprogError as exc:  # pragma: no cover - typer handles most
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
