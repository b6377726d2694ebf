"""The fleet options every chip command shares (``--engine``, ``--ray-address``, ``--chips``,
``--fleet``) and the fleet run of ``program``: many chips, one store, one report.

Why shared: ``program`` and ``evaluate --on-bench`` take the same options with the same
meaning, and a script must get the same errors and exit codes from either (bad input 2, an
unreachable cluster or a bench lost for good 3, a signal 130/143/129 with every bench left
safe). The default engine is ``local`` (in this process, no Ray needed), so the README's
commands are unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from memprog.cli import options as O
from memprog.cli.common import debug_enabled, emit, fail
from memprog.core.bench_config import load_bench_config
from memprog.core.errors import ConfigError, MemprogError
from memprog.core.signals import (
    exit_code_for_signal,
    handle_signals,
    interrupt_signum,
    signal_name,
    signals_deferred,
)
from memprog.reporting.outcome import exit_code_for_error

EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine", callback=O.choice("local", "ray"),
        help="local (this process, chips one after another; no Ray needed) | ray (one actor per chip, in parallel; needs Ray 2.60: memprog's fleet extra).",
    ),
]  # fmt: skip
RayAddressOpt = Annotated[
    str | None,
    typer.Option("--ray-address", help="An existing Ray cluster (HOST:PORT of its head); without it --engine ray starts one on this machine for the job, on 127.0.0.1 only."),
]
ChipsOpt = Annotated[
    int | None,
    typer.Option("--chips", callback=O.int_in(1, 1024), help="Program N simulated chips of the bench (ids <id>-seed<seed+k>): a network too large for one array is tiled over them, one that fits is programmed on each (a yield study). Default: one chip, no fleet."),
]
ChipsEachOpt = Annotated[
    int | None,
    typer.Option("--chips", callback=O.int_in(1, 1024), help="Run the command on N simulated chips of the bench (ids <id>-seed<seed+k>), one run per chip in the one store (default: the bench's one chip, no fleet)."),
]
FleetOpt = Annotated[
    Path | None,
    typer.Option("--fleet", help="A fleet file (YAML) listing real benches, each pinned to its host by a Ray resource or label (see memprog.fleet.chips)."),
]
FleetModeOpt = Annotated[
    str,
    typer.Option("--fleet-mode", callback=O.choice("auto", "tiled", "replicated"), help="auto (tiled when the network does not fit one array, else replicated) | tiled | replicated."),
]


def fleet_requested(engine: str, ray_address: str | None, chips: int | None, fleet: Path | None, mode: str = "auto") -> bool:
    """Whether the command runs as a fleet job (any fleet option given); a fleet option
    without its chips (``--chips N`` or ``--fleet F.yaml``) is refused: it would program a
    one-chip fleet on a chip other than the bench's."""
    if ray_address is not None and engine == "local":
        raise fail(ConfigError("--ray-address", ray_address, "only with --engine ray"))
    wanted = engine != "local" or ray_address is not None or mode != "auto"
    if wanted and chips is None and fleet is None:
        given = "--engine" if engine != "local" else "--ray-address" if ray_address is not None else "--fleet-mode"
        value = engine if given == "--engine" else ray_address if ray_address is not None else mode
        raise fail(ConfigError(given, value, "with --chips N or --fleet F.yaml (the chips of the fleet)"))
    return chips is not None or fleet is not None


def fleet_specs(bench: str, chips: int | None, fleet: Path | None, *, volatile: bool = False, first_seed: int | None = None) -> tuple[list[Any], tuple[int, int], str | None]:
    """The chips, their array shape and the fleet file's store URL (ConfigError if not usable)."""
    # deferred: the fleet room imports the jobs (sqlalchemy, pandas)
    from memprog.fleet.chips import load_fleet, simulated_chips

    if fleet is not None:
        if chips is not None:
            raise ConfigError("--chips", chips, "--chips or --fleet, not both", "a fleet file lists its benches")
        ff, specs = load_fleet(fleet)
        try:
            cfg, _ = load_bench_config(specs[0].bench)
            shape = (int(cfg.chip.rows), int(cfg.chip.cols))
        except ConfigError:
            shape = (256, 256)  # [choice] the on-chip controller's array; checked once the workers report
        return specs, shape, ff.store
    cfg, _ = load_bench_config(bench)
    specs = simulated_chips(bench, chips or 1, volatile=volatile, first_seed=first_seed)
    return specs, (int(cfg.chip.rows), int(cfg.chip.cols)), None


def fleet_fail(exc: BaseException, as_json: bool) -> NoReturn:
    """One line on stderr (and the ``--json`` error document); exit with the error's code."""
    signum = interrupt_signum(exc)
    if signum is not None:
        code = exit_code_for_signal(signum)
        msg = f"memprog: interrupted by {signal_name(signum)}; every bench of the fleet was closed and left safe"
    else:
        code = exit_code_for_error(exc)
        msg = f"error: {exc}"
        if debug_enabled():
            # deferred: traceback only for --debug
            import traceback

            typer.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
    if as_json:
        emit({"error": msg, "exit_code": code}, True, "")
    typer.echo(msg, err=True)
    raise typer.Exit(code)


