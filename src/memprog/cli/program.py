"""``memprog program``: trained weights in, a programmed chip running the network out.

Thin over :mod:`memprog.jobs.program`: load and validate the file (before the bench is
opened), open the bench and the run store, place, program, settle, verify, run the test
set on the chip, write the report. The run id goes to stderr as soon as the run starts;
``--resume RUN_ID`` continues an interrupted run: it first reads every cell the run kept,
re-tunes those now outside tolerance together with the unfinished ones, and says how many
(a run is resumed once). Runs on the shared run lifecycle (:mod:`memprog.cli.runs`):
input validated before any run exists, signals handled at every moment after.

Exit codes (the project's; the rule is :mod:`memprog.reporting.outcome`'s): 0 when the pair (both
copies together) of every live weight is within tolerance and, with a test set, the chip's
accuracy is at most ``--max-accuracy-drop`` below software; 1 otherwise (stuck cells are
the chip's: reported and compensated by their twin, not failures; a weight with every copy
of a conductance stuck is dead, reported, not failed); 2 bad input, 3 instrument error,
130/143/129 interrupted.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from memprog.bench import precheck as pc
from memprog.cli import options as O
from memprog.cli.common import BenchOpt, JsonOpt, ProgressOpt, fail, show_progress
from memprog.cli.fleet_run import (
    ChipsOpt,
    EngineOpt,
    FleetModeOpt,
    FleetOpt,
    RayAddressOpt,
    fleet_fail,
    fleet_requested,
    run_program_fleet,
)
from memprog.cli.outputs import ForceOpt, refuse_existing
from memprog.cli.runs import (
    Outcome,
    RunState,
    begin_run,
    check_resumable_run,
    run_body,
    run_command,
)
from memprog.core.errors import ConfigError, MemprogError
from memprog.core.signals import handle_signals
from memprog.examples import example as example_files
from memprog.hwaware.placement import Placement, place_network
from memprog.reporting.outcome import describe


def _known_stuck(url: str | None, chip_id: str | None) -> dict[tuple[int, int], float]:
    """Stuck cells of this chip recorded by characterisation runs; {} when none are known."""
    # deferred: sqlalchemy and pandas
    from memprog.store import MissingDataError, VariabilityDB

    try:
        df = VariabilityDB(url, chip_id=chip_id).stuck()
    except MissingDataError:
        return {}
    if df is None or len(df) == 0 or "row" not in df:
        return {}
    df = df.dropna(subset=["row", "col"])
    return {(int(r), int(c)): float(g) for r, c, g in zip(df["row"], df["col"], df["g_us"], strict=True)}


@dataclass
class ProgramInputs:
    """What ``program`` checked before any run exists: the file, the test set, the options."""

    weights: Path
    test_set: Path | None
    source: Any
    data: Any
    params: Any
    protocol: str
    sha: str
    out: Path
    provenance: dict[str, Any] | None = None  # the weights' source, hash, size, format (issue 28)
    test_set_provenance: dict[str, Any] | None = None

    @property
    def source_name(self) -> str:
        """What reports call the weights: the URL as given (credentials masked) or the path."""
        return str((self.provenance or {}).get("source") or self.weights)


def prepare_inputs(
    weights: Path | None,
    protocol: str,
    test_set: Path | None,
    example: str | None,
    out: Path,
    copies: int | None,
    settle_s: float | None,
    chunk_cells: int | None,
    g_min_us: float | None,
    g_max_us: float | None,
    order: str,
    max_accuracy_drop: float = 0.03,
    sha256: str | None = None,
    test_set_sha256: str | None = None,
    fetch_progress: bool = False,
    max_bytes: int | None = None,
) -> ProgramInputs:
    """Validate everything that needs neither the bench nor the store (ConfigError if not).

    Why first: bad input must be refused in one line before a run is created in the store
    or the bench is opened (issue 20: a ``failed`` run was created before the input was
    refused; issue 21: ``--out`` was checked after the work). Weights and test sets given
    by URL are fetched here too (issue 28), and a pinned hash that does not match is refused
    before anything else happens.
    """
    # deferred: memprog.jobs pulls in sqlalchemy, pandas
    from memprog.jobs.fetch import check_sha256, fetch_weights

    # deferred: sqlalchemy, pandas
    from memprog.jobs.program import ProgramParams

    # deferred: sqlalchemy, pandas
    from memprog.jobs.weights import Network, load_program_input, load_test_set

    if example is not None:
        w, t = example_files(example)
        weights = weights or w
        test_set = test_set or t
    if weights is None:
        raise ConfigError("WEIGHTS", None, "a weight file or conductance map, or --example digits")
    if protocol not in ("alibart", "feedforward", "denoise", "predictive"):
        raise ConfigError("protocol", protocol, "alibart, feedforward, denoise or predictive")
    check_sha256(sha256), check_sha256(test_set_sha256)  # a malformed pin: refused before any fetch
    _check_out_dir(out)
    cap = {} if max_bytes is None else {"max_bytes": max_bytes}
    fetched = fetch_weights(weights, sha256, progress=fetch_progress, **cap)
    source = load_program_input(fetched.path)
    data = None
    ts_prov = None
    if test_set is not None:
        ts = fetch_weights(test_set, test_set_sha256, progress=fetch_progress, what="test set", **cap)
        test_set, ts_prov = ts.path, ts.provenance()
        if not isinstance(source, Network):
            raise ConfigError("--test-set", str(test_set), "only with a network (not a conductance map)")
        data = load_test_set(test_set, source.sizes[0], max(source.sizes[-1], 2))  # 1 output: 2 classes
    try:
        params = ProgramParams(
            protocol=protocol, copies=copies, settle_s=settle_s, g_min_us=g_min_us, g_max_us=g_max_us,
            order=order, accuracy_tolerance=max_accuracy_drop,
            **({} if chunk_cells is None else {"chunk_cells": chunk_cells}),
        )
    except ValueError as exc:
        if isinstance(exc, MemprogError):
            raise
        raise ConfigError("program options", " ".join(str(exc).split())[:200], "see memprog program --help") from exc
    return ProgramInputs(
        fetched.path, test_set, source, data, params, protocol, fetched.sha256, out,
        fetched.provenance(), ts_prov,
    )


def _check_out_dir(out: Path) -> None:
    """``--out`` must be a folder that exists and is writable, or can be created."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", str(out), "a folder for the report", "it is a file")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError("--out", str(out), "a writable folder", f"{probe} cannot be written")


