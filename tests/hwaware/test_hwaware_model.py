"""VariabilityModel (synthetic tables, presets, a duck-typed DB), the hardware-aware layer
(reparametrization, stuck-gradient mask) and Monte Carlo transfer evaluation.
Backend: torch on the CPU (a CUDA case runs only where a GPU is present)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from memprog.core.errors import ConfigError
from memprog.hwaware.layers import MLP, HardwareAwareLinear, convert
from memprog.hwaware.mapping import later_writes
from memprog.hwaware.transfer import TransferResult, TransferSimulator
from memprog.hwaware.variability import VariabilityModel

FIT0 = {"slope_pct_per_us": 0.0, "intercept_pct": 0.0, "offset_mean_pct": 0.0, "offset_std_pct": 0.0}


def _model(fit=FIT0, disturb=None, fractions=None, stuck=None, g=(100.0, 400.0), **kw):
    if disturb is None:
        disturb = pd.DataFrame({"later_writes": [0], "delta_us": [0.0]})
    if stuck is None:
        stuck = pd.DataFrame({"kind": ["hrs", "lrs"], "g_us": [50.0, 600.0]})
    return VariabilityModel.from_tables(
        g_range_us=g, imprecision_fit=fit, disturb=disturb,
        stuck_fractions=fractions or {"hrs": 0.0, "lrs": 0.0}, stuck=stuck, **kw,
    )


def test_disturb_sampled_by_later_writes_rows():
    # key k holds samples of exactly -k µS; key 2 is missing (takes key 1), 0 is missing (no disturb)
    lw = [1, 1, 3, 3, 3, 4]
    d = pd.DataFrame({"later_writes": lw, "delta_us": [-float(k) for k in lw]})
    m = _model(disturb=d, disturb_min_samples=1)  # each key alone (issue 24 pools sparse keys)
    assert m.max_later_writes == 4 and m.notes
    k = torch.tensor([0, 1, 2, 3, 4, 9])
    g = torch.full((6,), 200.0)
    out = m.sample(g, k, 50, torch.Generator().manual_seed(0))
    assert out.shape == (50, 6)
    expect = torch.tensor([200.0, 199.0, 199.0, 197.0, 196.0, 196.0])  # 9 > 4: the last row
    assert torch.equal(out, expect.expand(50, 6))


def test_imprecision_offset_and_stuck_statistics():
    fit = {"slope_pct_per_us": 0.0, "intercept_pct": 1.0, "offset_mean_pct": -0.5, "offset_std_pct": 0.0}
    m = _model(fit=fit)
    g = torch.full((200_000,), 300.0)
    out = m.sample(g, torch.zeros_like(g, dtype=torch.long), 1, torch.Generator().manual_seed(1))[0]
    rel = out / 300.0 - 1
    assert rel.mean().item() == pytest.approx(-0.005, abs=2e-4)
    assert rel.std().item() == pytest.approx(0.01, rel=0.02)
    stuck = pd.DataFrame({"kind": ["hrs", "hrs", "lrs"], "g_us": [10.0, 20.0, 600.0]})
    m = _model(fractions={"hrs": 0.1, "lrs": 0.05}, stuck=stuck)
    out = m.sample(g, torch.zeros_like(g, dtype=torch.long), 1, torch.Generator().manual_seed(2))[0]
    assert (out == 10).float().mean().item() == pytest.approx(0.05, abs=0.004)
    assert (out == 20).float().mean().item() == pytest.approx(0.05, abs=0.004)
    assert (out == 600).float().mean().item() == pytest.approx(0.05, abs=0.004)
    assert (out == 300).float().mean().item() == pytest.approx(0.85, abs=0.005)


def test_validation_names_the_parameter():
    with pytest.raises(ConfigError, match="imprecision line"):
        _model(fit={**FIT0, "slope_pct_per_us": -0.01, "intercept_pct": 1.0})  # < 0 at 400 µS
    with pytest.raises(ConfigError, match="stuck fractions"):
        _model(fractions={"hrs": 0.6, "lrs": 0.5})
    with pytest.raises(ConfigError, match="stuck_lrs_us"):
        _model(fractions={"hrs": 0.0, "lrs": 0.1}, stuck=pd.DataFrame({"kind": ["hrs"], "g_us": [5.0]}))
    with pytest.raises(ConfigError, match="disturb"):
        _model(disturb=pd.DataFrame({"later_writes": [], "delta_us": []}))


def test_from_preset_follows_the_presets_fit_of_drolets_disturb_table():
    m = VariabilityModel.from_preset("tio2_passive")
    assert (m.g_min_us, m.g_max_us) == (100.0, 400.0)
    assert m.source == "preset:tio2_passive"
    row = lambda k: m.disturb_us[k, : int(m.disturb_counts[k])]  # noqa: E731
    for k, mean, std in ((1, -0.63, 8.2), (5, -3.4, 13.4), (13, -8.0, 16.5), (29, -11.2, 22.6)):
        # the power laws fitted to Drolet's table give its means within ~25 %, the stds within ~10 %
        assert row(k).mean().item() == pytest.approx(mean, abs=0.3 + 0.25 * abs(mean))
        assert row(k).std().item() == pytest.approx(std, rel=0.1)
    assert row(0).abs().max().item() == 0.0
    with pytest.raises(ConfigError, match="characterize"):
        VariabilityModel.from_preset("hfo2_1t1r")
    with pytest.raises(ConfigError, match="technology"):
        VariabilityModel.from_preset("nope")


class _FakeDB:
    url = "sqlite:///x.sqlite"

    def __init__(self, missing=False):
        self.missing = missing

    def g_range_us(self):
        return (100.0, 400.0)

    def imprecision_fit(self):
        if self.missing:
            raise ConfigError("imprecision", "no data", detail="run `memprog characterize --tests imprecision`")
        return {"slope_pct_per_us": -6e-4, "intercept_pct": 0.7, "offset_mean_pct": -0.5, "offset_std_pct": 0.3}

    def disturb(self):
        return pd.DataFrame({"later_writes": [0, 1, 2], "delta_us": [0.0, -1.0, -2.0]})

    def stuck_fractions(self):
        return {"hrs": 0.01, "lrs": 0.0, "cells": 100}

    def stuck(self):
        return pd.DataFrame({"kind": ["hrs"], "g_us": [30.0], "row": [0], "col": [0], "chip_id": ["c"]})


def test_from_db_is_a_thin_adapter():
    m = VariabilityModel.from_db(_FakeDB())
    assert m.source.startswith("db:") and m.max_later_writes == 2 and m.stuck_hrs_fraction == 0.01
    with pytest.raises(ConfigError, match="characterize"):
        VariabilityModel.from_db(_FakeDB(missing=True))


def test_layer_forward_is_the_transfer_and_stuck_gradients_are_masked():
    stuck = pd.DataFrame({"kind": ["hrs", "lrs"], "g_us": [50.0, 600.0]})
    fit = {"slope_pct_per_us": -6e-4, "intercept_pct": 0.7, "offset_mean_pct": -0.5, "offset_std_pct": 0.3}
    m = _model(fit=fit, fractions={"hrs": 0.15, "lrs": 0.15}, stuck=stuck)
    torch.manual_seed(0)
    layer = HardwareAwareLinear(5, 4, m, chunk=3, generator=torch.Generator().manual_seed(3))
    x = torch.randn(16, 5)
    for _ in range(5):  # crosses a chunk boundary
        layer.train()
        i = layer._next % layer.chunk if layer._draws is not None else 0
        out = layer(x)
        draw = layer._draws[i]
        keep = layer._keep[0][i]
        a_t = layer.transferred(draw)
        ref = F.linear(x, a_t[:, :5], a_t[:, 5])
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        # gradient: the gradient at the transferred weights, zero where a device is stuck
        w_leaf = a_t[:, :5].clone().requires_grad_(True)
        b_leaf = a_t[:, 5].clone().requires_grad_(True)
        F.linear(x, w_leaf, b_leaf).square().sum().backward()
        layer.zero_grad()
        out.square().sum().backward()
        torch.testing.assert_close(layer.weight.grad, w_leaf.grad * keep[:, :5], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(layer.bias.grad, b_leaf.grad * keep[:, 5], rtol=1e-5, atol=1e-5)
        assert (keep == 0).any()
    layer.eval()
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))


def test_convert_keeps_state_dict_keys_and_weights():
    net = MLP([2, 8, 1])
    before = {k: v.clone() for k, v in net.state_dict().items()}
    convert(net, VariabilityModel.from_preset("tio2_passive"))
    assert all(isinstance(layer, HardwareAwareLinear) for layer in net.layers)
    after = net.state_dict()
    assert list(after) == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    for k in before:
        assert torch.equal(before[k], after[k])


def _sim(model, device="cpu"):
    torch.manual_seed(1)
    layers = [(torch.randn(8, 2), torch.randn(8)), (torch.randn(1, 8), torch.randn(1))]
    return TransferSimulator(layers, model, device=device), layers


def test_transfers_vectorised_equal_one_by_one():
    m = VariabilityModel.from_preset("tio2_passive")
    sim, layers = _sim(m)
    x = torch.rand(30, 2)
    gen = torch.Generator().manual_seed(5)
    tl = sim.transferred_layers(7, gen)
    batched = sim.logits(x, tl)  # (7, 1, 30)
    for t in range(7):
        h = x
        for i, a in enumerate(tl):
            h = F.linear(h, a[t, :, :-1], a[t, :, -1])
            if i == 0:
                h = torch.sigmoid(h)
        torch.testing.assert_close(batched[t, 0], h[:, 0], rtol=1e-5, atol=1e-5)
    # the mapping round-trips: without variability a transfer is the ideal network
    ideal = _model()
    sim0, _ = _sim(ideal)
    a0 = sim0.transferred_layers(2, gen)[0][0]
    torch.testing.assert_close(a0, torch.cat([layers[0][0], layers[0][1][:, None]], 1), rtol=1e-5, atol=1e-5)


def test_evaluate_is_reproducible_and_ideal_without_variability():
    x = torch.rand(50, 2)
    y = (x[:, 0] > 0.5).long()
    sim0, _ = _sim(_model())
    r0 = sim0.evaluate(x, y, 300, seed=0)
    ideal_correct = sim0._correct(sim0.ideal_logits(x).T[None], y)[0].numpy()
    assert set(np.unique(r0.correct_counts)) <= {0, 300}
    assert ((r0.correct_counts == 300) == ideal_correct).all()
    sim, _ = _sim(VariabilityModel.from_preset("tio2_passive"))
    a = sim.evaluate(x, y, 500, seed=4, block=64)
    b = sim.evaluate(x, y, 500, seed=4, block=64)
    assert np.array_equal(a.correct_counts, b.correct_counts)
    s = a.summary()
    assert s["test_accuracy_mean"] == pytest.approx(a.correct_counts.sum() / (500 * 50))
    assert sum(r["points"] for r in s["table"]) == 50


def test_table_bins_are_exact():
    counts = np.array([1000, 999, 950, 949, 900, 800, 700, 600, 500, 499, 0])
    r = TransferResult(counts, 1000, np.zeros(1000), 1.0)
    assert [row["points"] for row in r.table()] == [1, 2, 2, 1, 1, 1, 1, 2]
    assert r.fraction_at_least(95) == pytest.approx(3 / 11)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_evaluate_on_cuda_matches_shapes():  # pragma: no cover - needs a GPU
    sim, _ = _sim(VariabilityModel.from_preset("tio2_passive"), device="cuda")
    r = sim.evaluate(torch.rand(20, 2), torch.zeros(20), 1000)
    assert r.correct_counts.shape == (20,)


def test_later_writes_buffer_matches_mapping():
    layer = HardwareAwareLinear(3, 2, None)
    assert torch.equal(layer.later_writes, torch.as_tensor(later_writes(4, 2)))


def test_fused_model_equals_layer_by_layer_and_masks_stuck():
    lw = list(range(0, 40))
    d = pd.DataFrame({"later_writes": lw, "delta_us": [-0.5 * k for k in lw]})
    m = _model(disturb=d, disturb_min_samples=1)  # deterministic: disturb by position only
    torch.manual_seed(0)
    fused = convert(MLP([3, 5, 2]), m)
    torch.manual_seed(0)
    single = convert(MLP([3, 5, 2]), m, fuse=False)
    x = torch.randn(7, 3)
    fused.train()
    single.train()
    for _ in range(3):
        torch.testing.assert_close(fused(x), single(x), rtol=1e-5, atol=1e-5)
    # stuck devices: zero gradient exactly where a weight's device is stuck
    m = _model(fractions={"hrs": 0.2, "lrs": 0.1})
    net = convert(MLP([3, 5, 2]), m, generator=torch.Generator().manual_seed(0))
    net.train()
    net(x).sum().backward()
    group = net.layers[0]._group
    for layer, (_, _, keep_w, keep_b) in zip(net.layers, group._slices, strict=True):
        assert (keep_w == 0).any()
        assert bool(((keep_w == 0) <= (layer.weight.grad == 0)).all())  # stuck => no gradient
        assert bool(((keep_b == 0) <= (layer.bias.grad == 0)).all())
        assert bool((layer.weight.grad[keep_w == 1] != 0).any())
    assert 0.3 < group.stuck_weights / (group.batches * group.later_writes.shape[1]) < 0.7
