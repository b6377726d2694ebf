"""Issue 24 item 6: the numpy path of a fused training round samples the same transfers.

On the CPU with raw imprecision, a fused group draws into kept numpy buffers and maps its
weights with numpy (``memprog.hwaware.numpy_transfer``), and the forward pass masks only the
parameters with a stuck device. These tests pin what must not change: the draw is
:meth:`VariabilityModel.draw`'s (same uniforms, same samples), the round is the torch round
(same offsets), stuck weights get no gradient while the others get the full one, the stuck
fraction is the stated one, and a seed still fixes the trained weights.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from memprog.hwaware.layers import MLP, convert, stuck_weight_fraction
from memprog.hwaware.training import train
from memprog.hwaware.variability import VariabilityModel

FIT = {"slope_pct_per_us": -6e-4, "intercept_pct": 0.7, "offset_mean_pct": -0.5, "offset_std_pct": 0.3}


def _raw_model(fractions=(0.02, 0.03), levels=4, reads=5) -> VariabilityModel:
    """Raw reads at equidistant levels (the numpy path), disturb rows of distinct samples
    per number of later writes (a 45 µS tail), HRS/LRS stuck samples."""
    disturb = pd.DataFrame({
        "later_writes": [0] * 3 + [1] * 4 + [2] * 5,
        "delta_us": [-0.5, 0.0, 0.5, -3.0, -1.0, 1.0, 3.0, -2.0, 0.0, 2.0, 4.0, 45.0],
    })
    lv = np.linspace(100.0, 400.0, levels)
    ratios = np.random.default_rng(0).normal(1.0, 0.02, (levels, reads))
    raw = pd.DataFrame({"level_us": np.repeat(lv, reads), "g_us": (lv[:, None] * ratios).ravel()})
    stuck = pd.DataFrame({"kind": ["hrs", "hrs", "lrs"], "g_us": [20.0, 40.0, 600.0]})
    return VariabilityModel.from_tables(
        g_range_us=(100.0, 400.0), imprecision_fit=FIT, disturb=disturb,
        stuck_fractions={"hrs": fractions[0], "lrs": fractions[1]}, stuck=stuck,
        imprecision_raw=raw, disturb_min_samples=1,
    )


def _group(sizes, v, seed=1):
    torch.manual_seed(0)
    net = convert(MLP(sizes), v, generator=torch.Generator().manual_seed(seed))
    group = net.layers[0]._group
    assert group._np is not None  # the numpy path serves this model
    return net, group


def test_numpy_draw_is_the_torch_draw_of_the_same_uniforms():
    v = _raw_model()
    net, group = _group([3, 6, 2], v)
    t = group._np
    t.draw(torch.Generator().manual_seed(5))
    d = v.draw(t.chunk, group.later_writes, torch.Generator().manual_seed(5))
    # the same recorded disturb and stuck samples on every device (a wrong row, offset or
    # stuck pick changes thousands of them)
    assert np.array_equal(t.disturb, d.disturb_us.numpy())
    m = v.imp_factors.shape[1] - 1
    col = t.col // t._levels
    stuck = col == m + 1
    assert np.array_equal(stuck, d.stuck.numpy()) and stuck.mean() > 0.03
    # the same recorded read: the pick's fractional part may round one column apart
    # (torch fuses the multiply-add, numpy does not), nowhere more
    same = np.where(stuck, m, np.minimum(col, m - 1)) - d.imp_index.numpy()
    assert np.abs(same).max() <= 1 and (same == 0).mean() > 0.999
    # keep: 0 exactly where a device of the weight is stuck
    p = t.p
    expect = ~(stuck[:, 0] | stuck[:, 1])
    assert np.array_equal(t.keep == 1, expect) and t.keep.shape == (t.chunk, p)


@pytest.mark.slow  # ~1 s: the torch round's first calls
def test_numpy_round_gives_the_torch_rounds_offsets():
    """The numpy round (its own mapping code) and the torch round on the same draw; one
    layer all zero (the 1e-30 guard), the others random."""
    v = _raw_model()
    net, group = _group([4, 5, 3, 2], v)
    with torch.no_grad():
        net.layers[1].weight.zero_()
        net.layers[1].bias.zero_()
        net.layers[0].weight.mul_(3.0)
    group._draw_chunk()
    for i in range(0, group.chunk, max(1, group.chunk // 16)):
        group._next = i + 1
        group._np.round(i, group.flat.numpy(), group._delta.numpy())
        got = group._delta.clone()
        disturb, col, stuck = group._np.torch_draw_parts(i)
        group._round_torch(group.flat, disturb, col, None, None, stuck, group._keep_t[i])
        torch.testing.assert_close(got, group._delta, rtol=1e-5, atol=1e-6)
        # the offset is not trivial: weights move by the transfer
        assert float((got + group.flat * group._keep_t[i] - group.flat).abs().max()) > 1e-3


def test_forward_masks_exactly_the_stuck_weights_and_trains_the_others():
    v = _raw_model(fractions=(0.05, 0.05))
    net, group = _group([3, 7, 2], v, seed=4)
    net.train()
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    checked = 0
    for _ in range(8):
        net.zero_grad()
        F.cross_entropy(net(x), y).backward()
        # reference: the gradient at the transferred weights, as leaves
        leaves = [
            ((dw + layer.weight.detach() * kw).requires_grad_(), (db + layer.bias.detach() * kb).requires_grad_())
            for layer, (dw, db, kw, kb) in zip(net.layers, group._slices, strict=True)
        ]
        h = x
        for j, (w, b) in enumerate(leaves):
            h = F.linear(h, w, b)
            h = torch.sigmoid(h) if j < len(leaves) - 1 else h
        F.cross_entropy(h, y).backward()
        for layer, (w, b), (_, _, kw, kb) in zip(net.layers, leaves, group._slices, strict=True):
            torch.testing.assert_close(layer.weight.grad, w.grad * kw, rtol=1e-5, atol=1e-7)
            torch.testing.assert_close(layer.bias.grad, b.grad * kb, rtol=1e-5, atol=1e-7)
            checked += int((kw == 0).sum() + (kb == 0).sum())
    assert checked > 0


def test_stuck_fraction_as_stated_over_many_batches():
    v = _raw_model(fractions=(0.004, 0.006))  # 1 % of devices: 1 - 0.99**2 of weights
    net, group = _group([8, 16, 4], v)
    net.train()
    x = torch.randn(4, 8)
    with torch.no_grad():
        for _ in range(2000):
            net(x)
    got = stuck_weight_fraction(net)["all"]
    # 2000 batches x 180 weights: binomial sd ~0.0002
    assert abs(got - (1 - 0.99**2)) < 0.0015


@pytest.mark.slow  # three short trainings
def test_same_seed_same_weights_on_the_numpy_path():
    v = _raw_model(fractions=(0.005, 0.005))
    a = train("halfmoons", v, epochs=3, seed=3)
    b = train("halfmoons", v, epochs=3, seed=3)
    c = train("halfmoons", v, epochs=3, seed=4)
    for k, w in a.weights["state_dict"].items():
        assert torch.equal(w, b.weights["state_dict"][k])
    assert any(not torch.equal(w, c.weights["state_dict"][k]) for k, w in a.weights["state_dict"].items())
    assert a.stuck_fraction["all"] > 0