def check_program_resumable(store: Any, resume: str, inp: ProgramInputs, bench: str) -> dict[str, Any]:
    """The interrupted run's plan and finished cells, or a ConfigError saying why not.

    The rules every resumable command shares are :func:`memprog.cli.runs.check_resumable_run`;
    ``program`` adds one: the same weight file (by its SHA-256).
    Returns a dict: ``protocol``, ``params`` (its ProgramParams), ``placement`` (or None),
    ``done`` (its stored cells as a TuneResult, or None when it finished none).
    """

    # deferred: sqlalchemy, pandas
    from memprog.jobs.program import ProgramParams

    def same_weights(run: dict[str, Any]) -> None:
        if (run.get("params") or {}).get("weights_sha256") != inp.sha:
            raise ConfigError("--resume", resume, "the same weight file", "the file's content differs")

    prev = check_resumable_run(
        store, resume, kind="program", what="a 'program' run", bench=bench, same_job=same_weights
    )
    pp = prev.get("params") or {}
    params = ProgramParams(**{**inp.params.model_dump(), **pp.get("program_params", {})})
    plan = pp.get("plan") or {}
    placement = Placement.from_dict(plan["placement"]) if plan.get("placement") else None
    try:
        done = store.resume_result(resume)
    except ConfigError:
        done = None  # nothing finished yet: start over on the same plan
    return {"protocol": pp.get("protocol", inp.protocol), "params": params, "placement": placement, "done": done}


def _run_params(inp: ProgramInputs, protocol: str, params: Any, bench: str) -> dict[str, Any]:
    return {
        "weights": inp.source_name,
        "weights_sha256": inp.sha,
        "weights_source": inp.provenance,
        "test_set": None if inp.test_set is None else str(inp.test_set),
        "test_set_source": inp.test_set_provenance,
        "protocol": protocol,
        "program_params": params.model_dump(),
        "bench": bench,
    }


