"""``memprog insitu``: train a network in the array (seed 002, Li 2018), from the command line.

Thin over :func:`memprog.jobs.insitu.run_insitu_job`: options in, one human summary or one
JSON document out (progress, per-epoch lines and the interruption line on stderr). The
run is stored (kind ``insitu``) through ``memprog.cli.runs.run_command`` — the one way
every pulsing command handles the store, signals and exit codes: 0 done, 2 bad input (a
bench without ``VMM?``, a stuck fraction outside [0, 1)), 3 instrument or storage error,
130/143/129 interrupted by SIGINT/SIGTERM/SIGHUP (the bench left safe, the chip's weights
at the last completed epoch written to ``--out``). ``--out`` holds what the chip learnt
(its measured conductances through the pair mapping), so ``memprog program`` can place it
on another chip; the summary gives that file's software accuracy beside the chip's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from memprog.cli import options as O
from memprog.cli.common import BenchOpt, JsonOpt, ProgressOpt, fail, show_progress
from memprog.cli.outputs import ForceOpt, refuse_existing
from memprog.cli.runs import Outcome, run_command
from memprog.core.bench_config import load_bench_config
from memprog.core.errors import ConfigError, MemprogError

VMM_STACKS = ("onchip",)  # stacks whose instrument has an analog vector-matrix multiply


def _precheck(bench: str, stuck_fraction: float | None, dataset: str) -> None:
    """Bad input refused before a run is opened or anything is sent."""
    if dataset != "digits":
        raise ConfigError("--dataset", dataset, "digits")
    if stuck_fraction is not None and not (
        math.isfinite(stuck_fraction) and 0.0 <= stuck_fraction < 1.0
    ):
        raise ConfigError("--stuck-fraction", stuck_fraction, "[0, 1)")
    config, path = load_bench_config(bench)
    stack = config.programmer.stack
    if stack not in VMM_STACKS:
        raise ConfigError(
            "bench",
            f"{path.name} (stack {stack})",
            "a stack with an analog vector-matrix multiply (VMM?): the on-chip controller",
            "in-situ training runs the forward pass in the array; this stack reads cells "
            "one by one and has no VMM",
        )


def _human(summary: dict[str, Any], hidden: int) -> str:
    sf = summary["stuck_fraction"]
    lines = [
        f"in-situ training on {summary['bench']}: 64-{hidden}-10, {summary['epochs']} epochs, "
        f"stuck fraction {'as the bench' if sf is None else f'{sf:.0%}'}",
        f"chip test accuracy {summary['chip_accuracy']:.1%} "
        "(seed 002 hardware: 91.7 % with 11 % stuck)",
        f"pulses {summary['pulses']}, wall {summary['wall_s']:.1f} s, "
        f"bench time {summary['bench_time_s']:.2f} s",
        f"weights: {summary['weights']} (read from the chip; in software "
        f"{summary['weights_software_accuracy']:.1%} on the same test set)",
    ]
    if "exsitu" in summary:
        ex = summary["exsitu"]
        lines.append(
            f"ex-situ transfer: software {ex['software_accuracy']:.1%} -> chip "
            f"{ex['chip_accuracy']:.1%} ({ex['cells_converged']}/{ex['cells']} cells converged)"
        )
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add ``insitu`` to the ``memprog`` app."""

    @app.command("insitu")
    def insitu_cmd(
        bench: BenchOpt = "sim_onchip",
        dataset: Annotated[
            str, typer.Option(callback=O.choice("digits"), help="Data set: digits (scikit-learn's bundled 8x8 digits).")
        ] = "digits",
        epochs: Annotated[
            int, typer.Option(callback=O.int_in(0, 1000), help="Passes over the training set.")
        ] = 8,
        stuck_fraction: Annotated[
            float | None,
            typer.Option(callback=O.float_in(0.0, 1.0, hi_open=True), help="Simulated bench only: fraction of devices stuck OFF, in [0, 1) (default: the chip's own stuck devices)."),
        ] = None,
        seed: Annotated[int, typer.Option(callback=O.SEED, help="Initial weights and minibatch order (the data split is fixed).")] = 0,
        batch_size: Annotated[int, typer.Option(callback=O.int_in(1, 1024), help="Minibatch size.")] = 16,
        learning_rate: Annotated[float, typer.Option(callback=O.LEARNING_RATE, help="SGD learning rate.")] = 1.0,
        out: Annotated[
            Path,
            typer.Option(
                callback=O.out_file(),
                help="Weights file (memprog.weights/1) for `memprog program`: the chip's "
                "measured conductances at the end of training, as weights; written on "
                "Ctrl-C too (the last completed epoch)."
            ),
        ] = Path("insitu_weights.pt"),
        force: ForceOpt = False,
        exsitu: Annotated[
            bool,
            typer.Option(help="Also program a software-trained network (ex-situ) and compare."),
        ] = False,
        db: Annotated[
            str | None, typer.Option(help="Run store URL (default: $MEMPROG_DB).")
        ] = None,
        progress: ProgressOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Train the 64-54-10 network in the array: VMM forward, software backward, pulses.

        Forward passes are batched ``VMM?`` on the chip; the update is Li 2018's RESET then
        gate-controlled SET, without verify; stuck devices stay in the loop.
        """
        # deferred: memprog.jobs pulls in torch, sqlalchemy and pandas
        from memprog.jobs.insitu import InsituParams, run_insitu_job

        def log(message: str) -> None:
            typer.echo(message, err=True)

        def on_epoch(row: dict) -> None:
            if not as_json:
                log(
                    f"epoch {row['epoch']:3d}  loss {row['loss']:.3f}  "
                    f"train {row['train_accuracy']:.3f}  test {row['test_accuracy']:.3f}  "
                    f"wall {row['wall_s']:.2f} s  bench {row['bench_s']:.3f} s"
                )

        show = show_progress(progress)
        try:
            _precheck(bench, stuck_fraction, dataset)
            refuse_existing(out, force, "--out")  # the last run's weights are never replaced unasked
            params = InsituParams(
                epochs=epochs, seed=seed, batch_size=batch_size, learning_rate=learning_rate
            )
        except MemprogError as exc:
            raise fail(exc) from exc
        job_params = {**params.model_dump(), "stuck_fraction": stuck_fraction, "out": str(out)}

        def body(ctx: Any) -> Any:
            written: list[str] = []
            ctx.on_interrupt(lambda: written[0] if written else None)
            summary = run_insitu_job(
                bench,
                params,
                stuck_fraction=stuck_fraction,
                out=out,
                exsitu=exsitu,
                sink=ctx.sink,
                opener=ctx.open_bench,
                progress=show,
                on_epoch=on_epoch,
                on_partial=lambda _res: written.append(str(out)),
                log=log,
            )
            return Outcome(summary, _human(summary, params.hidden))

        run_command(
            body,
            db=db,
            kind="insitu",
            bench=bench,
            as_json=as_json,
            protocol="insitu/li2018",
            params=job_params,
        )
