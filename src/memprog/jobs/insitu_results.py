"""What an in-situ run measured, and the weight file it leaves: the chip's weights.

Why a module of its own: the result is what the CLI prints and stores
(:meth:`InsituResult.summary`), and the weight file is what ``memprog program`` loads on
another chip, so both must say what the chip held — its measured conductances through the
pair mapping — not the open-loop targets the updates aimed at. The file is written by the
one weight-file writer (:func:`memprog.hwaware.mapping.save_weights`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memprog.core.errors import ConfigError
from memprog.hwaware.datasets import Dataset
from memprog.hwaware.mapping import WEIGHTS_FORMAT, save_weights, unfold_bias
from memprog.jobs.insitu_params import LI2018_INSITU_ACCURACY, InsituParams
from memprog.jobs.weights import Network, load_program_input


@dataclass
class InsituResult:
    """What a run measured (``summary()`` is the CLI's JSON)."""

    test_accuracy: float
    train_accuracy: float
    epochs: int
    stuck_fraction: float | None
    pulses: int
    wall_s: float
    bench_time_s: float | None
    epoch_wall_s: list[float]
    epoch_bench_s: list[float]
    history: list[dict[str, float]]
    calibration: dict[str, float]
    saturated_updates: int
    vmm_vectors: int
    weights: list[np.ndarray]  # the software targets' weights (bookkeeping, not the chip)
    sizes: list[int]
    params: dict[str, Any]
    interrupted: bool = False
    # what the chip holds: the pair mapping of every network device's measured conductance,
    # read at the end of the last completed epoch (after initialisation for epoch 0)
    chip_weights: list[np.ndarray] | None = None
    chip_weights_epoch: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "test_accuracy": self.test_accuracy,
            "train_accuracy": self.train_accuracy,
            "epochs": self.epochs,
            "stuck_fraction": self.stuck_fraction,
            "pulses": self.pulses,
            "wall_s": self.wall_s,
            "bench_time_s": self.bench_time_s,
            "epoch_wall_s": self.epoch_wall_s,
            "epoch_bench_s": self.epoch_bench_s,
            "history": self.history,
            "calibration": self.calibration,
            "saturated_updates": self.saturated_updates,
            "vmm_vectors": self.vmm_vectors,
            "sizes": self.sizes,
            "interrupted": self.interrupted,
            "seed002_insitu_accuracy": LI2018_INSITU_ACCURACY,
        }


def software_predict(weights: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """Labels of the sigmoid/softmax network ``weights`` (bias last row), in software."""
    parts = [unfold_bias(w) for w in weights]
    net = Network([w for w, _ in parts], [b for _, b in parts], "sigmoid", "softmax")
    return net.predict(x)


def weights_dict(
    weights: list[np.ndarray],
    sizes: list[int],
    params: InsituParams,
    *,
    dataset: str = "digits",
    epochs: int = 0,
    source: str = "insitu",
) -> dict[str, Any]:
    """Contract B's weight-file dict (``memprog.weights/1``) for a sigmoid/softmax network.

    ``weights`` are (n_in + 1, n_out) matrices with the bias as last row; the mapping window
    is the run's working range, so ``memprog program`` places the pairs where in-situ
    training kept them.
    """
    import torch  # deferred: torch takes ~1 s to import; `memprog --help` and the job's checks stay fast

    state = {}
    for i, w in enumerate(weights):
        weight, bias = unfold_bias(w)
        state[f"layers.{i}.weight"] = torch.tensor(weight, dtype=torch.float32)
        state[f"layers.{i}.bias"] = torch.tensor(bias, dtype=torch.float32)
    return {
        "format": WEIGHTS_FORMAT,
        "dataset": dataset,
        "sizes": list(sizes),
        "activation": "sigmoid",
        "output": "softmax",
        "state_dict": state,
        "mapping": {
            "scheme": "differential",
            "g_min_us": float(params.g_low_us),
            "g_max_us": float(params.g_high_us),
        },
        "hardware_aware": True,
        "seed": int(params.seed),
        "epochs": int(epochs),
        "variability_source": source,
    }


def save_chip_weights(path: Any, result: InsituResult, params: InsituParams, source: str) -> Path:
    """Write what the chip holds (or held at the last completed epoch) as a Contract B file.

    The weights are the chip's measured conductances through the pair mapping
    (:attr:`InsituResult.chip_weights`), not the software targets: open-loop updates miss
    their targets, and the network that reached the reported accuracy is the one on the
    chip. Written by the weight-file writer every other command uses
    (:func:`memprog.hwaware.mapping.save_weights`, which validates the file first).
    """
    if result.chip_weights is None:
        raise ConfigError(
            "weights", str(path), "a run whose chip was read", "no chip read to save"
        )
    d = weights_dict(
        result.chip_weights,
        result.sizes,
        params,
        epochs=result.chip_weights_epoch,
        source=source,
    )
    return save_weights(d, path)


def file_software_accuracy(path: str | Path, data: Dataset) -> float:
    """Test accuracy of a weight file evaluated in software, loaded as ``memprog program`` loads it.

    Why: the saved file is only useful if the network it holds is the one the chip ran;
    evaluating the file itself (float32, through the program job's loader) next to the
    chip's accuracy shows that it is.
    """
    net = load_program_input(path)
    return float((net.predict(data.x_test) == data.y_test).mean())


__all__ = ["InsituResult", "file_software_accuracy", "save_chip_weights", "software_predict", "weights_dict"]