def program_body(
    ctx: Any,
    inp: ProgramInputs,
    bench: str,
    resumed: dict[str, Any] | None,
    resume: str | None,
    progress: bool,
    t0: float,
) -> Any:
    """The job on an open run (``ctx``: a :class:`memprog.cli.runs.RunContext`): open the
    bench, plan, record the plan in the run, program, report; returns an Outcome."""
    # deferred: sqlalchemy, pandas
    from memprog.jobs.program import make_plan, run_program, write_report

    protocol = resumed["protocol"] if resumed else inp.protocol
    params = resumed["params"] if resumed else inp.params
    placement = resumed["placement"] if resumed else None
    done = resumed["done"] if resumed else None
    store = ctx.store
    run_id = ctx.run_id
    if run_id is not None:
        ctx.resume_hint = f"--resume {run_id}"
    with ctx.open_bench(bench) as b:
        prog = b.programmer
        chip_id = getattr(getattr(getattr(b, "config", None), "chip", None), "id", None)
        technology = prog.info.technology
        stuck = _known_stuck(store.url, chip_id) if store is not None else {}
        plan = make_plan(inp.source, prog, params, stuck, placement)
        if run_id is not None:
            # the plan a resume must follow, recorded before the first pulse
            rp = _run_params(inp, protocol, params, bench)
            rp.update({"plan": plan.to_params(), "known_stuck": len(stuck)})
            store.update_run(run_id, params=rp, cells_total=plan.n)
        report = run_program(
            b, inp.source, params, inp.data, sink=ctx.sink if run_id is not None else None,
            run_id=run_id, known_stuck=stuck, done=done, placement=plan.placement, progress=progress,
        )
    # report.json and the console state the same quantities under the same names (issue 20)
    context = {
        "bench": str(bench),
        "technology": technology,
        "chip_id": chip_id,
        "weights": inp.source_name,
        "weights_sha256": inp.sha,
        "weights_source": inp.provenance,
        "test_set": None if inp.test_set is None else str(inp.test_set),
        "protocol": protocol,
        "resumed_from": resume,
        "job_wall_s": report.wall_s,
    }
    context["wall_s"] = time.perf_counter() - t0  # the whole command until the report
    if resume is not None and isinstance(report.extra.get("resume"), dict):
        report.extra["resume"]["resumed_from"] = resume  # report.json says what --json says
    files = write_report(report, inp.out, technology, context)
    summary = report.summary()
    summary.update(context)
    summary["report"] = files
    if resume is not None and not isinstance(summary.get("resume"), dict):
        # the interrupted run had finished no cell: nothing kept, every cell new
        summary["resume"] = {
            "resumed_from": resume, "cells_kept": 0, "cells_reread_out_of_tolerance": 0,
            "cells_retuned": 0, "cells_kept_within_tolerance": 0, "cells_kept_stuck": 0, "cells_new": plan.n,
            "cells_kept_twin_compensated": 0,
        }  # fmt: skip
    if isinstance(summary.get("resume"), dict):
        summary["resume"]["resumed_from"] = resume
    human = human_summary(summary)
    if isinstance(summary.get("resume"), dict):
        rs = summary["resume"]
        human += (
            f"\n  resumed run {resume}: {rs['cells_kept']} kept cells re-read, "
            f"{rs['cells_reread_out_of_tolerance']} outside tolerance and re-tuned"
            + (
                f", {rs['cells_kept_twin_compensated']} re-tuned to make up for a stuck twin"
                if rs.get("cells_kept_twin_compensated") else ""
            )
            + f"; {rs['cells_new']} cells new"
        )
    # the exit decision is the outcome's (memprog.reporting.outcome: one rule for every report)
    o = summary["outcome"]
    return Outcome(summary, human, failed_cells=int(o.get("failed") or 0), exit_code=int(o["exit_code"]))


