"""The datasets of the ML experiments, generated or bundled (no download): the one loader.

Why one loader: ``memprog train`` (hardware-aware training), ``memprog insitu`` (training in
the array, seed 002), the shipped example (:mod:`memprog.examples`) and every evaluation of
their weight files must classify the *same* held-out points, or their accuracies are not
comparable (before this module was the only loader, ``insitu`` drew its own 75/25 split and
saw another test set than ``train``). Every caller loads through :func:`load_dataset`.

* ``halfmoons`` — seed 001's benchmark: 875 training and 200 test points of scikit-learn's
  two interleaving half-moons, inputs min-max scaled to [0, 1] (as the authors' code does), a
  2-8-1 sigmoid network. The paper does not give the noise level; ``HALFMOONS_NOISE`` is a
  [choice] that makes the regular network's ideal test accuracy near the paper's 97.5 %.
* ``digits`` — scikit-learn's bundled 8x8 handwritten digits (``load_digits``: 1,797 images,
  no download), pixels scaled to [0, 1], a 64-54-10 network (the layer sizes of seed 002's
  8x8-MNIST network). **The split**: a seeded permutation of the 1,797 images
  (``numpy.random.default_rng(seed)``); its first 20 % (359 images) are the test set, the
  other 80 % (1,438) the training set. With ``DATA_SEED`` (every command's default) this is
  the split the shipped ``digits_test.npz`` holds.

Same seed, same split, same points. ``limit_train``/``limit_test`` keep the first n points
of each part (fast tests and notebooks); they never reshuffle, so a limited test set is a
prefix of the full one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from memprog.core.errors import ConfigError

HALFMOONS_NOISE = 0.2  # [choice] ideal accuracy of the regular 2-8-1 network near 97.5 % (seed 001)
HALFMOONS_TRAIN, HALFMOONS_TEST = 875, 200  # [Drolet] seed 001
DIGITS_TEST_FRACTION = 0.2  # [choice]
DATA_SEED = 0  # one fixed split, like the stored dataset of seed 001: every run sees the same points
DATASETS = ("halfmoons", "digits")


@dataclass
class Dataset:
    """Train and test arrays (inputs in [0, 1], float32; integer labels) plus the network
    shape the experiment uses."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    sizes: list[int]
    activation: str
    output: str  # "sigmoid" (one output, binary) or "softmax"

    @property
    def n_inputs(self) -> int:
        """Input width (the network's first layer size)."""
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of classes the labels take (2 for the half-moons' one sigmoid output)."""
        return int(max(self.y_train.max(), self.y_test.max()) + 1)

    def head(self, limit_train: int | None = None, limit_test: int | None = None) -> Dataset:
        """The first ``limit_train`` training and ``limit_test`` test points (None: all)."""
        for name, n in (("limit_train", limit_train), ("limit_test", limit_test)):
            if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1):
                raise ConfigError(name, n, "a whole number >= 1 (or None: every point)")
        return replace(
            self,
            x_train=self.x_train[:limit_train], y_train=self.y_train[:limit_train],
            x_test=self.x_test[:limit_test], y_test=self.y_test[:limit_test],
        )


def halfmoons(seed: int = DATA_SEED) -> Dataset:
    """Seed 001's half-moons: 875 train / 200 test, inputs scaled to [0, 1]."""
    from sklearn.datasets import make_moons  # deferred: scikit-learn (scipy) costs ~1 s to import

    n = HALFMOONS_TRAIN + HALFMOONS_TEST
    x, y = make_moons(n_samples=n, noise=HALFMOONS_NOISE, random_state=int(seed))
    x = (x - x.min(0)) / (x.max(0) - x.min(0))
    x, y = x.astype(np.float32), y.astype(np.int64)
    return Dataset(
        "halfmoons", x[:HALFMOONS_TRAIN], y[:HALFMOONS_TRAIN], x[HALFMOONS_TRAIN:], y[HALFMOONS_TRAIN:],
        [2, 8, 1], "sigmoid", "sigmoid",
    )


def digits(seed: int = DATA_SEED) -> Dataset:
    """scikit-learn's bundled 8x8 digits, pixels in [0, 1], the seeded 80/20 split above."""
    from sklearn.datasets import load_digits  # deferred: scikit-learn (scipy) costs ~1 s to import

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(int(seed)).permutation(len(y))
    n_test = int(round(DIGITS_TEST_FRACTION * len(y)))
    te, tr = perm[:n_test], perm[n_test:]
    return Dataset("digits", x[tr], y[tr], x[te], y[te], [64, 54, 10], "sigmoid", "softmax")


def load_dataset(
    name: str,
    seed: int = DATA_SEED,
    *,
    limit_train: int | None = None,
    limit_test: int | None = None,
) -> Dataset:
    """``halfmoons`` or ``digits`` (ConfigError otherwise), split as the module docstring says.

    Args:
        seed: the split's seed; leave it at ``DATA_SEED`` to classify the points every
            other command classifies.
        limit_train, limit_test: keep only the first n points of each part (:meth:`Dataset.head`).
    """
    if name == "halfmoons":
        ds = halfmoons(seed)
    elif name == "digits":
        ds = digits(seed)
    else:
        raise ConfigError("dataset", name, "halfmoons or digits")
    if limit_train is None and limit_test is None:
        return ds
    return ds.head(limit_train, limit_test)


__all__ = [
    "DATASETS",
    "DATA_SEED",
    "DIGITS_TEST_FRACTION",
    "Dataset",
    "digits",
    "halfmoons",
    "load_dataset",
]
