"""Issue 24 item 6: the cheaper numpy round is the mapping, bit for bit.

The round was cut (float32 read columns and indices, max(x, 0) of the minus device as
``max(x, 0) - x``, a wrapping table lookup, spent buffers reused, the stuck-weight count from
the stuck positions). None of that may change a single transferred weight: these tests write
the mapping out plainly, device by device, and ask for the same float32 bits, on the
per-segment scales (biases on their own), on one folded segment, and with a working range
wider than the characterised levels (the clamp). The stuck count is checked where pairs with
both devices stuck are common.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from memprog.hwaware.layers import MLP, convert, stuck_weight_fraction
from memprog.hwaware.variability import VariabilityModel

FIT = {"slope_pct_per_us": -6e-4, "intercept_pct": 0.7, "offset_mean_pct": -0.5, "offset_std_pct": 0.3}


def _raw_model(levels_us=(100.0, 400.0), fractions=(0.02, 0.03)) -> VariabilityModel:
    """Raw reads at 5 equidistant levels (7 reads each), disturb rows per number of later
    writes (a 45 µS tail), HRS/LRS stuck samples."""
    disturb = pd.DataFrame({
        "later_writes": [0] * 3 + [1] * 4 + [2] * 5,
        "delta_us": [-0.5, 0.0, 0.5, -3.0, -1.0, 1.0, 3.0, -2.0, 0.0, 2.0, 4.0, 45.0],
    })
    lv = np.linspace(*levels_us, 5)
    ratios = np.random.default_rng(0).normal(1.0, 0.02, (5, 7))
    raw = pd.DataFrame({"level_us": np.repeat(lv, 7), "g_us": (lv[:, None] * ratios).ravel()})
    stuck = pd.DataFrame({"kind": ["hrs", "hrs", "lrs"], "g_us": [20.0, 40.0, 600.0]})
    return VariabilityModel.from_tables(
        g_range_us=(100.0, 400.0), imprecision_fit=FIT, disturb=disturb,
        stuck_fractions={"hrs": fractions[0], "lrs": fractions[1]}, stuck=stuck,
        imprecision_raw=raw, disturb_min_samples=1,
    )


def _reference_offsets(v: VariabilityModel, t, i: int, flat: np.ndarray, segments) -> np.ndarray:
    """transferred - flat * keep for batch ``i``, written out plainly (float32 throughout)."""
    f32 = np.float32
    inv = np.empty_like(flat)
    for a, c in segments:  # each segment's largest |weight| maps to the top of the range
        inv[a:c] = f32(v.g_max_us - v.g_min_us) / max(np.abs(flat[a:c]).max(), f32(1e-30))
    fac = v.imp_factors.numpy()  # (levels, reads + 1): the last column is a stuck device's 0
    m = fac.shape[1] - 1
    a, b = v._imp_ab_np
    top = fac.shape[0] - 1
    read = (t.col[i] // t._levels).astype(np.int64)  # the drawn read (m: the repeated m - 1)
    stuck = read == m + 1
    t_dev = np.empty((2, flat.size), np.float32)
    for s, sign in enumerate((f32(1), f32(-1))):
        g = np.maximum(sign * (flat * inv), f32(0)) + f32(v.g_min_us)
        level = np.clip(np.rint(g * a + b), 0, top).astype(np.int64)
        ratio = fac[level, np.minimum(read[s], m - 1)]
        t_dev[s] = np.where(stuck[s], t.disturb[i][s], ratio * g + t.disturb[i][s])
    return (t_dev[0] - t_dev[1]) / inv - flat * t.keep[i]


@pytest.mark.parametrize(("sizes", "bias_scale", "levels_us"), [
    ([3, 6, 2], "own", (100.0, 400.0)),  # four scales (weights and biases of each layer)
    ([4, 5], "folded", (100.0, 400.0)),  # one scale
    ([3, 6, 2], "own", (150.0, 350.0)),  # the working range beyond the levels: clamped
])
def test_numpy_round_is_the_plain_mapping_bit_for_bit(sizes, bias_scale, levels_us):
    v = _raw_model(levels_us)
    torch.manual_seed(0)
    net = convert(MLP(sizes), v, generator=torch.Generator().manual_seed(1), bias_scale=bias_scale)
    group = net.layers[0]._group
    t = group._np
    assert t is not None and (t._clip is not None) == (levels_us != (100.0, 400.0))
    flat = group.flat.numpy()
    rng = np.random.default_rng(7)
    t.draw(torch.Generator().manual_seed(3))
    assert t.keep.min() == 0.0  # stuck devices in the chunk
    delta = np.empty_like(flat)
    moved = 0.0
    for i in range(min(t.chunk, 64)):
        flat[:] = rng.standard_normal(flat.size).astype(np.float32) * np.float32(rng.uniform(0.01, 3.0))
        flat[rng.random(flat.size) < 0.1] = 0.0  # zero weights: both devices at g_min
        if i % 8 == 0:
            flat[: group.segments[0][1]] = 0.0  # an all-zero segment: the 1e-30 guard
        t.round(i, flat, delta)
        expect = _reference_offsets(v, t, i, flat, group.segments)
        np.testing.assert_array_equal(delta.view(np.int32), expect.view(np.int32))
        moved = max(moved, float(np.abs(delta + flat * t.keep[i] - flat).max()))
    assert moved > 1e-3  # the transfer moves weights: the comparison is not of zeros


def test_stuck_weight_count_counts_a_pair_with_both_devices_stuck_once():
    """At 30 % + 30 % stuck devices a third of the weights have both devices stuck; the
    count the stuck fraction reports is of weights, as the keep mask has them."""
    v = _raw_model(fractions=(0.3, 0.3))
    torch.manual_seed(0)
    net = convert(MLP([3, 6, 2]), v, generator=torch.Generator().manual_seed(2))
    group = net.layers[0]._group
    t = group._np
    net.train()
    zeros = both = 0
    with torch.no_grad():
        for _ in range(3):  # three chunks: each drawn, then every batch of it served
            net(torch.randn(4, 3))
            stuck = t.col // t._levels == t._m_imp + 1
            zeros += int((t.keep == 0).sum())
            both += int((stuck[:, 0] & stuck[:, 1]).sum())
            for _ in range(group.chunk - 1):
                net(torch.randn(4, 3))
    assert both > 0.25 * 3 * t.keep.size  # pairs with both devices stuck are common here
    assert group.stuck_weights == zeros
    # 1 - 0.4**2 of the weights (n ~ 23,000: sd 0.003); counting pairs twice gives ~1.2
    assert abs(stuck_weight_fraction(net)["all"] - 0.84) < 0.015