def _before_start(inp: ProgramInputs, bench: str, resume: str | None, resumed: dict[str, Any]) -> Any:
    """The run's fields once the store is open: a resumed run's protocol and parameters
    (checked by :func:`check_program_resumable`, kept in ``resumed`` for the body)."""

    def before_start(store: Any) -> dict[str, Any]:
        if resume is not None:
            resumed.update(check_program_resumable(store, resume, inp, bench))
        protocol = resumed.get("protocol", inp.protocol)
        params = resumed.get("params", inp.params)
        return {"protocol": protocol, "params": _run_params(inp, protocol, params, bench)}

    return before_start


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
    settle_s: float | None = None,
    max_accuracy_drop: float = 0.03,
    progress: bool = False,
    store_runs: bool = True,
    chunk_cells: int | None = None,
    g_min_us: float | None = None,
    g_max_us: float | None = None,
    order: str = "row-major",
    sha256: str | None = None,
    test_set_sha256: str | None = None,
) -> tuple[dict[str, Any], int]:
    """The whole command as a library function (notebooks, benchmarks): (summary, exit code).

    Raises MemprogError on bad input (before any run is created), KeyboardInterrupt or
    :class:`memprog.core.signals.Interrupted` when interrupted (the run marked ``interrupted``,
    the bench made safe). The lifecycle is ``memprog program``'s
    (:func:`memprog.cli.runs.begin_run` and :func:`~memprog.cli.runs.run_body`), without the
    printing and the exit.
    """
    t0 = time.perf_counter()
    inp = prepare_inputs(
        weights, protocol, test_set, example, out, copies, settle_s, chunk_cells, g_min_us, g_max_us, order,
        max_accuracy_drop, sha256, test_set_sha256,
    )
    if resume is not None and not store_runs:
        raise ConfigError("--resume", resume, "a run in the store (the store is off)")
    resumed: dict[str, Any] = {}
    state = RunState()
    try:
        with handle_signals():
            fields = begin_run(
                state, db=db, bench=bench, before_start=_before_start(inp, bench, resume, resumed),
                precheck=lambda cfg: precheck_program(cfg, inp), stored=store_runs,
            )
            outcome = run_body(
                lambda ctx: program_body(ctx, inp, bench, resumed or None, resume, progress, t0),
                state, fields, kind="program", resumed_from=resume,
            )
    finally:
        state.close()
    return outcome.summary, outcome.code


