"""In-situ training of a two-layer network on the array (Li et al. 2018, seed 002).

Why a job of its own: an ex-situ transfer programs weights trained elsewhere, and every
device that does not reach its target (Li: 11 % stuck near 10 µS) is an error the network
never learnt about. In-situ training runs the forward pass *in the array* (analog
vector-matrix multiplies, ``VMM?``), computes the gradient in software from what the array
actually produced, and applies the update as open-loop pulses (no verify). Stuck devices,
device-to-device spread and update noise are inside the loop, so the network adapts to
them (seed 002 Fig. 4b: over 60 % accuracy with half the devices stuck).

The scheme, per minibatch:

1. **forward**: inputs as row voltages (0 … ``input_v``; a bias row at ``input_v``), one
   batched ``VMM?`` per layer; each weight is a differential pair of columns, so a neuron's
   pre-activation is the current difference of its two columns. Hidden activation: sigmoid
   (its output, 0 … 1, is the next layer's row voltage scale without clipping); output:
   softmax.
2. **backward** (software): cross-entropy gradient; the hidden-layer error needs the
   output layer's weights, read from the array (one ``READ:SEL?`` of its 1,100 cells:
   [choice] the array has no transposed VMM).
3. **update** (Li's two-pulse scheme): each device has a target conductance kept in
   software; the update moves the pair's targets by ±ΔG/2 (within the working range,
   saturations counted). A device whose pending change exceeds ``update_threshold_us``
   is pulsed: a decrease is a RESET then a SET whose gate voltage sets the new
   conductance (1T1R compliance); an increase is that SET alone. Row-parallel, batched:
   at most one RESET and one SET message per minibatch, no read-back.

What the job saves (``--out``) is what the chip holds: at the end of training every
network device is read (repeated reads averaged, RTN out), and those conductances, through
the same pair mapping the program job places weights with (:mod:`memprog.hwaware.mapping`),
are the weights written. After every epoch's test pass the devices are read once too, so
an interrupt writes the chip of the last completed epoch without any I/O of its own. The software targets
are not saved: open-loop updates never reach them on stuck devices, and a file of targets
programmed onto another chip is a different network (24.9 % where the chip ran 94.9 %).

Per epoch the job reports the test accuracy (the whole test set through ``VMM?``) and the
training accuracy as seed 002 Fig. 3c does: the running minibatch accuracy, i.e. what
the forward passes classified correctly before each update (no extra pass).

The gate → conductance relation is measured, not assumed:
:func:`~memprog.jobs.insitu_calibration.calibrate_gate` RESETs
and SETs spare rows at a ramp of gate voltages and fits a line through the responsive
cells (Li's Fig. 3d). Nothing here reads a simulator parameter.

Layout (``origin`` (r0, c0)): layer 1 (64 inputs + bias → 54) on rows r0…r0+64 and
columns c0…c0+107 (neuron j on columns c0+2j (+) and c0+2j+1 (−)); layer 2 (54 + bias →
10) on rows r0+65…r0+119, columns c0+108…c0+127; calibration on rows r0+120…r0+123.

The data is the one digits split of :mod:`memprog.hwaware.datasets` (80/20, ``DATA_SEED``),
the images ``memprog train`` and the shipped example are scored on. The job's parts, each a
module: ``insitu_params`` (settings), ``insitu_layout`` (where the devices sit),
``insitu_calibration`` (the gate line), ``insitu_network`` (``VMM?`` forward, software
backward, update pulses), ``insitu_results`` (the result and the weight file),
``insitu_exsitu`` (seed 002's ex-situ comparison); this module holds the entry points
(:func:`train_insitu`, :func:`run_insitu_job`, :func:`bench_with_stuck_fraction`).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from memprog.bench.assembly import open_bench
from memprog.core.bench_config import load_bench_config, resolve_bench_path
from memprog.core.errors import ConfigError
from memprog.core.strict_yaml import dump_yaml
from memprog.hwaware.datasets import Dataset
from memprog.jobs.insitu_exsitu import exsitu_transfer
from memprog.jobs.insitu_network import ChipNetwork, require_vmm
from memprog.jobs.insitu_params import InsituParams, insitu_dataset
from memprog.jobs.insitu_results import (
    InsituResult,
    file_software_accuracy,
    save_chip_weights,
    software_predict,
)
from memprog.protocols.common import Progress
from memprog.protocols.events import EventSink, sink_or_null


def train_insitu(
    bench: Any,
    params: InsituParams | None = None,
    dataset: Dataset | None = None,
    sink: EventSink | None = None,
    progress: bool = False,
    stuck_fraction: float | None = None,
    on_interrupt: Callable[[InsituResult], None] | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> InsituResult:
    """Train the 64-54-10 network in the array of an open ``bench`` (see the module docstring).

    Args:
        bench: an open bench whose stack has ``VMM?`` (the on-chip controller).
        params: settings; defaults reproduce seed 002's network on the digits.
        dataset: the data; default :func:`~memprog.jobs.insitu_params.insitu_dataset` (the
            one split of :mod:`memprog.hwaware.datasets`, cut to the params' limits).
        sink: events per epoch (the run store's sink plugs in here).
        progress: a progress bar over minibatches on stderr.
        stuck_fraction: only reported (the bench file sets the chip's).
        on_interrupt: called with the partial result when Ctrl-C stops training, before the
            KeyboardInterrupt propagates (the bench is made safe by its ``with`` block).
        on_epoch: called with each epoch's figures (loss, accuracies, pulses, times).
    """
    p = params or InsituParams()
    require_vmm(bench)
    data = dataset or insitu_dataset(p)
    s = sink_or_null(sink)
    sizes = [data.n_inputs, p.hidden, data.n_classes]
    net = ChipNetwork(bench.programmer, sizes, p)
    rng = np.random.default_rng(p.seed)
    t0 = time.perf_counter()
    b0 = bench.bench_time_s
    net.initialise(rng)
    assert net.calibration is not None
    # What the chip holds, refreshed after every epoch's test pass: the file written at the
    # end (or on an interrupt, without any I/O in the interrupt path) is the network the
    # chip ran for its reported accuracy, not the open-loop targets it was aiming at.
    chip = {"weights": net.measured_weights(), "epoch": 0}
    s.record_event(
        {"event": "insitu_start", "sizes": sizes, "calibration": net.calibration.as_dict()}
    )
    history: list[dict[str, float]] = []
    ep_wall: list[float] = []
    ep_bench: list[float] = []
    n = data.x_train.shape[0]
    bar = Progress(progress, p.epochs * n, "insitu")
    epoch = 0

    def result(interrupted: bool) -> InsituResult:
        test_acc = history[-1]["test_accuracy"] if history else float("nan")
        train_acc = history[-1]["train_accuracy"] if history else float("nan")
        bt = bench.bench_time_s - b0
        return InsituResult(
            test_accuracy=test_acc,
            train_accuracy=train_acc,
            epochs=epoch,
            stuck_fraction=stuck_fraction,
            pulses=net.pulses,
            wall_s=time.perf_counter() - t0,
            bench_time_s=bt,
            epoch_wall_s=ep_wall,
            epoch_bench_s=ep_bench,
            history=history,
            calibration=net.calibration.as_dict() if net.calibration else {},
            saturated_updates=net.saturated,
            vmm_vectors=net.vmm_vectors,
            weights=net.weights(),
            sizes=sizes,
            params=p.model_dump(),
            interrupted=interrupted,
            chip_weights=chip["weights"],
            chip_weights_epoch=int(chip["epoch"]),
        )

    try:
        if p.epochs == 0:
            acc = float((net.predict(data.x_test) == data.y_test).mean())
            history.append(
                {
                    "epoch": 0,
                    "loss": float("nan"),
                    "train_accuracy": float("nan"),
                    "test_accuracy": acc,
                }
            )
        for epoch_i in range(p.epochs):
            tw, tb = time.perf_counter(), bench.bench_time_s
            perm = rng.permutation(n)
            losses = []
            correct = 0
            for start in range(0, n, p.batch_size):
                idx = perm[start : start + p.batch_size]
                lr = p.learning_rate / (1.0 + p.lr_decay * epoch_i)
                loss, ok = net.train_step(data.x_train[idx], data.y_train[idx], lr)
                losses.append(loss)
                correct += ok
                bar.update(idx.size)
            ep_wall.append(time.perf_counter() - tw)
            ep_bench.append(bench.bench_time_s - tb)
            acc = float((net.predict(data.x_test) == data.y_test).mean())
            chip = {"weights": net.measured_weights(), "epoch": epoch_i + 1}
            epoch = epoch_i + 1
            row = {
                "epoch": epoch,
                "loss": float(np.mean(losses)),
                "train_accuracy": correct / n,
                "test_accuracy": acc,
                "pulses": net.pulses,
                "wall_s": ep_wall[-1],
                "bench_s": ep_bench[-1],
            }
            history.append(row)
            s.record_event({"event": "epoch", **row})
            if on_epoch is not None:
                on_epoch(row)
    except BaseException as exc:  # Ctrl-C, or SIGTERM/SIGHUP turned into an exception
        bar.close()
        if isinstance(exc, Exception):
            raise
        partial = result(True)
        if on_interrupt is not None:
            on_interrupt(partial)
        raise
    bar.close()
    # the end of training: the chip's levels for the file, read with RTN averaged out
    chip = {"weights": net.measured_weights(averaged=True), "epoch": epoch}
    res = result(False)
    s.record_event({"event": "insitu_end", "summary": res.summary()})
    return res


# ---------------------------------------------------------------------------------- stuck fraction
@contextmanager
def bench_with_stuck_fraction(bench: str | Path, stuck_fraction: float | None) -> Iterator[Path]:
    """The bench file to open: ``bench`` itself, or a copy whose chip has that stuck fraction.

    The fraction reaches the simulator the way every chip property does, through the bench
    file: ``chip.sim_params`` of a temporary copy sets ``unresponsive_fraction`` (devices
    stuck OFF near 10 µS, seed 002 Fig. 4b's defect) and no HRS/LRS-stuck devices besides.
    The chip seed is kept, so with one seed the stuck devices of 11 % are among those of
    30 %. A bench with real instruments is refused: a real chip's defects are what they are.
    """
    if stuck_fraction is None:
        yield resolve_bench_path(bench)
        return
    f = float(stuck_fraction)
    if not (np.isfinite(f) and 0.0 <= f < 1.0):
        raise ConfigError("stuck_fraction", stuck_fraction, "[0, 1)")
    config, path = load_bench_config(bench)
    real = sorted(n for n, i in config.instruments.items() if not i.simulated)
    if real:
        raise ConfigError(
            "stuck_fraction",
            f,
            "only on a simulated bench",
            f"{path.name}: {', '.join(real)} talk to a real chip, whose stuck devices cannot be chosen",
        )
    data = yaml.safe_load(path.read_text())
    sim = dict(data["chip"].get("sim_params") or {})
    sim.update(unresponsive_fraction=f, stuck_hrs_fraction=0.0, stuck_lrs_fraction=0.0)
    data["chip"]["sim_params"] = sim
    with tempfile.TemporaryDirectory(prefix="memprog-stuck-") as tmp:
        out = Path(tmp) / path.name
        out.write_text(dump_yaml(data, sort_keys=False))
        yield out


# ---------------------------------------------------------------------------------- the job
def run_insitu_job(
    bench: str | Path,
    params: InsituParams | None = None,
    *,
    stuck_fraction: float | None = None,
    out: str | Path | None = None,
    exsitu: bool = False,
    sink: EventSink | None = None,
    opener: Callable[[str], Any] | None = None,
    progress: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    on_partial: Callable[[InsituResult], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``memprog insitu``: train in the array of ``bench``; optionally compare with ex-situ.

    Validates everything before the first pulse (stuck fraction in [0, 1), a stack with
    ``VMM?``) and writes to ``out``, as a Contract B file ``memprog program`` loads, the
    weights the chip holds (its measured conductances at the end of training through the
    pair mapping). The summary gives that file's software accuracy on the test set
    (``weights_software_accuracy``) beside the chip's (``chip_accuracy``, the same figure
    as ``test_accuracy``). On Ctrl-C (or SIGTERM/SIGHUP as
    ``memprog.core.signals.Interrupted``) the chip's weights at the last completed epoch are
    written to ``out`` first (and handed to ``on_partial``), the bench is left safe by its
    ``with`` block, and the interrupt propagates.

    Args:
        sink: where events go (the run store's sink).
        opener: opens a bench file as a context manager (default :func:`memprog.open_bench`;
            the CLI passes its run context's, which records the safe state).
    """
    p = params or InsituParams()
    say = log or (lambda _m: None)
    if stuck_fraction is not None:
        f = float(stuck_fraction)
        if not (np.isfinite(f) and 0.0 <= f < 1.0):
            raise ConfigError("stuck_fraction", stuck_fraction, "[0, 1)")
    data = insitu_dataset(p)
    out_path = Path(out) if out is not None else None
    source = f"insitu:{Path(str(bench)).name}"
    opener = opener or open_bench

    def save(res: InsituResult) -> None:
        if out_path is not None:
            save_chip_weights(out_path, res, p, source)
            say(
                f"memprog: the chip's weights after {res.chip_weights_epoch} epoch(s) "
                f"saved to {out_path}"
            )
        if on_partial is not None:
            on_partial(res)

    with bench_with_stuck_fraction(bench, stuck_fraction) as path:
        with opener(str(path)) as b:
            require_vmm(b)
            res = train_insitu(
                b,
                p,
                data,
                sink=sink,
                progress=progress,
                stuck_fraction=stuck_fraction,
                on_interrupt=save,
                on_epoch=on_epoch,
            )
            name = b.config.name
    summary = res.summary()
    summary["bench"] = name
    summary["chip_accuracy"] = res.test_accuracy
    summary["weights"] = None
    summary["weights_source"] = "chip"  # measured conductances, through the pair mapping
    if out_path is not None:
        written = save_chip_weights(out_path, res, p, source)
        summary["weights"] = str(written)
        summary["weights_software_accuracy"] = file_software_accuracy(written, data)
    else:  # nothing written: the same figure from the chip's weights in memory
        pred = software_predict(res.chip_weights or [], data.x_test)
        summary["weights_software_accuracy"] = float((pred == data.y_test).mean())
    if exsitu:
        with bench_with_stuck_fraction(bench, stuck_fraction) as path:
            with opener(str(path)) as b:
                ex = exsitu_transfer(b, p, data, progress=progress)
        summary["exsitu"] = ex
        summary["exsitu_accuracy"] = ex["chip_accuracy"]
    return summary


__all__ = ["InsituParams", "bench_with_stuck_fraction", "run_insitu_job", "train_insitu"]
