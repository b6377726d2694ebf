"""Issue 24 item 2: biases mapped on their own scale, the same in training, in the Monte
Carlo prediction, in the weight file and on the chip.

The product: a bias much smaller (or larger) than the layer's largest weight keeps its own
precision, because its pair spans the whole working range; the chip computes the layer
with one crossbar by driving the bias row at ``max|b| / max|W|``; a weight file without
``mapping.bias_scale`` still means what it meant (the folded mapping).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from memprog.core.errors import ConfigError
from memprog.hwaware.layers import MLP, HardwareAwareLinear, convert
from memprog.hwaware.mapping import chip_matrix, save_weights, validate_weights, weights_to_pairs
from memprog.hwaware.transfer import TransferSimulator, simulator_from_weights
from memprog.hwaware.variability import VariabilityModel

FIT = {"slope_pct_per_us": 0.0, "intercept_pct": 0.0, "offset_mean_pct": 0.0, "offset_std_pct": 0.0}
DISTURB_US = 3.0  # every device moves by -3 or +3 µS: independent per device, never cancels exactly


def _disturb_only(levels: int = 4, raw: bool = True) -> VariabilityModel:
    """Exact reads (ratio 1 at every level: the numpy path; ``raw=False``: a fitted line of
    zero spread, the torch path), +/-3 µS disturb, no stuck device: a transferred weight's
    error is (d+ - d-) * its scale, nothing else."""
    disturb = pd.DataFrame({"later_writes": [0, 0, 1, 1], "delta_us": [-DISTURB_US, DISTURB_US] * 2})
    lv = np.linspace(100.0, 400.0, levels)
    reads = pd.DataFrame({"level_us": np.repeat(lv, 3), "g_us": np.repeat(lv, 3)})
    return VariabilityModel.from_tables(
        g_range_us=(100.0, 400.0), imprecision_fit=FIT, disturb=disturb,
        stuck_fractions={"hrs": 0.0, "lrs": 0.0}, stuck=pd.DataFrame({"kind": ["hrs"], "g_us": [20.0]}),
        imprecision_raw=reads if raw else None, disturb_min_samples=1,
    )


# a layer whose biases are 1,000x smaller than its largest weight
W = np.array([[40.0, -25.0, 3.0], [-10.0, 5.0, 1.0]])
B = np.array([0.04, -0.01])
RANGE_US = 300.0


def _bias_error_bound(scale_of: float) -> float:
    """The largest error of a weight on a scale of ``scale_of`` per range: both devices
    disturbed by 3 µS in opposite directions."""
    return 2 * DISTURB_US * scale_of / RANGE_US * (1 + 1e-4)


def test_chip_matrix_puts_the_biases_on_their_own_scale():
    a, r = chip_matrix(W, B, "own")
    assert r == pytest.approx(0.04 / 40.0)
    gp, gm, s = weights_to_pairs(a, 100.0, 400.0)
    # the largest bias sits at the top of the range, as the largest weight does
    assert max(gp[-1].max(), gm[-1].max()) == pytest.approx(400.0)
    assert max(gp[:-1].max(), gm[:-1].max()) == pytest.approx(400.0)
    # the chip's output: inputs times the weight rows plus the bias row driven at r
    x = np.array([0.3, -1.2, 2.0])
    np.testing.assert_allclose(x @ ((gp - gm)[:-1] * s) + r * (gp - gm)[-1] * s, W @ x + B)
    # folded: the biases on the weights' scale (40 per 300 µS) sit 0.3 µS above g_min
    a0, r0 = chip_matrix(W, B, "folded")
    gp0, gm0, _ = weights_to_pairs(a0, 100.0, 400.0)
    assert r0 == 1.0 and max(gp0[-1].max(), gm0[-1].max()) < 101.0


def test_chip_matrix_degenerate_layers_keep_the_folded_mapping():
    assert chip_matrix(W, np.zeros(2), "own")[1] == 1.0
    assert chip_matrix(np.zeros_like(W), B, "own")[1] == 1.0
    with pytest.raises(ConfigError, match="bias_scale"):
        chip_matrix(W, B, "shared")


def test_monte_carlo_samples_the_bias_on_its_own_scale():
    v = _disturb_only()
    own = TransferSimulator([(W, B)], v, bias_scale="own").transferred_layers(400, torch.Generator().manual_seed(0))[0]
    fold = TransferSimulator([(W, B)], v, bias_scale="folded").transferred_layers(400, torch.Generator().manual_seed(0))[0]
    err_own = (own[:, :, 3] - torch.as_tensor(B, dtype=torch.float32)).abs()
    err_fold = (fold[:, :, 3] - torch.as_tensor(B, dtype=torch.float32)).abs()
    assert float(err_own.max()) <= _bias_error_bound(0.04)
    assert float(err_fold.max()) > 100 * _bias_error_bound(0.04)  # the folded mapping: 40/300 per µS
    # the weights keep their scale either way
    werr = (own[:, :, :3] - torch.as_tensor(W, dtype=torch.float32)).abs()
    assert float(werr.max()) <= _bias_error_bound(40.0) and float(werr.max()) > _bias_error_bound(0.04)


@pytest.mark.parametrize("path", ["numpy", "torch", "unfused"])
def test_training_transfer_maps_the_biases_on_their_own_scale(path):
    """The forward pass of every training path (the fused group's numpy and torch rounds,
    an unfused layer) sees biases transferred on their own scale."""
    v = _disturb_only(raw=path != "torch")  # the fitted line: the torch round
    torch.manual_seed(0)
    net = MLP([3, 2, 1])
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.as_tensor(W))
        net.layers[0].bias.copy_(torch.as_tensor(B))
    convert(net, v, generator=torch.Generator().manual_seed(1), fuse=path != "unfused")
    layer = net.layers[0]
    assert isinstance(layer, HardwareAwareLinear)
    if path != "unfused":
        assert (layer._group._np is not None) == (path == "numpy")
    net.train()
    x = torch.zeros(1, 3, dtype=layer.weight.dtype)
    for _ in range(50):
        # a zero input: the first layer's output is its transferred bias
        b_t = net.layers[0](x)[0].detach().double().numpy()
        if path != "unfused":
            net.layers[1](torch.zeros(1, 2, dtype=layer.weight.dtype))  # the group's next round
        assert np.abs(b_t - B).max() <= _bias_error_bound(0.04) + 1e-6


@pytest.mark.slow  # a (2-epoch) training: ~1-2 s
def test_training_writes_the_bias_scale_and_the_mc_reads_it():
    from memprog.hwaware.training import train

    v = VariabilityModel.from_preset("tio2_passive")
    res = train("halfmoons", v, hardware_aware=True, epochs=2, seed=0)
    assert res.weights["mapping"]["bias_scale"] == "own"
    assert simulator_from_weights(res.weights, v).bias_scale == "own"
    old = dict(res.weights, mapping={k: x for k, x in res.weights["mapping"].items() if k != "bias_scale"})
    validate_weights(old)  # a file written before the key still loads ...
    assert simulator_from_weights(old, v).bias_scale == "folded"  # ... and means the folded mapping
    with pytest.raises(ConfigError, match="bias_scale"):
        validate_weights(dict(res.weights, mapping=dict(res.weights["mapping"], bias_scale="half")))
    with pytest.raises(ConfigError, match="bias_scale"):
        train("halfmoons", v, hardware_aware=True, epochs=1, bias_scale="shared")


def _weight_file(tmp_path, bias_scale: str | None):
    sd = {"layers.0.weight": torch.tensor(W, dtype=torch.float32), "layers.0.bias": torch.tensor(B, dtype=torch.float32),
          "layers.1.weight": torch.tensor([[2.0, -3.0]]), "layers.1.bias": torch.tensor([0.5])}
    mapping = {"scheme": "differential", "g_min_us": 100.0, "g_max_us": 400.0}
    if bias_scale is not None:
        mapping["bias_scale"] = bias_scale
    obj = {"format": "memprog.weights/1", "dataset": "halfmoons", "sizes": [3, 2, 1], "activation": "sigmoid",
           "output": "sigmoid", "state_dict": sd, "mapping": mapping, "hardware_aware": True, "seed": 0,
           "epochs": 1, "variability_source": "test"}
    return save_weights(obj, tmp_path / f"w_{bias_scale}.pt")


def test_program_job_reads_the_bias_scale_and_old_files_stay_folded(tmp_path):
    from memprog.jobs.weights import load_program_input

    own = load_program_input(_weight_file(tmp_path, "own"))
    old = load_program_input(_weight_file(tmp_path, None))
    assert own.bias_scale == "own" and old.bias_scale == "folded"
    assert old.bias_drives == [1.0, 1.0]
    np.testing.assert_array_equal(old.chip_matrices()[0], np.vstack([W.T, B[None]]).astype(np.float32))
    assert own.bias_drives[0] == pytest.approx(0.001) and own.bias_drives[1] == pytest.approx(0.5 / 3.0)
    # the same network either way (what the software computes does not depend on the mapping)
    x = np.random.default_rng(0).normal(size=(20, 3))
    np.testing.assert_allclose(own.forward(x), old.forward(x))


def test_the_chip_vmm_drives_the_bias_row_at_its_drive(tmp_path):
    """The plan's conductances on an ideal crossbar: the chip's VMM scores are the
    software's only when the bias row is driven at max|b|/max|W| (driven at 1, as for a
    folded file, the tiny bias would count 1,000x too much)."""
    from memprog.hwaware.placement import place_network
    from memprog.jobs.program_inference import effective_matrices, vmm_forward
    from memprog.jobs.program_plan import Plan
    from memprog.jobs.weights import load_program_input

    net = load_program_input(_weight_file(tmp_path, "own"))
    mats = net.chip_matrices()
    pl = place_network([m.shape for m in mats], (8, 8), 1)
    cells = pl.cells()
    g = np.empty(cells["row"].size)
    scales = []
    for k, m in enumerate(mats):
        gp, gm, s = weights_to_pairs(m, 100.0, 400.0)
        scales.append(s)
        sel = cells["layer"] == k
        g[sel] = np.where(cells["sign"][sel] > 0, gp[cells["i"][sel], cells["j"][sel]], gm[cells["i"][sel], cells["j"][sel]])
    cells["g_us"] = g
    plan = Plan(pl, cells, scales, {}, np.zeros(g.size, bool), np.full(g.size, np.nan), net.bias_drives)
    chip = np.zeros((8, 8))
    chip[cells["row"], cells["col"]] = g

    def vmm(v):  # an ideal crossbar: column currents (A) from row voltages and G (µS)
        return (np.asarray(v) @ chip) * 1e-6

    x = np.random.default_rng(1).normal(size=(16, 3))
    np.testing.assert_allclose(vmm_forward(net, plan, x, vmm, 8, 0.2), net.forward(x), rtol=1e-9, atol=1e-12)
    # the read-out path: the chip's matrices, in the same units, give the same network
    np.testing.assert_allclose(net.forward(x, effective_matrices(plan, g)), net.forward(x), rtol=1e-9)


@pytest.mark.slow  # loads the bench room and a bench file: ~0.4 s
def test_on_bench_prediction_maps_the_biases_as_the_file_says(tmp_path):
    """`evaluate --on-bench`'s Monte Carlo side reads the file's mapping: an old file (no
    key) is predicted folded, an own-scale file on its own scale."""
    from memprog.hwaware.order import network_later_writes
    from memprog.jobs.evaluate import compare_with_prediction

    v = _disturb_only()
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)

    def chips(bench, seeds, net, params, test_set, progress, **kw):
        return [{"seed": s, "chip_accuracy": 0.5} for s in seeds]

    keys = network_later_writes([3, 2, 1], (12, 24))
    for bias_scale in (None, "own"):
        out = compare_with_prediction(_weight_file(tmp_path, bias_scale), "sim_tio2_crossbar", 1, v, (x, y),
                                      mc_transfers=100, program_chips=chips)
        expect = {}
        for bs in ("folded", "own"):
            sim = TransferSimulator([(W, B), (np.array([[2.0, -3.0]]), np.array([0.5]))], v, bias_scale=bs,
                                    g_range_us=(100.0, 400.0), later_writes=keys)
            expect[bs] = float(sim.evaluate(x, y, 100, seed=1).transfer_accuracy.mean())
        assert expect["folded"] != expect["own"]  # the two mappings predict differently here
        assert out["predicted"]["mean"] == pytest.approx(expect[bias_scale or "folded"], abs=1e-6)