def human_summary(s: dict[str, Any]) -> str:
    """A few lines a person reads after README command 1."""
    lines = []
    head = f"memprog program: {s['weights']} on {s['bench']} ({s['technology']}), {s['protocol']}"
    if s.get("run_id"):
        head += f", run {s['run_id']}"
    lines.append(head)
    o = s["outcome"]
    lines.append(
        f"  cells: {s['cells_within_tolerance']} of {s['cells_total']} within tolerance "
        f"({s['copies'] or 1} cell(s) per conductance); "
        + describe(o)
    )
    for layer in s["layers"]:
        if "pair_error_rms_us" in layer:
            lines.append(
                f"  layer {layer['layer']} {layer['shape'][0]}x{layer['shape'][1]}: weight (differential pair G+/G-) error rms "
                f"{layer['pair_error_rms_live_us']:.2f} µS over the weights with a working cell, "
                f"{layer['pair_error_rms_us']:.2f} µS over all ({layer['weights_dead']} with every copy of "
                f"a conductance stuck); {layer['cells_stuck']} stuck cells"
            )
    if s.get("software_accuracy") is not None:
        lines.append(
            f"  accuracy on {s['test_set']}: software {100 * s['software_accuracy']:.1f} %, "
            f"chip {100 * s['chip_accuracy']:.1f} % ({s['inference']})"
        )
    acc = o.get("accuracy")
    if acc is not None:
        lines.append(
            f"  accuracy drop {100 * acc['drop']:.1f} points (allowed {100 * acc['tolerance']:.1f})"
        )
    lines.append(
        f"  result: {'holds' if o['ok'] else 'FAILED'} (exit {o['exit_code']}: {o['rule']})"
    )
    bt = s.get("bench_time_s")
    lines.append(
        f"  wall {s['wall_s']:.1f} s (job {s['job_wall_s']:.1f} s), simulated bench time "
        f"{'n/a' if bt is None else f'{bt:.2f} s'}; settle: {s['settle']}; "
        f"report: {s['report']['report_json']}"
    )
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add ``program`` to the ``memprog`` app."""

    @app.command("program")
    def program_cmd(
        ctx: typer.Context,
        weights: Annotated[
            str | None,
            typer.Argument(
                help="Weights (.pt/.pth, .npz, .safetensors) or a conductance map (.csv/.npy, µS): "
                "a path, or a URL (https://, http://, file://) fetched into the user cache.",
                show_default=False,
            ),
        ] = None,
        bench: BenchOpt = "sim_onchip",
        protocol: Annotated[str, typer.Option("--protocol", callback=O.choice("alibart", "feedforward", "denoise", "predictive"), help="alibart | feedforward | denoise | predictive (learns each cell's response: a few pulses per cell)")] = "alibart",
        db: Annotated[str | None, typer.Option("--db", help="Run store URL (default: $MEMPROG_DB or the user's SQLite file).")] = None,
        test_set: Annotated[str | None, typer.Option("--test-set", help="Labelled test set (.npz x/y, or .csv label last): a path or a URL.")] = None,
        sha256: Annotated[str | None, typer.Option("--sha256", help="The weights' SHA-256 (64 hex digits): a different file is refused before anything is sent to the bench. Without it a URL's file is accepted with a warning and its hash recorded.")] = None,
        test_set_sha256: Annotated[str | None, typer.Option("--test-set-sha256", help="The test set's SHA-256 (64 hex digits).")] = None,
        job: Annotated[Path | None, typer.Option("--job", help="A job file (YAML: weights URL + sha256, bench, protocol, test set, tolerances) holding the whole job; see memprog.jobs.jobfile.")] = None,
        resume: Annotated[str | None, typer.Option("--resume", help="Continue an interrupted program run.")] = None,
        example: Annotated[str | None, typer.Option("--example", help="A shipped example: digits (weights + test set).")] = None,
        out: Annotated[Path, typer.Option("--out", callback=O.out_dir(), help="Report folder (report.json, cells.csv, one PNG per layer); one holding an earlier report is refused without --force.")] = Path("memprog_program"),
        force: ForceOpt = False,
        copies: Annotated[int | None, typer.Option("--copies", callback=O.int_in(1, 2), help="Cells per conductance (default: 2 where it fits).")] = None,
        settle_s: Annotated[float | None, typer.Option("--settle-s", callback=O.SETTLE_S, help="Bench time in seconds to let pass before the final verification (default: the chip technology's, 5 s for every shipped technology; 0: none).")] = None,
        max_accuracy_drop: Annotated[float, typer.Option("--max-accuracy-drop", callback=O.FRACTION, help="Exit 1 when chip accuracy is lower than software by more than this fraction (0.03 = 3 points).")] = 0.03,
        chunk_cells: Annotated[int | None, typer.Option("--chunk-cells", callback=O.int_in(2, O.MAX_CELLS), help="Cells per resumable chunk (default 16384).")] = None,
        g_min_us: Annotated[float | None, typer.Option("--g-min-us", callback=O.G_US, help="Weight mapping low end (default: the file's, else the chip's).")] = None,
        g_max_us: Annotated[float | None, typer.Option("--g-max-us", callback=O.G_US, help="Weight mapping high end (default: the file's, else the chip's).")] = None,
        order: Annotated[str, typer.Option("--order", callback=O.choice("row-major", "column-major", "snake", "high-first", "low-first"), help="row-major | column-major | snake | high-first | low-first")] = "row-major",
        engine: EngineOpt = "local",
        ray_address: RayAddressOpt = None,
        chips: ChipsOpt = None,
        fleet: FleetOpt = None,
        fleet_mode: FleetModeOpt = "auto",
        progress: ProgressOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Program a trained network (or a conductance map) onto the chip, verify it, run it.

        Places the layers as differential pairs (two cells per conductance where the array
        has room, so a stuck cell's twin makes up for it), programs and re-verifies every
        cell with the chosen protocol, lets the chip settle, reads every cell again, and
        with --test-set compares software and chip accuracy (VMM on the on-chip bench).
        --resume RUN_ID reads every cell the run kept, re-tunes those now outside
        tolerance with the unfinished ones, and says how many; a run is resumed once.
        --chips N / --fleet F.yaml program a fleet (--engine ray: one actor per chip, in
        parallel): a network too large for one array is tiled over the chips and run by
        their VMMs with the partial sums added; one that fits is programmed on every chip.
        """
        if job is not None:
            given = {
                name for name in ("weights", "example", "test_set", "sha256", "test_set_sha256", "bench",
                                  "protocol", "max_accuracy_drop", "copies", "settle_s", "order")
                # by name: typer may carry its own copy of click's ParameterSource enum
                if getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"
            }
            try:
                j = job_settings(job, given)
            except MemprogError as exc:
                raise fail(exc) from exc
            weights, sha256, bench, protocol = j.weights, j.sha256, j.bench, j.protocol
            test_set, test_set_sha256, max_accuracy_drop = j.test_set, j.test_set_sha256, j.accuracy_tolerance
            copies, settle_s, order = j.copies, j.settle_s, j.order
            max_bytes = j.max_bytes
        else:
            max_bytes = None
        if fleet_requested(engine, ray_address, chips, fleet, fleet_mode):
            program_fleet(
                weights, bench, protocol, db, test_set, resume, example, out, copies, settle_s, max_accuracy_drop,
                show_progress(progress), chunk_cells, g_min_us, g_max_us, order, as_json, sha256, test_set_sha256,
                force, max_bytes, engine, ray_address, chips, fleet, fleet_mode,
            )
        run_program_cli(
            weights, bench, protocol, db, test_set, resume, example, out, copies, settle_s,
            max_accuracy_drop, show_progress(progress), chunk_cells, g_min_us, g_max_us, order, as_json,
            sha256=sha256, test_set_sha256=test_set_sha256, force=force, max_bytes=max_bytes,
        )


