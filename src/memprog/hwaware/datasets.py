"""The two datasets of the hardware-aware experiments, generated or bundled (no download).

* ``halfmoons`` — seed 001's benchmark: 875 training and 200 test points of scikit-learn's
  two interleaving half-moons, inputs min-max scaled to [0, 1] (as the authors' code does), a
  2-8-1 sigmoid network. The paper does not give the noise level; ``HALFMOONS_NOISE`` is a
  [choice] that makes the regular network's ideal test accuracy near the paper's 97.5 %.
* ``digits`` — scikit-learn's bundled 8x8 handwritten digits (``load_digits``: 1,797 images,
  no download), pixels scaled to [0, 1], 20 % held out for test, a 64-54-10 network (the
  layer sizes of seed 002's 8x8-MNIST network).

Same seed, same split, same points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memprog.core.errors import ConfigError

HALFMOONS_NOISE = 0.2  # [choice] ideal accuracy of the regular 2-8-1 network near 97.5 % (seed 001)
HALFMOONS_TRAIN, HALFMOONS_TEST = 875, 200  # [Drolet] seed 001
DIGITS_TEST_FRACTION = 0.2  # [choice]


@dataclass
class Dataset:
    """Train and test arrays plus the network shape the experiment uses."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    sizes: list[int]
    activation: str
    output: str  # "sigmoid" (one output, binary) or "softmax"


def halfmoons(seed: int = 0) -> Dataset:
    """Seed 001's half-moons: 875 train / 200 test, inputs scaled to [0, 1]."""
    from sklearn.datasets import make_moons

    n = HALFMOONS_TRAIN + HALFMOONS_TEST
    x, y = make_moons(n_samples=n, noise=HALFMOONS_NOISE, random_state=int(seed))
    x = (x - x.min(0)) / (x.max(0) - x.min(0))
    x, y = x.astype(np.float32), y.astype(np.int64)
    return Dataset(
        "halfmoons", x[:HALFMOONS_TRAIN], y[:HALFMOONS_TRAIN], x[HALFMOONS_TRAIN:], y[HALFMOONS_TRAIN:],
        [2, 8, 1], "sigmoid", "sigmoid",
    )


def digits(seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 digits, pixels in [0, 1], a seeded 80/20 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(int(seed)).permutation(len(y))
    n_test = int(round(DIGITS_TEST_FRACTION * len(y)))
    te, tr = perm[:n_test], perm[n_test:]
    return Dataset("digits", x[tr], y[tr], x[te], y[te], [64, 54, 10], "sigmoid", "softmax")


def load_dataset(name: str, seed: int = 0) -> Dataset:
    """``halfmoons`` or ``digits`` (ConfigError otherwise)."""
    if name == "halfmoons":
        return halfmoons(seed)
    if name == "digits":
        return digits(seed)
    raise ConfigError("dataset", name, "halfmoons or digits")
