"""A network larger than one array, tiled over several chips (memprog.fleet.tiling)."""

from __future__ import annotations

import numpy as np
import pytest

from memprog.core.errors import ConfigError
from memprog.fleet.tiling import chips_needed, place_across_chips
from memprog.hwaware.placement import place_network

WIDE = [(65, 1024), (1025, 10)]  # the 64-1024-10 digits network: (inputs + bias, outputs)


def _coverage(placements, shapes):
    """How many cells (per copy, per sign) hold each weight, summed over every chip."""
    cover = [np.zeros((n, o, 2), dtype=int) for n, o in shapes]
    for pl in placements:
        c = pl.cells()
        for k in range(len(shapes)):
            sel = (c["layer"] == k) & (c["copy"] == 0)
            np.add.at(cover[k], (c["i"][sel], c["j"][sel], (c["sign"][sel] < 0).astype(int)), 1)
    return cover


@pytest.mark.parametrize("copies", [1, 2])
def test_every_weight_is_on_exactly_one_chip_and_every_chip_fits(copies: int) -> None:
    n = chips_needed(WIDE, (256, 256), copies)
    pls = place_across_chips(WIDE, (256, 256), n, copies)
    assert len(pls) == n
    for cover in _coverage(pls, WIDE):
        assert (cover == 1).all()  # each weight's + and - cell: once, on one chip
    for pl in pls:
        c = pl.cells()
        assert c["row"].max() < 256 and c["col"].max() < 256
        # no two cells of a chip share an address
        assert np.unique(c["row"] * 256 + c["col"]).size == c["row"].size
        assert pl.copies == copies and pl.layer_shapes == [tuple(s) for s in WIDE]


def test_the_wide_network_needs_several_arrays_and_too_few_chips_are_refused_with_the_number() -> None:
    with pytest.raises(ConfigError):
        place_network(WIDE, (256, 256), 1)  # no single array holds it
    assert chips_needed(WIDE, (256, 256), 1) == 4
    assert chips_needed(WIDE, (256, 256), 2) == 9
    with pytest.raises(ConfigError, match=r">= 4 chips of 256x256") as e:
        place_across_chips(WIDE, (256, 256), 3, 1)
    assert "need 4 arrays" in str(e.value)


def test_spare_chips_share_the_work_instead_of_idling() -> None:
    pls = place_across_chips(WIDE, (256, 256), 6, 1)
    load = [pl.cells_total for pl in pls]
    assert all(v > 0 for v in load)  # every chip holds tiles
    assert max(load) <= 2 * sum(load) / len(load)  # the busiest chip: at most twice the mean
    # fewer chips than tiles needs: the greedy deal still fills them
    assert sum(load) == sum(n * o * 2 for n, o in WIDE)


def test_copies_none_takes_two_when_they_fit_else_one() -> None:
    assert place_across_chips(WIDE, (256, 256), 9)[0].copies == 2
    pls = place_across_chips(WIDE, (256, 256), 5)
    assert pls[0].copies == 1 and "one copy" in pls[0].notes[0]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigError, match="chips"):
        place_across_chips(WIDE, (256, 256), 0)
    with pytest.raises(ConfigError, match="copies"):
        place_across_chips(WIDE, (256, 256), 4, 3)