def weights_of_run(db: str | None, run_id: str, test_set: str | None) -> tuple[str, str, str | None]:
    """``--resume RUN`` without WEIGHTS: the run's own weights, pinned by their stored hash.

    A URL whose credentials were masked when stored cannot be fetched again, but its file is
    in the cache under that hash (where it was fetched from); a local file must be where it was.
    """
    # deferred: sqlalchemy and pandas
    from memprog.store import open_store

    store = open_store(db, read_only=True)
    try:
        run = store.get_run(run_id)
    finally:
        store.close()
    pp = run.get("params") or {}
    if run.get("kind") != "program" or not pp.get("weights"):
        raise ConfigError("--resume", run_id, "a 'program' run", "give the weight file too")
    src = (pp.get("weights_source") or {}).get("path") or pp["weights"]
    return str(src), pp.get("weights_sha256"), test_set or pp.get("test_set")


def job_settings(path: Path, given: set[str]) -> Any:
    """The job file's settings; an option also given on the command line is refused.

    Why refuse rather than override: a job file is the record of what was programmed; a
    command line that silently changed part of it would make that record wrong.
    """
    # deferred: memprog.jobs pulls in sqlalchemy and pandas
    from memprog.jobs.jobfile import load_job

    job = load_job(path)
    if given:
        flags = sorted("WEIGHTS" if g == "weights" else "--" + g.replace("_", "-") for g in given)
        raise ConfigError(
            "--job", str(path), "the job file alone, or options without --job",
            f"{', '.join(flags)} also given on the command line; put it in the job file",
        )
    return job


