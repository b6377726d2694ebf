"""Weight files for ``memprog program``: every format loads, every bad file is refused with
a clear ConfigError before anything is sent, and no pickle is ever executed. No bench."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from memprog.core.errors import ConfigError
from memprog.jobs.weights import ConductanceMap, Network, load_program_input, load_test_set


def _sd(seed: int = 0, sizes=(4, 3, 2)) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        sd[f"layers.{k}.weight"] = torch.randn(b, a, generator=g)
        sd[f"layers.{k}.bias"] = torch.randn(b, generator=g)
    return sd


def _memprog_file(path: Path, sd=None, **over) -> Path:
    d = {
        "format": "memprog.weights/1",
        "dataset": "digits",
        "sizes": [4, 3, 2],
        "activation": "relu",
        "output": "softmax",
        "state_dict": sd or _sd(),
        "mapping": {"scheme": "differential", "g_min_us": 60.0, "g_max_us": 400.0},
        "hardware_aware": True,
        "seed": 1,
        "epochs": 3,
        "variability_source": "preset:hfo2_1t1r",
    }
    d.update(over)
    torch.save(d, path)
    return path


def test_memprog_weights_file(tmp_path):
    net = load_program_input(_memprog_file(tmp_path / "w.pt"))
    assert isinstance(net, Network)
    assert net.sizes == [4, 3, 2]
    assert (net.activation, net.output) == ("relu", "softmax")
    assert net.mapping == {"scheme": "differential", "g_min_us": 60.0, "g_max_us": 400.0}
    assert net.meta["hardware_aware"] is True
    mats = net.chip_matrices()
    assert [m.shape for m in mats] == [(5, 3), (4, 2)]  # bias folded in as the last row
    x = np.random.default_rng(0).random((7, 4))
    assert net.forward(x).shape == (7, 2)


def test_plain_state_dict_npz_safetensors_agree(tmp_path):
    from safetensors.numpy import save_file

    sd = _sd(3)
    torch.save(sd, tmp_path / "sd.pt")
    np.savez(tmp_path / "w.npz", **{k: v.numpy() for k, v in sd.items()})
    np.savez(
        tmp_path / "wb.npz",
        W0=sd["layers.0.weight"].numpy().T, b0=sd["layers.0.bias"].numpy(),
        W1=sd["layers.1.weight"].numpy().T, b1=sd["layers.1.bias"].numpy(),
        activation=np.array("tanh"),
    )
    save_file({k: v.numpy() for k, v in sd.items()}, str(tmp_path / "w.safetensors"), metadata={"activation": "relu"})
    nets = [load_program_input(tmp_path / f) for f in ("sd.pt", "w.npz", "wb.npz", "w.safetensors")]
    for n in nets[1:]:
        for a, b in zip(nets[0].chip_matrices(), n.chip_matrices(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    assert nets[0].activation == "sigmoid" and nets[0].output == "softmax"  # defaults
    assert nets[2].activation == "tanh" and nets[3].activation == "relu"  # from the file


def test_conductance_maps(tmp_path):
    m = np.full((3, 4), 200.0)
    m[1, 2] = np.nan
    np.save(tmp_path / "m.npy", m)
    np.savetxt(tmp_path / "m.csv", m, delimiter=",")
    for f in ("m.npy", "m.csv"):
        cm = load_program_input(tmp_path / f)
        assert isinstance(cm, ConductanceMap)
        assert cm.map_us.shape == (3, 4) and np.isnan(cm.map_us[1, 2])


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: torch.save({"layers.0.weight": torch.tensor([[1.0, float("nan")]])}, p / "w.pt"), "finite"),
        (lambda p: torch.save({"layers.0.weight": torch.tensor([[1.0, float("inf")]])}, p / "w.pt"), "finite"),
        (
            lambda p: torch.save({"a.weight": torch.ones(3, 4), "b.weight": torch.ones(2, 5)}, p / "w.pt"),
            "output width",
        ),
        (lambda p: torch.save({"a.weight": torch.ones(3, 4), "a.bias": torch.ones(4)}, p / "w.pt"), "bias shape"),
        (lambda p: torch.save({"a.weight": torch.ones(3)}, p / "w.pt"), "2-D"),
        (lambda p: torch.save({"running_mean": torch.ones(3)}, p / "w.pt"), "weight"),
        (lambda p: (p / "w.pt").write_text("not a torch file"), "zip archive"),
        (lambda p: (p / "w.npz").write_text("not an npz"), "zip archive"),
        (lambda p: (p / "w.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{oops"), "safetensors"),
        (lambda p: np.save(p / "w.npy", np.array([{"a": 1}], dtype=object)), "pickled"),
        (lambda p: np.save(p / "w.npy", np.ones(5)), "2-D"),
        (lambda p: np.save(p / "w.npy", np.array([[1.0, np.inf]])), "finite"),
        (lambda p: np.save(p / "w.npy", np.array([[1.0, -3.0]])), "> 0"),
        (lambda p: (p / "w.csv").write_text("1,2\nx,y\n"), "comma-separated"),
        (lambda p: (p / "w.h5").write_text(""), "ending in"),
        (lambda p: _memprog_file(p / "w.pt", format="memprog.weights/9"), "format"),
        (lambda p: _memprog_file(p / "w.pt", sizes=[4, 5, 2]), "sizes"),
        (lambda p: _memprog_file(p / "w.pt", activation="gelu"), "activation"),
        (lambda p: _memprog_file(p / "w.pt", mapping={"g_min_us": 500, "g_max_us": 100}), "g_min_us"),
    ],
)
def test_bad_files_are_refused_clearly(tmp_path, make, match):
    make(tmp_path)
    (path,) = [p for p in tmp_path.iterdir()]
    with pytest.raises(ConfigError, match=match) as ei:
        load_program_input(path)
    assert path.name in str(ei.value)


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['MEMPROG_EVIL_MARK']}",))


def test_a_pickle_that_would_run_code_is_never_executed(tmp_path, monkeypatch):
    mark = tmp_path / "pwned"
    monkeypatch.setenv("MEMPROG_EVIL_MARK", str(mark))
    torch.save({"layers.0.weight": torch.ones(2, 2), "payload": _Evil()}, tmp_path / "evil.pt")
    with (tmp_path / "legacy.pt").open("wb") as f:
        pickle.dump({"x": _Evil()}, f)
    for name in ("evil.pt", "legacy.pt"):
        with pytest.raises(ConfigError, match="unpickle|weights_only|nothing was executed"):
            load_program_input(tmp_path / name)
    assert not mark.exists()


def test_test_sets(tmp_path):
    np.savez(tmp_path / "t.npz", x=np.random.rand(5, 4), y=np.arange(5) % 2)
    x, y = load_test_set(tmp_path / "t.npz", 4)
    assert x.shape == (5, 4) and y.dtype.kind == "i"
    np.savetxt(tmp_path / "t.csv", np.hstack([x, y[:, None]]), delimiter=",")
    x2, y2 = load_test_set(tmp_path / "t.csv", 4)
    np.testing.assert_array_equal(y, y2)
    with pytest.raises(ConfigError, match="input width"):
        load_test_set(tmp_path / "t.npz", 3)
    np.savez(tmp_path / "u.npz", x=np.random.rand(5, 4), y=np.arange(4))
    with pytest.raises(ConfigError, match="one label per sample"):
        load_test_set(tmp_path / "u.npz")
