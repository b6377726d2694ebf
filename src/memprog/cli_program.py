"""``memprog program``: trained weights in, a programmed chip running the network out.

Thin over :mod:`memprog.jobs.program`: load and validate the file (before the bench is
opened), open the bench and the run store, place, program, settle, verify, run the test
set on the chip, write the report. The run id goes to stderr as soon as the run starts;
``--resume RUN_ID`` continues an interrupted run without pulsing a finished cell again.

Exit codes (the project's): 0 done, 1 cells failed (a working cell the protocol gave up
on that its twin could not make up for — known and found stuck cells are the chip's, they
are reported and compensated, not failures — or a chip accuracy more than
``--max-accuracy-drop`` below software), 2 bad input, 3 instrument error, 130/143/129
interrupted.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from memprog.cli_common import BenchOpt, JsonOpt, ProgressOpt, emit
from memprog.errors import ConfigError, MemprogError, SafetyError


def _progress(flag: bool | None) -> bool:
    return sys.stderr.isatty() if flag is None else flag


def _known_stuck(url: str | None, chip_id: str | None) -> dict[tuple[int, int], float]:
    """Stuck cells of this chip recorded by characterisation runs; {} when none are known."""
    try:
        from memprog.store import MissingDataError, VariabilityDB
    except ImportError:
        return {}
    try:
        df = VariabilityDB(url, chip_id=chip_id).stuck()
    except MissingDataError:
        return {}
    if df is None or len(df) == 0 or "row" not in df:
        return {}
    df = df.dropna(subset=["row", "col"])
    return {(int(r), int(c)): float(g) for r, c, g in zip(df["row"], df["col"], df["g_us"], strict=True)}


def program_command(
    weights: Path | None,
    bench: str,
    protocol: str = "alibart",
    db: str | None = None,
    test_set: Path | None = None,
    resume: str | None = None,
    example: str | None = None,
    out: Path = Path("memprog_program"),
    copies: int | None = None,
    settle_s: float = 1.0,
    max_accuracy_drop: float = 0.03,
    progress: bool = False,
    store_runs: bool = True,
    chunk_cells: int | None = None,
    g_min_us: float | None = None,
    g_max_us: float | None = None,
    order: str = "row-major",
) -> tuple[dict[str, Any], int]:
    """The whole command as a function: (summary, exit code). Raises MemprogError on bad input."""
    from memprog import open_bench
    from memprog.jobs.placement import Placement
    from memprog.jobs.program import (
        ProgramParams,
        file_sha256,
        make_plan,
        run_program,
        write_report,
    )
    from memprog.jobs.weights import Network, load_program_input, load_test_set

    t0 = time.perf_counter()
    if example is not None:
        from memprog.examples import example as example_files

        w, t = example_files(example)
        weights = weights or w
        test_set = test_set or t
    if weights is None:
        raise ConfigError("WEIGHTS", None, "a weight file or conductance map, or --example digits")
    if protocol not in ("alibart", "feedforward", "denoise"):
        raise ConfigError("protocol", protocol, "alibart, feedforward or denoise")
    source = load_program_input(weights)
    data = None
    if test_set is not None:
        if not isinstance(source, Network):
            raise ConfigError("--test-set", str(test_set), "only with a network (not a conductance map)")
        data = load_test_set(test_set, source.sizes[0])
    params = ProgramParams(
        protocol=protocol, copies=copies, settle_s=settle_s, g_min_us=g_min_us, g_max_us=g_max_us,
        order=order,
    )
    if chunk_cells is not None:
        params = ProgramParams(**{**params.model_dump(), "chunk_cells": chunk_cells})
    sha = file_sha256(weights)

    store = None
    if store_runs:
        try:
            from memprog.store import open_store
        except ImportError:  # pragma: no cover - the store ships with memprog
            open_store = None  # type: ignore[assignment]
        if open_store is not None:
            store = open_store(db)
    done = placement = None
    if resume is not None:
        if store is None:
            raise ConfigError("--resume", resume, "a run in the store (the store is off)")
        prev = store.get_run(resume)
        pp = prev.get("params") or {}
        if prev.get("kind") != "program":
            raise ConfigError("--resume", resume, "a 'program' run", f"it is a {prev.get('kind')!r} run")
        if prev.get("status") == "complete":
            raise ConfigError("--resume", resume, "an unfinished run", "it is complete")
        from memprog.store.core import run_alive_here

        if run_alive_here(prev):
            raise ConfigError("--resume", resume, "an interrupted run", f"it is still running (pid {prev.get('pid')})")
        if pp.get("weights_sha256") != sha:
            raise ConfigError("--resume", resume, "the same weight file", "the file's content differs")
        protocol = pp.get("protocol", protocol)
        params = ProgramParams(**{**params.model_dump(), **pp.get("program_params", {})})
        if pp.get("plan", {}).get("placement"):
            placement = Placement.from_dict(pp["plan"]["placement"])
        try:
            done = store.resume_result(resume)
        except ConfigError:
            done = None  # nothing finished yet: start over on the same plan

    try:
        with open_bench(bench) as b:
            prog = b.programmer
            chip_id = getattr(getattr(b, "config", None), "chip", None)
            chip_id = getattr(chip_id, "id", None)
            technology = prog.info.technology
            stuck = _known_stuck(store.url if store is not None else None, chip_id) if store else {}
            plan = make_plan(source, prog, params, stuck, placement)
            run_params = {
                "weights": str(weights),
                "weights_sha256": sha,
                "test_set": None if test_set is None else str(test_set),
                "protocol": protocol,
                "program_params": params.model_dump(),
                "plan": plan.to_params(),
                "known_stuck": len(stuck),
            }
            if store is not None:
                from memprog.signals import handle_signals
                from memprog.store import stored_run

                with (
                    handle_signals(),
                    stored_run(
                        store,
                        kind="program",
                        bench=str(bench),
                        bench_path=str(getattr(b, "path", "")) or None,
                        chip_id=chip_id,
                        technology=technology,
                        protocol=protocol,
                        params=run_params,
                        cells_total=plan.n,
                        resumed_from=resume,
                    ) as run,
                ):
                    report = run_program(
                        b, source, params, data, sink=run.sink, run_id=run.run_id,
                        known_stuck=stuck, done=done, placement=plan.placement, progress=progress,
                    )
                    run.summary = _jsonable(report.summary())
            else:
                report = run_program(
                    b, source, params, data, known_stuck=stuck, placement=plan.placement, progress=progress
                )
    finally:
        if store is not None:
            store.close()
    files = write_report(report, out, technology)
    summary = report.summary()
    summary.update(
        {
            "bench": str(bench),
            "technology": technology,
            "weights": str(weights),
            "test_set": None if test_set is None else str(test_set),
            "protocol": protocol,
            "resumed_from": resume,
            "report": files,
            "wall_s": time.perf_counter() - t0,
            "job_wall_s": report.wall_s,
        }
    )
    r = report.result
    from memprog.protocols.results import FLAG_STUCK

    failed = int((~r.converged & ~r.has_flag(FLAG_STUCK) & ~r.within_tolerance).sum())
    summary["cells_failed"] = failed
    code = 0
    if report.chip_accuracy is not None and report.software_accuracy is not None:
        if report.chip_accuracy < report.software_accuracy - max_accuracy_drop:
            code = 1
    elif failed:
        code = 1
    return summary, code


def _exit_code(exc: MemprogError) -> int:
    """2 for bad input (refused before or without harm), 3 for the instrument or the store."""
    try:
        from memprog.store import StoreError
    except ImportError:  # pragma: no cover - the store ships with memprog
        StoreError = ()  # type: ignore[assignment,misc]  # noqa: N806
    if isinstance(exc, ConfigError | SafetyError) and not isinstance(exc, StoreError):
        return 2
    return 3


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    import json

    from memprog.cli_common import jsonable

    return json.loads(json.dumps(d, default=jsonable))


def human_summary(s: dict[str, Any]) -> str:
    """A few lines a person reads after README command 1."""
    lines = []
    head = f"memprog program: {s['weights']} on {s['bench']} ({s['technology']}), {s['protocol']}"
    if s.get("run_id"):
        head += f", run {s['run_id']}"
    lines.append(head)
    lines.append(
        f"  cells: {s['cells_within_tolerance']} of {s['cells_total']} within tolerance, "
        f"{s['cells_stuck']} stuck (compensated by their twin where possible), "
        f"{s['copies'] or 1} cell(s) per conductance"
    )
    for layer in s["layers"]:
        if "pair_error_rms_us" in layer:
            lines.append(
                f"  layer {layer['layer']} {layer['shape'][0]}x{layer['shape'][1]}: weight (pair) error rms "
                f"{layer['pair_error_rms_live_us']:.2f} µS over the weights with a working cell, "
                f"{layer['pair_error_rms_us']:.2f} µS over all ({layer['weights_dead']} with every copy of "
                f"a conductance stuck); {layer['cells_stuck']} stuck cells"
            )
    if s.get("software_accuracy") is not None:
        lines.append(
            f"  accuracy on {s['test_set']}: software {100 * s['software_accuracy']:.1f} %, "
            f"chip {100 * s['chip_accuracy']:.1f} % ({s['inference']})"
        )
    bt = s.get("bench_time_s")
    lines.append(
        f"  wall {s['wall_s']:.1f} s, simulated bench time "
        f"{'n/a' if bt is None else f'{bt:.2f} s'}; settle: {s['settle']}; "
        f"report: {s['report']['report_json']}"
    )
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add ``program`` to the ``memprog`` app."""

    @app.command("program")
    def program_cmd(
        weights: Annotated[
            Path | None,
            typer.Argument(help="Weights (.pt/.pth, .npz, .safetensors) or a conductance map (.csv/.npy, µS)."),
        ] = None,
        bench: BenchOpt = "sim_onchip",
        protocol: Annotated[str, typer.Option("--protocol", help="alibart | feedforward | denoise")] = "alibart",
        db: Annotated[str | None, typer.Option("--db", help="Run store URL (default: $MEMPROG_DB or the user's SQLite file).")] = None,
        test_set: Annotated[Path | None, typer.Option("--test-set", help="Labelled test set (.npz x/y, or .csv label last).")] = None,
        resume: Annotated[str | None, typer.Option("--resume", help="Continue an interrupted program run.")] = None,
        example: Annotated[str | None, typer.Option("--example", help="A shipped example: digits (weights + test set).")] = None,
        out: Annotated[Path, typer.Option("--out", help="Report folder (report.json, cells.csv, layer PNGs).")] = Path("memprog_program"),
        copies: Annotated[int | None, typer.Option("--copies", min=1, max=2, help="Cells per conductance (default: 2 where it fits).")] = None,
        settle_s: Annotated[float, typer.Option("--settle-s", min=0.0, help="Bench time to let pass before the final verification.")] = 1.0,
        max_accuracy_drop: Annotated[float, typer.Option("--max-accuracy-drop", min=0.0, max=1.0, help="Exit 1 when chip accuracy is lower than software by more.")] = 0.03,
        chunk_cells: Annotated[int | None, typer.Option("--chunk-cells", min=2, help="Cells per resumable chunk (default 16384).")] = None,
        g_min_us: Annotated[float | None, typer.Option("--g-min-us", help="Weight mapping low end (default: the file's, else the chip's).")] = None,
        g_max_us: Annotated[float | None, typer.Option("--g-max-us", help="Weight mapping high end.")] = None,
        order: Annotated[str, typer.Option("--order", help="row-major | column-major | snake | high-first | low-first")] = "row-major",
        progress: ProgressOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Program a trained network (or a conductance map) onto the chip, verify it, run it.

        Places the layers as differential pairs (two cells per conductance where the array
        has room, so a stuck cell's twin makes up for it), programs and re-verifies every
        cell with the chosen protocol, lets the chip settle, reads every cell again, and
        with --test-set compares software and chip accuracy (VMM on the on-chip bench).
        """
        from memprog.signals import exit_code_for_signal, interrupt_signum

        try:
            summary, code = program_command(
                weights, bench, protocol, db, test_set, resume, example, out, copies,
                settle_s, max_accuracy_drop, _progress(progress), chunk_cells=chunk_cells,
                g_min_us=g_min_us, g_max_us=g_max_us, order=order,
            )
        except MemprogError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(_exit_code(exc)) from exc
        except BaseException as exc:
            signum = interrupt_signum(exc)
            if signum is None:
                raise
            typer.echo("memprog: interrupted; finished cells are stored, resume with --resume RUN_ID", err=True)
            raise typer.Exit(exit_code_for_signal(signum)) from None
        emit(summary, as_json, human_summary(summary))
        if code:
            raise typer.Exit(code)


def evaluate_on_bench(
    weights: Path,
    bench: str,
    transfers: int,
    variability: Any,
    test_set: tuple[Any, Any],
    *,
    mc_transfers: int = 1000,
    seed: int = 0,
    png: Path | None = None,
    as_json: bool = False,
    progress: bool = False,
) -> None:
    """``memprog evaluate W.pt --on-bench B --transfers K``: K programmed chips vs the MC prediction.

    Called by ``memprog evaluate`` (cli_train.py) once it has the variability model and the
    held-out set; prints the summary (one JSON document with ``--json``).
    """
    from memprog.jobs.evaluate import compare_with_prediction

    out = compare_with_prediction(
        weights, bench, transfers, variability, test_set,
        mc_transfers=mc_transfers, first_seed=seed + 1, png=png, progress=progress,
    )
    pr = out["predicted"]
    meas = ", ".join(f"{100 * a:.1f}" for a in out["measured_accuracies"])
    human = (
        f"{weights} on {transfers} fresh simulated chips of {bench} (one pair per weight):\n"
        f"  measured chip accuracy (%): {meas}; mean {100 * out['measured_mean']:.1f}\n"
        f"  predicted ({pr['source']}, {pr['mc_transfers']} MC transfers): mean {100 * pr['mean']:.1f} %, "
        f"5-95 % band {100 * pr['p5']:.1f}-{100 * pr['p95']:.1f} %; software {100 * out['software_accuracy']:.1f} %\n"
        f"  measured mean inside the predicted band: {'yes' if out['measured_mean_in_predicted_5_95'] else 'no'}"
        + (f"; plot: {png}" if png is not None else "")
    )
    emit(out, as_json, human)


def evaluate_on_bench_command(
    weights: Path, bench: str, transfers: int, db: str | None, preset: str,
    chip_id: str | None, seed: int, png: Path | None, as_json: bool,
) -> None:
    """The ``--on-bench`` branch of ``memprog evaluate`` (options as that command parsed them)."""
    try:
        from memprog.cli_train import load_variability
        from memprog.hwaware.mapping import load_weights
        from memprog.hwaware.training import held_out_set

        var = load_variability(db, preset, chip_id)
        x, y = held_out_set(load_weights(weights))
        evaluate_on_bench(
            weights, bench, transfers, var, (x, y), seed=seed, png=png, as_json=as_json,
            progress=sys.stderr.isatty() and not as_json,
        )
    except MemprogError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(_exit_code(exc)) from exc


__all__ = ["register", "program_command", "human_summary", "evaluate_on_bench", "evaluate_on_bench_command"]
