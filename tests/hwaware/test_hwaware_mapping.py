"""Contract B: weights <-> differential pairs, the layout, and the weight file (refused when not
what it claims, never unpickled blindly). Backend: none (pure numpy/torch)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from memprog.core.errors import ConfigError
from memprog.hwaware.mapping import (
    WEIGHTS_FORMAT,
    fold_bias,
    later_writes,
    layer_pairs,
    load_weights,
    pairs_to_weights,
    save_weights,
    unfold_bias,
    weights_to_pairs,
)


def test_pairs_round_trip_and_convention():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 8))
    gp, gm, scale = weights_to_pairs(w, 100.0, 400.0)
    np.testing.assert_allclose(pairs_to_weights(gp, gm, scale), w, atol=1e-12)
    assert scale == pytest.approx(np.abs(w).max() / 300.0)
    # the larger of the pair carries |w|, the other sits at g_min; the largest weight at g_max
    np.testing.assert_allclose(np.minimum(gp, gm), 100.0)
    assert max(gp.max(), gm.max()) == pytest.approx(400.0)
    assert ((gp > gm) == (w > 0)).all()


def test_pairs_zero_matrix_and_bad_input():
    gp, gm, scale = weights_to_pairs(np.zeros((2, 2)), 100.0, 400.0)
    assert scale == 0.0 and (gp == 100).all() and (gm == 100).all()
    with pytest.raises(ConfigError, match="g_max_us"):
        weights_to_pairs(np.ones(3), 400.0, 100.0)
    with pytest.raises(ConfigError, match="non-finite"):
        weights_to_pairs(np.array([1.0, np.nan]), 100.0, 400.0)


def test_fold_bias_and_layout():
    w, b = np.arange(6.0).reshape(2, 3), np.array([7.0, 8.0])
    a = fold_bias(w, b)
    assert a.shape == (4, 2) and (a[-1] == b).all() and (a[:3] == w.T).all()
    w2, b2 = unfold_bias(a)
    assert (w2 == w).all() and (b2 == b).all()
    lw = later_writes(3, 2)  # 3 rows x 4 columns, row-major
    assert lw.shape == (2, 2, 3)
    assert lw[0, 0, 0] == 11 and lw[1, 0, 0] == 10 and lw[0, 1, 0] == 9
    assert lw[1, 1, 2] == 0  # the last device programmed
    assert sorted(lw.ravel()) == list(range(12))


def _weights(**over):
    torch.manual_seed(0)
    obj = {
        "format": WEIGHTS_FORMAT,
        "dataset": "halfmoons",
        "sizes": [2, 8, 1],
        "activation": "sigmoid",
        "output": "sigmoid",
        "state_dict": {
            "layers.0.weight": torch.randn(8, 2),
            "layers.0.bias": torch.randn(8),
            "layers.1.weight": torch.randn(1, 8),
            "layers.1.bias": torch.randn(1),
        },
        "mapping": {"scheme": "differential", "g_min_us": 100.0, "g_max_us": 400.0},
        "hardware_aware": True,
        "seed": 0,
        "epochs": 1,
        "variability_source": "preset:tio2_passive",
    }
    obj.update(over)
    return obj


def test_save_load_round_trip(tmp_path):
    p = save_weights(_weights(), tmp_path / "w.pt")
    w = load_weights(p)
    assert w["sizes"] == [2, 8, 1] and w["mapping"]["g_max_us"] == 400.0
    pairs = layer_pairs(w["state_dict"], w["sizes"], 100.0, 400.0)
    assert [gp.shape for gp, _, _ in pairs] == [(3, 8), (9, 1)]


@pytest.mark.parametrize(
    "over, match",
    [
        ({"format": "other/1"}, "format"),
        ({"sizes": [2, 4, 1]}, "shape"),
        ({"dataset": "mnist"}, "dataset"),
        ({"mapping": {"scheme": "single", "g_min_us": 1.0, "g_max_us": 2.0}}, "scheme"),
        ({"output": "softmax"}, "sizes"),
    ],
)
def test_weights_refused_when_not_what_they_claim(tmp_path, over, match):
    p = tmp_path / "bad.pt"
    torch.save(_weights(**over), p)
    with pytest.raises(ConfigError, match=match):
        load_weights(p)


def test_non_finite_weights_refused(tmp_path):
    obj = _weights()
    obj["state_dict"]["layers.0.bias"][0] = float("inf")
    torch.save(obj, tmp_path / "inf.pt")
    with pytest.raises(ConfigError, match="finite"):
        load_weights(tmp_path / "inf.pt")


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_pickled_code_never_runs(tmp_path, capsys):
    p = tmp_path / "evil.pt"
    torch.save({"format": WEIGHTS_FORMAT, "payload": _Evil()}, p)
    with pytest.raises(ConfigError, match="weights_only"):
        load_weights(p)
    assert "unpickled code ran" not in capsys.readouterr().out
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(ConfigError, match="weights"):
        load_weights(raw)
    assert "unpickled code ran" not in capsys.readouterr().out
    (tmp_path / "text.pt").write_text("not a torch file")
    with pytest.raises(ConfigError):
        load_weights(tmp_path / "text.pt")
    with pytest.raises(ConfigError, match="existing"):
        load_weights(tmp_path / "missing.pt")
