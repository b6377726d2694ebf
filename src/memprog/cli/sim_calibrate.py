"""``memprog sim calibrate``: fit a twin of a chip from its stored characterisation.

Registered on the ``sim`` group by :func:`register` (see :mod:`memprog.twin.calibrate`). Exit codes:
0 the twin written; 2 bad input (unknown chip, a fit that does not converge: nothing
written); 3 the store failed.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from memprog.bench.precheck import reachable_cells
from memprog.cli import options as O
from memprog.cli.common import JsonOpt, emit, fail
from memprog.cli.outputs import ForceOpt, refuse_existing
from memprog.cli.runs import DbOpt
from memprog.core.bench_config import load_bench_config
from memprog.core.errors import ConfigError, MemprogError


def tune_command(bench_file: Path) -> str:
    """A ``memprog tune`` on the written twin that runs as printed: a few cells its stack
    reaches and a target in the middle of the twin's fitted conductance range (inside the
    bench's safety limits).

    Why complete: the bare ``memprog tune --bench twin.yaml`` this used to suggest is refused
    (tune needs --rows, --cols and --target-us), so the first thing a user pasted failed.
    """
    cfg, _ = load_bench_config(bench_file)
    chip = cfg.chip
    p = chip.device_params()
    lo = max(float(p.g_min_us), float(chip.limits.conductance_min_us))
    hi = min(float(p.g_max_us), float(chip.limits.conductance_max_us))
    mid = 0.5 * (lo + hi)
    target = float(f"{mid:.2g}")  # a round number, unless rounding leaves the range
    if not lo < target < hi:
        target = float(f"{mid:.6g}")
    probed = reachable_cells(cfg)
    if probed:  # a probe station reaches its probed devices
        (r, c) = probed[0]
        rows, cols = str(r), str(c)
    else:
        rows, cols = f"0:{min(4, chip.rows)}", f"0:{min(4, chip.cols)}"
    return f"memprog tune --bench {shlex.quote(str(bench_file))} --rows {rows} --cols {cols} --target-us {target:g}"


def _human(doc: dict[str, Any]) -> str:
    lines = [f"twin of chip {doc['chip_id']} ({doc['technology']}) from runs {', '.join(doc['runs'])}"]
    lines.append(f"  {'field':28} {'fitted':>14} {'± std':>11} {'preset':>12}  measurement")
    for k, f in doc["fitted"].items():
        v, s, p = f["value"], f["std"], f["preset"]
        vs = f"{v[0]:.4g}-{v[1]:.4g}" if isinstance(v, (list, tuple)) else f"{v:.5g}"
        ps = f"{p[0]:.4g}-{p[1]:.4g}" if isinstance(p, (list, tuple)) else f"{p:.5g}"
        lines.append(f"  {k:28} {vs:>14} {'' if s is None else f'{s:.3g}':>11} {ps:>12}  {f['source']}")
    lines.append("kept at the preset:")
    for k, f in doc["kept_preset"].items():
        lines.append(f"  {k:28} {f['why']}")
    try_it = f"; try: {doc['tune_command']}" if doc.get("tune_command") else ""
    lines.append(f"wrote {doc['bench_file']} (chip {doc['twin_chip_id']}){try_it}")
    return "\n".join(lines)


def register(sim_app: typer.Typer) -> None:
    """Add ``calibrate`` to the ``memprog sim`` group."""

    @sim_app.command("calibrate")
    def calibrate_cmd(
        chip: Annotated[str, typer.Option("--chip", help="CHIP_ID whose characterize runs to fit.")],
        write_bench: Annotated[Path, typer.Option("--write-bench", callback=O.out_file(".yaml", ".yml"), help="The twin's bench file to write (.yaml).")],
        bench: Annotated[str | None, typer.Option("--bench", "-b", help="Template bench (its instruments; default: the technology's simulated bench).")] = None,
        seed: Annotated[int | None, typer.Option("--seed", callback=O.SEED, help="The twin's chip seed (default: derived from the chip id, unlike any fleet chip's).")] = None,
        run: Annotated[list[str] | None, typer.Option("--run", help="A characterize RUN_ID of CHIP to fit (repeat to pool several; default: the chip's latest complete one).")] = None,
        db: DbOpt = None,
        force: ForceOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Fit the simulator to CHIP's own stored measurements and write a simulated bench
        whose chip is that twin (docs/twin.md). Fields the data cannot determine keep the
        technology preset's value and are listed with the characterisation to run."""
        # deferred: the store pulls in sqlalchemy and pandas
        from memprog.store import StoreError, VariabilityDB, open_store

        # deferred: the twin fit reads the store (sqlalchemy, pandas)
        from memprog.twin.calibrate import (
            NotConverged,
            calibrate,
            chosen_runs,
            twin_bench,
            write_twin_bench,
        )

        try:
            refuse_existing(write_bench, force, "--write-bench")
        except MemprogError as exc:
            raise fail(exc) from exc
        try:
            store = open_store(db, read_only=True)
        except StoreError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(3) from exc
        except MemprogError as exc:
            raise fail(exc) from exc
        try:
            runs = chosen_runs(store, chip, run)
            res = calibrate(VariabilityDB(store=store, chip_id=chip, run_ids=runs), chip)
            data = twin_bench(res, bench, seed)
            listed = store.list_runs(kind="characterize", chip_id=chip)
            status = dict(zip(listed["run_id"].astype(str), listed["status"].astype(str), strict=True))
            incomplete = {r: status.get(r, "?") for r in res.runs if status.get(r) != "complete"}
        except NotConverged as exc:
            raise fail(ConfigError("fit", exc.what, f"a residual <= {exc.limit:.3g}", f"residual {exc.residual:.3g}; nothing written")) from exc
        except StoreError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(3) from exc
        except MemprogError as exc:
            raise fail(exc) from exc
        finally:
            store.close()
        try:
            write_twin_bench(data, write_bench)
        except OSError as exc:
            raise fail(ConfigError("--write-bench", str(write_bench), "a writable file", str(exc))) from exc
        except MemprogError as exc:
            raise fail(exc) from exc
        try:
            hint: str | None = tune_command(write_bench)  # read back: the bench file the user will open
        except (OSError, MemprogError):
            hint = None  # the twin is written: a hint that cannot be built is left out, not an error
        doc = res.to_doc()
        doc.update({"bench_file": str(write_bench), "twin_chip_id": data["chip"]["id"], "sim_params": data["chip"]["sim_params"],
                    "runs_incomplete": incomplete, "tune_command": hint})  # fmt: skip
        note = "".join(
            f"\nnote: run {r} did not complete ({st}): the procedures after its stop are missing; run memprog characterize again for a full fit"
            for r, st in incomplete.items()
        )
        emit(doc, as_json, _human(doc) + note)


__all__ = ["register"]