def run_program_fleet(
    inp: Any, bench: str, db: str | None, engine: str, ray_address: str | None, chips: int | None,
    fleet: Path | None, mode: str, as_json: bool, progress: bool,
) -> NoReturn:
    """``memprog program`` on a fleet: every chip's run and the fleet run in one store, the
    report in ``--out`` (``fleet.json``, ``fleet.png``), the exit code of the outcome."""
    t0 = time.perf_counter()
    try:
        with handle_signals():
            from memprog.fleet.engines import (
                make_engine,  # deferred: the fleet room imports the jobs (sqlalchemy, pandas)
            )
            from memprog.fleet.job import run_fleet_program  # deferred: as above
            from memprog.fleet.report import human_fleet, write_fleet_report  # deferred: as above
            from memprog.jobs.weights import Network  # deferred: as above
            from memprog.store.engine import default_db_url  # deferred: the store loads sqlalchemy

            if not isinstance(inp.source, Network):
                raise ConfigError("WEIGHTS", str(inp.weights), "a network for a fleet job (a conductance map is one chip's)")
            specs, shape, fleet_db = fleet_specs(bench, chips, fleet)
            url = db or fleet_db or default_db_url()
            eng = make_engine(engine, ray_address)
            run_params = {"weights": inp.source_name, "weights_sha256": inp.sha, "bench": bench,
                          "protocol": inp.protocol, "test_set": None if inp.test_set is None else str(inp.test_set)}  # fmt: skip
            report = run_fleet_program(
                eng, specs, inp.source, inp.params, shape, test_set=inp.data, db=url, mode=mode,
                run_params=run_params, progress=progress,
            )
            context = {"bench": bench, "weights": inp.source_name, "weights_sha256": inp.sha, "command_wall_s": time.perf_counter() - t0}
            # the job is done and its runs complete: a signal now waits until the report is
            # written (the folder and the store agree), then exits 130
            with signals_deferred():
                files = write_fleet_report(report, Path(inp.out), context)
                summary = {**report.summary(), **context, "report": files}
                emit(summary, as_json, human_fleet(summary))
    except (KeyboardInterrupt, MemprogError) as exc:
        fleet_fail(exc, as_json)
    except BaseException as exc:
        if interrupt_signum(exc) is None:
            raise
        fleet_fail(exc, as_json)
    raise typer.Exit(int(summary["outcome"]["exit_code"]))


def run_protocol_fleet(
    make_job: Callable[[], Any], bench: str, db: str | None, engine: str, ray_address: str | None,
    chips: int | None, fleet: Path | None, as_json: bool, progress: bool, *,
    run_params: dict[str, Any], describe: Callable[[dict[str, Any]], str],
    summarize: Callable[..., dict[str, Any]] | None = None, precheck: Callable[[Any], None] | None = None,
) -> NoReturn:
    """One chip command (``characterize``, ``tune --map``) on every chip of a fleet
    (:func:`memprog.fleet.protocol_job.run_fleet_protocol`): each chip's run and the fleet run
    in one store; ``describe(summary)`` is the human text; the exit code of the worst chip.
    ``precheck(config)`` checks each chip's bench file before anything opens (a file that
    lives only on a worker's host is checked there by the worker)."""
    try:
        with handle_signals():
            from memprog.fleet.engines import (
                make_engine,  # deferred: the fleet room imports the jobs (sqlalchemy, pandas)
            )
            from memprog.fleet.protocol_job import run_fleet_protocol  # deferred: as above
            from memprog.store import mask_url  # deferred: the store loads sqlalchemy
            from memprog.store.engine import default_db_url  # deferred: as above

            specs, shape, fleet_db = fleet_specs(bench, chips, fleet)
            for spec in specs if precheck is not None else ():
                try:
                    cfg, _ = load_bench_config(spec.bench)
                except ConfigError:
                    continue  # a bench file on its host only: its worker checks it there
                precheck(cfg)
            eng = make_engine(engine, ray_address)
            url = db or fleet_db or default_db_url()
            report = run_fleet_protocol(
                eng, specs, make_job(), shape, db=url, run_params={**run_params, "bench": bench},
                summarize=summarize, progress=progress,
            )
    except (KeyboardInterrupt, MemprogError) as exc:
        fleet_fail(exc, as_json)
    except BaseException as exc:
        if interrupt_signum(exc) is None:
            raise
        fleet_fail(exc, as_json)
    summary = {**report.summary(), "bench": bench, "db": mask_url(url)}
    human = describe(summary)  # it may add the job's own totals (the yield view) to the summary
    emit(summary, as_json, human)
    raise typer.Exit(int(summary["outcome"]["exit_code"]))


