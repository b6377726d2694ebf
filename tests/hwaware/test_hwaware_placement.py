"""Placement of networks on one array: pairs, several layers, tiles, copies, stuck cells,
and a clear refusal of what does not fit. Pure numpy, no bench."""

from __future__ import annotations

import numpy as np
import pytest

from memprog.core.errors import ConfigError
from memprog.hwaware.mapping import weights_to_pairs
from memprog.hwaware.placement import Placement, place_network


def _no_overlap(pl: Placement) -> None:
    c = pl.cells()
    flat = c["row"] * pl.array_shape[1] + c["col"]
    assert np.unique(flat).size == flat.size, "two weights on one cell"
    assert c["row"].max() < pl.array_shape[0] and c["col"].max() < pl.array_shape[1]


def test_li2018_network_fits_twice_on_one_256_array():
    pl = place_network([(65, 54), (55, 10)], (256, 256))
    assert pl.copies == 2
    assert pl.cells_total == 2 * 2 * (65 * 54 + 55 * 10)
    _no_overlap(pl)
    # each layer's VMM drives only its rows and reads only its columns: tiles are disjoint
    c = pl.cells()
    for k in (0, 1):
        sel = c["layer"] == k
        assert set(c["i"][sel]) == set(range(65 if k == 0 else 55))
        # + and - of a pair share the row and sit in two columns
        plus, minus = sel & (c["sign"] > 0), sel & (c["sign"] < 0)
        np.testing.assert_array_equal(c["row"][plus], c["row"][minus])


def test_layer_larger_than_the_array_is_tiled():
    pl = place_network([(301, 40), (41, 150)], (256, 256), copies=1)
    _no_overlap(pl)
    t0 = pl.tiles_of(0)
    assert len(t0) == 2 and sum(t.in_hi - t.in_lo for t in t0) == 301
    t1 = pl.tiles_of(1)
    assert sum(t.out_hi - t.out_lo for t in t1) == 150 and all(t.width <= 256 for t in t1)


def test_refuses_what_does_not_fit_saying_by_how_much():
    with pytest.raises(ConfigError, match=r"\d+ more columns"):
        place_network([(200, 100), (101, 100)], (256, 256), copies=1)


def test_copies_fall_back_to_one_when_two_do_not_fit():
    pl = place_network([(200, 100)], (256, 256))
    assert pl.copies == 1 and pl.notes


def test_known_stuck_cells_are_avoided_where_there_is_room():
    rng = np.random.default_rng(0)
    stuck = np.zeros((64, 64), bool)
    stuck[rng.integers(0, 64, 40), rng.integers(0, 64, 40)] = True
    naive = place_network([(11, 8)], (64, 64), copies=1)
    smart = place_network([(11, 8)], (64, 64), copies=1, stuck_mask=stuck)
    c0, c1 = naive.cells(), smart.cells()
    assert stuck[c1["row"], c1["col"]].sum() == 0 <= stuck[c0["row"], c0["col"]].sum()
    assert smart.avoided_stuck == int(stuck.sum())
    _no_overlap(smart)


def test_round_trip_through_the_store_params():
    pl = place_network([(65, 54), (55, 10)], (256, 256))
    back = Placement.from_dict(pl.to_dict())
    for k, v in pl.cells().items():
        np.testing.assert_array_equal(v, back.cells()[k])


def test_weights_to_pairs_min_max_per_layer():
    w = np.array([[0.5, -1.0], [0.0, 0.25]])
    gp, gm, scale = weights_to_pairs(w, 50.0, 450.0)
    np.testing.assert_allclose((gp - gm) * scale, w)
    assert gp.min() >= 50 and gm.min() >= 50 and max(gp.max(), gm.max()) == pytest.approx(450.0)
    assert np.all((gp == 50) | (gm == 50))
