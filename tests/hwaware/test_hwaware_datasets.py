"""One dataset loader, one split (issue 22, the ML data layer): ``memprog train``,
``memprog insitu`` and the shipped example are scored on the same held-out digits.

Before: ``insitu`` drew its own stratified 75/25 split (450 test images) while ``train`` and
the shipped ``digits_test.npz`` used the seeded 80/20 one (359), so their accuracies were
measured on different images. Pure numpy and scikit-learn's bundled digits: no bench.
"""

from __future__ import annotations

import numpy as np
import pytest

from memprog.core.errors import ConfigError
from memprog.examples import example
from memprog.hwaware.datasets import DATA_SEED, load_dataset
from memprog.hwaware.training import held_out_set
from memprog.jobs.insitu_params import InsituParams, insitu_dataset


def test_insitu_train_and_the_shipped_example_share_the_test_images():
    train = load_dataset("digits", DATA_SEED)
    assert (len(train.y_train), len(train.y_test)) == (1438, 359)  # 80/20 of 1,797
    # `memprog train`'s held-out set (what `memprog evaluate` scores a weight file on)
    x_eval, y_eval = held_out_set({"dataset": "digits"})
    np.testing.assert_array_equal(x_eval, train.x_test)
    # the shipped example's test set
    with np.load(example("digits")[1]) as shipped:
        np.testing.assert_array_equal(shipped["x"], train.x_test)
        np.testing.assert_array_equal(shipped["y"], train.y_test)
    # in-situ, whatever the run's seed (it seeds the weights and minibatches, not the split)
    for seed in (0, 3):
        ins = insitu_dataset(InsituParams(seed=seed))
        np.testing.assert_array_equal(ins.x_test, train.x_test)
        np.testing.assert_array_equal(ins.y_test, train.y_test)
        np.testing.assert_array_equal(ins.x_train, train.x_train)
    assert (ins.n_inputs, ins.n_classes) == (64, 10)


def test_limits_keep_a_prefix_of_the_same_split():
    full = load_dataset("digits")
    small = insitu_dataset(InsituParams(limit_train=64, limit_test=32))
    np.testing.assert_array_equal(small.x_train, full.x_train[:64])
    np.testing.assert_array_equal(small.y_test, full.y_test[:32])
    assert small.x_test.shape == (32, 64) and small.sizes == [64, 54, 10]


@pytest.mark.parametrize("limit", [0, -1, 2.5, True])
def test_a_bad_limit_is_refused_naming_it(limit):
    with pytest.raises(ConfigError, match=r"limit_test=.*whole number >= 1"):
        load_dataset("digits", limit_test=limit)


def test_an_unknown_dataset_is_refused_naming_the_choices():
    with pytest.raises(ConfigError, match=r"dataset='mnist'.*halfmoons or digits"):
        load_dataset("mnist")
