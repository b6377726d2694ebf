"""``memprog train`` and ``memprog evaluate``: hardware-aware training and Monte Carlo
transfer evaluation (issue 11), thin over :mod:`memprog.hwaware`.

The non-idealities come from the variability database (``--db URL``, filled by ``memprog
characterize``) or, without one, from a technology preset's published figures
(``--preset``). Evaluating two weight files with the same ``--seed`` simulates the same
transfers (the same random draws) for both, so their tables compare like for like.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from memprog.cli_common import JsonOpt, ProgressOpt, emit, fail
from memprog.errors import ConfigError, MemprogError

DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Variability database URL (filled by `memprog characterize`)."),
]
PresetOpt = Annotated[
    str, typer.Option("--preset", help="Technology preset whose published figures stand in when there is no --db.")
]
DeviceOpt = Annotated[str, typer.Option("--device", help="torch device (cpu, cuda, cuda:1, ...).")]


def load_variability(db: str | None, preset: str, chip_id: str | None = None) -> Any:
    """The :class:`VariabilityModel` of ``--db`` (our characterisation runs) or of ``--preset``."""
    from memprog.hwaware.variability import VariabilityModel

    if db is None:
        return VariabilityModel.from_preset(preset)
    try:
        from memprog.store import VariabilityDB
    except ImportError as exc:  # pragma: no cover - the store ships with memprog
        raise ConfigError("--db", db, "a memprog with the run store (memprog.store)") from exc
    vdb = VariabilityDB(db, chip_id=chip_id)
    try:
        return VariabilityModel.from_db(vdb)
    finally:
        vdb.close()


def _show(flag: bool | None, as_json: bool) -> bool:
    return flag if flag is not None else sys.stderr.isatty()


def _check_device(device: str) -> Any:
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError("--device", device, "a torch device such as cpu or cuda:0") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device", device, "cpu (no CUDA device is available here)")
    return dev


def _table_text(summary: dict) -> str:
    lines = ["  transfers correct   points   % of test set"]
    for r in summary["table"]:
        lines.append(f"  {r['bin']:>17}   {r['points']:6d}   {r['percent']:6.1f} %")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``evaluate`` to the ``memprog`` app."""

    @app.command("train")
    def train_cmd(
        dataset: Annotated[str, typer.Option("--dataset", help="halfmoons or digits.")],
        out: Annotated[Path, typer.Option("--out", help="Weight file to write (.pt, Contract B format).")],
        db: DbOpt = None,
        preset: PresetOpt = "tio2_passive",
        hardware_aware: Annotated[
            bool, typer.Option("--hardware-aware/--regular", help="Train through sampled transfers (default: regular).")
        ] = False,
        epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Epochs (default per dataset).")] = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed of weights, batch order and sampled transfers.")] = 0,
        lr: Annotated[float, typer.Option("--lr", help="Adam learning rate (seed 001: 0.01).")] = 0.01,
        chip_id: Annotated[str | None, typer.Option("--chip-id", help="Only this chip's characterisation runs.")] = None,
        device: DeviceOpt = "cpu",
        threads: Annotated[
            int, typer.Option("--threads", min=1, help="CPU threads for torch (small networks: 1 is fastest).")
        ] = 1,
        progress: ProgressOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Train a network on half-moons or digits, regular or hardware-aware; write its weights."""
        import torch

        from memprog.hwaware.mapping import save_weights
        from memprog.hwaware.training import train

        # the ops of these networks are far below torch's parallel grain size; a second
        # thread only spins (and, on a busy machine, steals time from the first)
        torch.set_num_threads(threads)
        try:
            if dataset not in ("halfmoons", "digits"):
                raise ConfigError("--dataset", dataset, "halfmoons or digits")
            dev = _check_device(device)
            var = load_variability(db, preset, chip_id)

            def run() -> Any:
                r = train(
                    dataset, var, hardware_aware=hardware_aware, epochs=epochs, seed=seed, lr=lr,
                    device=dev, progress=_show(progress, as_json),
                )
                save_weights(r.weights, out)
                return r

            run_id = None
            if db is None:
                res = run()
            else:  # training from the database is recorded there as a `train` run
                from memprog.store import open_store, stored_run

                store = open_store(db)
                try:
                    params = {"dataset": dataset, "hardware_aware": hardware_aware, "epochs": epochs,
                              "seed": seed, "lr": lr, "out": str(out), "variability": var.summary()}
                    with stored_run(store, kind="train", chip_id=chip_id, params=params) as handle:
                        res = run()
                        handle.summary = res.summary() | {"out": str(out)}
                        run_id = handle.run_id
                finally:
                    store.close()
        except MemprogError as exc:
            raise fail(exc) from exc
        summary = res.summary() | {"out": str(out), "device": str(dev), "lr": lr, "run_id": run_id}
        kind = "hardware-aware" if hardware_aware else "regular"
        human = (
            f"{kind} {dataset} network {res.weights['sizes']} trained {res.weights['epochs']} epochs "
            f"in {res.wall_s:.1f} s (seed {seed}, variability {var.source})\n"
            f"final loss {summary['final_loss']:.4f}, ideal test accuracy {res.test_accuracy * 100:.1f} %\n"
            f"weights: {out}"
        )
        emit(summary, as_json, human)

    @app.command("evaluate")
    def evaluate_cmd(
        weights: Annotated[Path, typer.Argument(help="Weight file written by `memprog train`.")],
        transfers: Annotated[int, typer.Option("--transfers", min=1, help="Simulated transfers.")] = 1000,
        db: DbOpt = None,
        preset: PresetOpt = "tio2_passive",
        seed: Annotated[int, typer.Option("--seed", help="Seed of the simulated transfers (same seed, same transfers).")] = 0,
        chip_id: Annotated[str | None, typer.Option("--chip-id", help="Only this chip's characterisation runs.")] = None,
        png: Annotated[Path | None, typer.Option("--png", help="Draw the table (and the half-moons boundary).")] = None,
        device: DeviceOpt = "cpu",
        as_json: JsonOpt = False,
        on_bench: Annotated[str | None, typer.Option("--on-bench", help="Also program --transfers fresh simulated chips of this bench and set their accuracies beside the prediction.")] = None,
    ) -> None:
        """Monte Carlo transfer evaluation: per test point, the fraction of transfers that get it right."""
        if on_bench is not None:  # memprog program's comparison (cli_program.py)
            from memprog.cli_program import evaluate_on_bench_command

            return evaluate_on_bench_command(weights, on_bench, transfers, db, preset, chip_id, seed, png, as_json)
        import time

        from memprog.hwaware.mapping import load_weights
        from memprog.hwaware.training import held_out_set
        from memprog.hwaware.transfer import simulator_from_weights

        try:
            dev = _check_device(device)
            w = load_weights(weights)
            var = load_variability(db, preset, chip_id)
            x, y = held_out_set(w)
            sim = simulator_from_weights(w, var, dev)
            t0 = time.perf_counter()
            res = sim.evaluate(x, y, transfers, seed=seed)
            wall = time.perf_counter() - t0
            if png is not None:
                from memprog.hwaware.plots import plot_evaluation

                kind = "hardware-aware" if w["hardware_aware"] else "regular"
                plot_evaluation(
                    res, png, title=f"{kind} {w['dataset']} network {w['sizes']} ({var.source})",
                    sim=sim if w["dataset"] == "halfmoons" else None, x_test=x, y_test=y, seed=seed,
                )
        except MemprogError as exc:
            raise fail(exc) from exc
        s = res.summary()
        summary = s | {
            "weights": str(weights),
            "dataset": w["dataset"],
            "hardware_aware": w["hardware_aware"],
            "epochs": w["epochs"],
            "variability_source": var.source,
            "trained_with": w["variability_source"],
            "seed": seed,
            "device": str(dev),
            "wall_s": wall,
            "png": str(png) if png is not None else None,
        }
        human = (
            f"{weights}: {transfers} simulated transfers ({var.source}), {s['n_test_points']} test points\n"
            f"ideal accuracy {s['ideal_accuracy'] * 100:.1f} %, mean over transfers "
            f"{s['test_accuracy_mean'] * 100:.1f} % (std {s['test_accuracy_std'] * 100:.1f} %)\n"
            f"correct in >= 95 % of transfers: {s['fraction_correct_in_at_least_95pct'] * 100:.1f} % of points\n"
            + _table_text(s)
            + (f"\nplot: {png}" if png is not None else "")
        )
        emit(summary, as_json, human)