def _lost_lines(summary: dict[str, Any], what: str) -> list[str]:
    lines = []
    for c in summary["chips"]:
        for old in c.get("runs_interrupted") or []:
            lines.append(f"{c['name']}: its worker was lost; run {old} marked interrupted, {what} in run {c['run_id']}")
        if c.get("restarts") and not c.get("runs_interrupted"):
            lines.append(f"{c['name']}: its worker was lost {c['restarts']} time(s); {what} in run {c['run_id']}")
    return lines


def characterize_fleet_text(summary: dict[str, Any]) -> str:
    """Per-chip lines and the yield view (stuck fraction and working range side by side);
    adds ``yield`` to ``summary``."""
    stuck, lo, hi = [], [], []
    lines = [
        f"characterize on {summary['n_chips']} chips (engine {summary['engine']['engine']}), "
        f"fleet run {summary['fleet_run_id']}, wall {summary['wall_s']:.1f} s",
        f"{'chip':8} {'chip id':28} {'run':12}  {'stuck HRS':>9} {'stuck LRS':>9}  imprecision levels µS (working range)",
    ]
    for c in summary["chips"]:
        sf, rg = c.get("stuck_fractions"), c.get("g_range_us")
        stuck.append(None if not sf else sf["hrs"] + sf["lrs"])
        lo.append(None if not rg else rg[0])
        hi.append(None if not rg else rg[1])
        s_txt = f"{100 * sf['hrs']:8.2f}% {100 * sf['lrs']:8.2f}%" if sf else f"{'n/a':>9} {'n/a':>9}"
        r_txt = f"{rg[0]:.1f}-{rg[1]:.1f}" if rg else "n/a"
        lines.append(f"{c['name']:8} {str(c['chip_id']):28} {str(c['run_id']):12}  {s_txt}  {r_txt}")
    summary["yield"] = {"stuck_fraction": stuck, "g_lo_us": lo, "g_hi_us": hi}
    have = [v for v in stuck if v is not None]
    if have:
        lines.append(f"across chips: stuck {100 * min(have):.2f}-{100 * max(have):.2f} % (mean {100 * sum(have) / len(have):.2f} %)"
                     + (f"; range low {min(v for v in lo if v is not None):.1f}-{max(v for v in lo if v is not None):.1f} µS, "
                        f"high {min(v for v in hi if v is not None):.1f}-{max(v for v in hi if v is not None):.1f} µS"
                        if any(v is not None for v in lo) else ""))  # fmt: skip
    lines += _lost_lines(summary, "the chip was characterised again from the start (one session per run: samples are never mixed)")
    lines.append("tables per chip: memprog db variability --chip-id ID; a twin: memprog sim calibrate --chip ID")
    return "\n".join(lines)


def tune_fleet_text(summary: dict[str, Any]) -> str:
    """Per-chip lines and the total over the chips; adds ``total`` to ``summary``."""
    chips = summary["chips"]
    total = {k: int(sum(int(c.get(k) or 0) for c in chips)) for k in ("cells", "within_tolerance", "converged", "pulses_total")}
    summary["total"] = total
    lines = [f"tune --map on {summary['n_chips']} chips (engine {summary['engine']['engine']}), "
             f"fleet run {summary['fleet_run_id']}, wall {summary['wall_s']:.1f} s"]  # fmt: skip
    for c in chips:
        flags = ", ".join(f"{k} {v}" for k, v in (c.get("flags") or {}).items()) or "none"
        lines.append(
            f"{c['name']:8} {str(c['chip_id']):28} run {c['run_id']}: {c['within_tolerance']} of {c['cells']} cells "
            f"within tolerance, {c['converged']} converged, {c['pulses_mean']:.1f} pulses per cell; flags {flags}"
        )
        if c.get("resume"):
            r = c["resume"]
            lines.append(f"{'':8} resumed after a lost worker: {r.get('cells_kept')} kept cells re-read, "
                         f"{r.get('cells_reread_out_of_tolerance')} outside tolerance re-tuned")  # fmt: skip
    lines += _lost_lines(summary, "its finished cells were read again and the run continued")
    oc = summary["outcome"]
    lines.append(
        f"total: {total['within_tolerance']} of {total['cells']} cells within tolerance, {total['pulses_total']} pulses; "
        f"{'holds' if oc['exit_code'] == 0 else 'FAILED'} (exit {oc['exit_code']}; {oc.get('chips_failed', 0)} chips failed)"
    )
    return "\n".join(lines)


__all__ = [
    "ChipsEachOpt", "ChipsOpt", "EngineOpt", "FleetModeOpt", "FleetOpt", "RayAddressOpt", "fleet_fail", "fleet_requested",
    "characterize_fleet_text", "fleet_specs", "run_program_fleet", "run_protocol_fleet", "tune_fleet_text",
]