def run_program_cli(
    weights: Path | None,
    bench: str,
    protocol: str,
    db: str | None,
    test_set: Path | None,
    resume: str | None,
    example: str | None,
    out: Path,
    copies: int | None,
    settle_s: float | None,
    max_accuracy_drop: float,
    progress: bool,
    chunk_cells: int | None,
    g_min_us: float | None,
    g_max_us: float | None,
    order: str,
    as_json: bool,
    sha256: str | None = None,
    test_set_sha256: str | None = None,
    force: bool = False,
    max_bytes: int | None = None,
) -> None:
    """``memprog program`` on the shared run lifecycle (:func:`memprog.cli.runs.run_command`).

    Why the shared lifecycle: signals are caught from before the run starts to the last
    line printed, so SIGTERM/SIGINT/SIGHUP at any moment after the bench opens leave the
    bench safe, the run ``interrupted`` with its finished cells, one stderr line naming the
    signal, the safe state and the run id, the ``--json`` document, and exit 130/143/129.
    Input is validated first (no run is created for bad input; a fetch that failed is the
    network's, exit 3).
    """
    t0 = time.perf_counter()
    got: dict[str, Any] = {}
    resumed: dict[str, Any] = {}

    def prepare() -> None:
        nonlocal weights, sha256, test_set
        if resume is not None and weights is None and example is None:
            weights, sha256, test_set = weights_of_run(db, resume, test_set)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got["inp"] = prepare_inputs(
                weights, protocol, test_set, example, out, copies, settle_s, chunk_cells, g_min_us,
                g_max_us, order, max_accuracy_drop, sha256, test_set_sha256, progress, max_bytes,
            )
        refuse_existing(out, force, "--out", report_dir=True)  # an earlier report stays (issue 27)
        for w in caught:  # e.g. weights fetched without a pin: one line, not a warning dump
            typer.echo(f"warning: {w.message}", err=True)

    run_command(
        lambda ctx: program_body(ctx, got["inp"], bench, resumed or None, resume, progress, t0),
        db=db,
        kind="program",
        bench=bench,
        as_json=as_json,
        resumed_from=resume,
        prepare=prepare,
        before_start=lambda store: _before_start(got["inp"], bench, resume, resumed)(store),
        precheck=lambda cfg: precheck_program(cfg, got["inp"]),
    )


def program_fleet(
    weights: Any, bench: str, protocol: str, db: str | None, test_set: Any, resume: str | None,
    example: str | None, out: Path, copies: int | None, settle_s: float | None, max_accuracy_drop: float,
    progress: bool, chunk_cells: int | None, g_min_us: float | None, g_max_us: float | None, order: str,
    as_json: bool, sha256: str | None, test_set_sha256: str | None, force: bool, max_bytes: int | None,
    engine: str, ray_address: str | None, chips: int | None, fleet: Path | None, fleet_mode: str,
) -> None:
    """``program`` on a fleet (:func:`memprog.cli.fleet_run.run_program_fleet`): the same
    inputs, checked the same way, before any bench opens."""
    try:
        if resume is not None:
            raise ConfigError("--resume", resume, "a single-chip run", "a fleet job resumes a lost chip itself")
        inp = prepare_inputs(
            weights, protocol, test_set, example, out, copies, settle_s, chunk_cells, g_min_us,
            g_max_us, order, max_accuracy_drop, sha256, test_set_sha256, progress, max_bytes,
        )
        refuse_existing(out, force, "--out", report_dir=True)
    except MemprogError as exc:
        fleet_fail(exc, as_json)
    run_program_fleet(inp, bench, db, engine, ray_address, chips, fleet, fleet_mode, as_json, progress)


def precheck_program(config: Any, inp: ProgramInputs) -> None:
    """What the bench file alone can refuse, before a run exists (:mod:`memprog.bench.precheck`):
    a map that does not fit the array or the chip's range, a network that cannot be placed
    on the array, a weight mapping outside the chip's range. Never stricter than the job:
    known stuck cells (which need the store) are left to the placement in the run."""

    # deferred: sqlalchemy, pandas
    from memprog.jobs.program_plan import _mapping

    # deferred: sqlalchemy, pandas
    from memprog.jobs.weights import ConductanceMap

    if isinstance(inp.source, ConductanceMap):
        pc.check_map(config, inp.source.map_us, (0, 0))
        return
    lo, hi = pc.target_range_us(config)
    _mapping(inp.source, inp.params, lo, hi, config.chip.technology)
    place_network(
        [m.shape for m in inp.source.chip_matrices()], (config.chip.rows, config.chip.cols),
        inp.params.copies, None,
    )


__all__ = [
    "register",
    "program_command",
    "run_program_cli",
    "prepare_inputs",
    "check_program_resumable",
    "program_body",
    "human_summary",
]
