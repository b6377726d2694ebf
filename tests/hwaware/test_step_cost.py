"""Issue 24 item 6: the cheaper hardware-aware training step samples the same noise.

The step was made cheaper (fewer full-size passes in the draw, int32 indices, parameters in
one flat storage, the stuck freeze as one masked op); these tests pin what must not change:
the law of the sampled noise (recorded samples reached with their frequencies, tails
included, stuck fractions), the training forward pass against the independent Monte Carlo
evaluation path, and a correct fall-back when the parameters leave the shared storage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from memprog.hwaware.layers import MLP, convert
from memprog.hwaware.training import _StuckFreezer
from memprog.hwaware.transfer import TransferSimulator
from memprog.hwaware.variability import VariabilityModel

FIT = {"slope_pct_per_us": -6e-4, "intercept_pct": 0.7, "offset_mean_pct": -0.5, "offset_std_pct": 0.3}
LEVELS = np.linspace(100.0, 400.0, 4)


def _raw_model(fractions=(0.02, 0.03)) -> VariabilityModel:
    """Disturb rows with distinct recorded samples (a far tail in row 2), raw reads at four
    equidistant levels with 5 distinct ratios each, HRS/LRS stuck samples."""
    disturb = pd.DataFrame({
        "later_writes": [1] * 4 + [2] * 5,
        "delta_us": [-3.0, -1.0, 1.0, 3.0, -2.0, 0.0, 2.0, 4.0, 45.0],
    })
    ratios = np.array([0.97, 0.99, 1.0, 1.01, 1.05])
    reads = pd.DataFrame({"level_us": np.repeat(LEVELS, 5), "g_us": (LEVELS[:, None] * ratios).ravel()})
    stuck = pd.DataFrame({"kind": ["hrs", "hrs", "lrs"], "g_us": [20.0, 40.0, 600.0]})
    return VariabilityModel.from_tables(
        g_range_us=(100.0, 400.0), imprecision_fit=FIT, disturb=disturb,
        stuck_fractions={"hrs": fractions[0], "lrs": fractions[1]}, stuck=stuck,
        imprecision_raw=reads, disturb_min_samples=1,
    )


def test_draw_reaches_every_recorded_sample_with_its_frequency_and_the_stated_stuck_fractions():
    v = _raw_model()
    lw = torch.tensor([1, 2] * 500)
    n = 400
    d = v.draw(n, lw, torch.Generator().manual_seed(3))
    stuck = d.stuck.numpy()
    # stuck fractions as stated (5 % of 400,000 devices: binomial sd 0.03 %), HRS:LRS = 2:3
    assert abs(stuck.mean() - 0.05) < 0.002
    sv = d.disturb_us.numpy()[stuck]
    assert abs((sv < 100).mean() - 0.4) < 0.02 and set(np.unique(sv)) == {20.0, 40.0, 600.0}
    imp = d.imp_index.numpy()
    assert (imp[stuck] == 5).all()  # a stuck device keeps only its stuck value (the 0 column)
    live = ~stuck
    for key, samples in ((1, [-3.0, -1.0, 1.0, 3.0]), (2, [-2.0, 0.0, 2.0, 4.0, 45.0])):
        got = d.disturb_us.numpy()[live & (lw.numpy() == key)[None, :]]
        vals, counts = np.unique(got, return_counts=True)
        assert list(vals) == samples  # every recorded sample, the 45 µS tail included, nothing else
        freq = counts / counts.sum()
        assert np.abs(freq - 1 / len(samples)).max() < 0.01  # equally likely (n ~ 95,000 each)
    # the read index: uniform over the 5 recorded ratios and independent of the disturb pick
    li = imp[live]
    assert set(np.unique(li)) == set(range(5))
    assert np.abs(np.bincount(li) / li.size - 0.2).max() < 0.01
    big = d.disturb_us.numpy()[live] == 45.0
    assert np.abs(np.bincount(li[big], minlength=5) / big.sum() - 0.2).max() < 0.02


def test_training_forward_samples_the_monte_carlo_law_of_the_same_weights():
    """The fused training round (flat storage, its own mapping code) and TransferSimulator
    (the evaluation path) give the same per-weight mean and spread over many transfers."""
    v = _raw_model(fractions=(0.01, 0.01))
    torch.manual_seed(0)
    net = convert(MLP([3, 6, 2]), v, generator=torch.Generator().manual_seed(1))
    net.train()
    group = net.layers[0]._group
    rounds = 3000
    got = []
    for _ in range(rounds):
        group._round()
        got.append(torch.cat([
            torch.cat([(dw + layer.weight.detach() * kw), (db + layer.bias.detach() * kb)[:, None]], 1).reshape(-1)
            for layer, (dw, db, kw, kb) in zip(net.layers, group._slices, strict=True)
        ]))
    train = torch.stack(got)
    sim = TransferSimulator([(m.weight.detach(), m.bias.detach()) for m in net.layers], v)
    mc = torch.cat([a.reshape(rounds, -1) for a in sim.transferred_layers(rounds, torch.Generator().manual_seed(9))], 1)
    sd = mc.std(0)
    # means agree within 5 standard errors; spreads within 15 % (stuck values are the tails)
    assert ((train.mean(0) - mc.mean(0)).abs() <= 5 * sd / rounds**0.5 + 1e-6).all()
    assert ((train.std(0) / sd - 1).abs() < 0.15).all()


def test_parameters_leaving_the_shared_storage_fall_back_correctly():
    v = _raw_model()
    torch.manual_seed(0)
    net = convert(MLP([3, 5, 2]), v, generator=torch.Generator().manual_seed(2))
    group = net.layers[0]._group
    assert group.flat_weights() is not None
    assert net.layers[1].weight.data_ptr() == group.flat.data_ptr() + 4 * 20  # views of one storage
    # re-home one parameter (what .to() or .data = ... does) and change it
    net.layers[1].weight.data = torch.full((2, 5), 0.5)
    assert group.flat_weights() is None
    net.train()
    group._round()
    dw, _, kw, _ = group._slices[1]
    tw = dw + net.layers[1].weight.detach() * kw
    # transferred from the new weights: 0.5 everywhere maps to the top of the range
    assert abs(float(tw[kw == 1].mean()) - 0.5) < 0.05
    # the freezer still keeps stuck weights where they were, layer by layer
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    freezer = _StuckFreezer(net)
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    checked = 0
    for _ in range(6):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        before = [(m.weight.detach().clone(), m.current_keep) for m in net.layers]
        freezer.step(opt)
        for m, (w0, keep) in zip(net.layers, before, strict=True):
            if keep is not None:
                frozen = keep[0] == 0
                assert torch.equal(m.weight[frozen], w0[frozen])
                checked += int(frozen.sum())
    assert checked > 0
