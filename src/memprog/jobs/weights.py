"""Loading what a program job is asked to write: a trained network, or a conductance map.

Why a module of its own: weight files come from elsewhere (the cloud, a colleague, a
download: Rao 2023's "train in the cloud, program at the edge"), so loading them is the
job's trust boundary. Everything here runs before the bench is opened, and everything that
could go wrong with a file is a :class:`~memprog.core.errors.ConfigError` naming the file and
what was expected:

- ``.pt``/``.pth``: ``torch.load(weights_only=True)`` only — a pickle that would build
  arbitrary Python objects (and so could execute code) is refused, never run. Either the
  ``memprog.weights/1`` dict written by ``memprog train`` (Contract B) or a plain
  ``state_dict`` (``<name>.weight`` [out, in] / ``<name>.bias`` [out] pairs in order);
- ``.npz``: ``numpy.load(allow_pickle=False)``, the same tensor names (or ``W0``/``b0``,
  ``W1``/``b1``, ... with ``W`` as [in, out]), optional string entries ``activation``/``output``;
- ``.safetensors``: the same tensor names; metadata may carry ``activation``/``output``/
  ``g_min_us``/``g_max_us``;
- ``.csv``/``.npy``: a 2-D conductance map in µS (NaN = leave the cell alone), programmed as is.

Every tensor must be finite, every layer's input width must equal the previous layer's
output width, and a file must be what its extension says (a zip that is not a torch
archive, a text file named ``.npz`` ... are refused with the reason).

Every file is bounded before it is read (:mod:`memprog.core.array_files`): ``.npy`` headers
(also inside ``.npz``, without decompressing the data), safetensors headers and a torch
zip's stated sizes are checked against what the file may be — a map no larger than the
largest chip (4096 x 4096), a tensor of at most that chip's cells (a layer may be tiled,
but each weight needs two cells), a test set of at most 2**25 numbers — so a decompression bomb or a lying header is one ConfigError, not
gigabytes. Only real numbers are data: complex (whose imaginary part would be dropped)
and bool tensors are refused, as are test-set labels outside the network's classes.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memprog.core.array_files import (
    MAX_MAP_CELLS,
    MAX_TEST_NUMBERS,
    MAX_WEIGHT_NUMBERS,
    NUMERIC_WORDS,
    check_zip_budget,
    load_npy,
    load_npz,
    load_safetensors,
    read_csv_numbers,
)
from memprog.core.bench_config import MAX_CHIP_SIDE
from memprog.core.errors import ConfigError
from memprog.hwaware.mapping import BIAS_SCALES, WEIGHTS_FORMAT, chip_matrix, mapping_bias_scale

WEIGHT_SUFFIXES = (".pt", ".pth", ".npz", ".safetensors")
MAP_SUFFIXES = (".csv", ".npy")
ACTIVATIONS = ("sigmoid", "relu", "tanh")
OUTPUTS = ("sigmoid", "softmax", "linear")


@dataclass
class Network:
    """A feed-forward network as the chip will run it.

    Attributes:
        weights: per layer, the weight matrix [out, in] (torch ``nn.Linear`` layout).
        biases: per layer, the bias [out] (zeros when the file has none).
        activation: hidden-layer nonlinearity (``sigmoid``, ``relu``, ``tanh``).
        output: output nonlinearity (``sigmoid``, ``softmax``, ``linear``); only the
            argmax (multi-class) or the 0.5 threshold (one output) matter for accuracy.
        mapping: ``{"scheme", "g_min_us", "g_max_us"}`` (and ``"bias_scale"`` when the file
            states it) from the file, or None (the job chooses from the chip's range).
        meta: everything else the file said (dataset, seed, hardware_aware, ...).
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activation: str = "sigmoid"
    output: str = "softmax"
    mapping: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def sizes(self) -> list[int]:
        """Layer widths, input first."""
        return [int(self.weights[0].shape[1])] + [int(w.shape[0]) for w in self.weights]

    @property
    def bias_scale(self) -> str:
        """``"own"`` (each layer's biases on their own min-max scale) or ``"folded"`` (one
        scale per layer: files that do not say, and every format but ``memprog.weights/1``)."""
        return mapping_bias_scale(self.mapping)

    @property
    def bias_drives(self) -> list[float]:
        """Per layer, the bias row's input drive in unit inputs (1 when folded; see
        :func:`memprog.hwaware.mapping.chip_matrix`)."""
        return [chip_matrix(w, b, self.bias_scale)[1] for w, b in zip(self.weights, self.biases, strict=True)]

    def chip_matrices(self) -> list[np.ndarray]:
        """Per layer the (in+1) x out matrix the chip holds: W^T with the bias row last.

        The bias row holds ``b / drive`` and is driven by a constant input of ``drive``
        (:attr:`bias_drives`: 1, Contract B's constant input, unless the biases are on their
        own scale).
        """
        return [chip_matrix(w, b, self.bias_scale)[0] for w, b in zip(self.weights, self.biases, strict=True)]

    def extended_input(self, a: np.ndarray, k: int) -> np.ndarray:
        """Layer ``k``'s crossbar input for activations ``a`` [n, in]: ``a`` and the bias
        row's drive as the last column (what a VMM drives the rows with, before voltages)."""
        a = np.asarray(a, dtype=float)
        return np.hstack([a, np.full((a.shape[0], 1), self.bias_drives[k])])

    def forward(self, x: np.ndarray, matrices: list[np.ndarray] | None = None) -> np.ndarray:
        """Output scores for inputs ``x`` [n, in] (software; ``matrices`` override the weights:
        the chip's, in :meth:`chip_matrices`' units, bias rows driven at :attr:`bias_drives`)."""
        mats = matrices if matrices is not None else self.chip_matrices()
        drives = self.bias_drives
        a = np.asarray(x, dtype=float)
        for k, m in enumerate(mats):
            z = a @ m[:-1] + drives[k] * m[-1]
            a = activate(z, self.output if k == len(mats) - 1 else self.activation)
        return a

    def predict(self, x: np.ndarray, matrices: list[np.ndarray] | None = None) -> np.ndarray:
        """Class labels: argmax, or the 0.5 threshold of a single sigmoid output."""
        return predict_from_scores(self.forward(x, matrices), self.output)


def activate(z: np.ndarray, kind: str) -> np.ndarray:
    """Apply a nonlinearity by name."""
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))
    if kind == "relu":
        return np.maximum(z, 0.0)
    if kind == "tanh":
        return np.tanh(z)
    if kind == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if kind == "linear":
        return z
    raise ConfigError("activation", kind, f"one of {list(ACTIVATIONS + OUTPUTS)}")


def predict_from_scores(scores: np.ndarray, output: str) -> np.ndarray:
    """Labels from output scores (argmax; one output: threshold at the midpoint)."""
    if scores.shape[1] == 1:
        mid = 0.5 if output == "sigmoid" else 0.0
        return (scores[:, 0] > mid).astype(int)
    return scores.argmax(axis=1)


@dataclass
class ConductanceMap:
    """A conductance map (µS) to program as is; NaN cells are left alone."""

    map_us: np.ndarray
    source: str = ""


# --------------------------------------------------------------------------- loading
def load_program_input(
    path: str | Path, activation: str | None = None, output: str | None = None
) -> Network | ConductanceMap:
    """Load a weight file or a conductance map (see the module docstring); never runs a pickle.

    Args:
        path: the file; its extension says what it must hold.
        activation, output: nonlinearities for files that do not name them (a plain
            state_dict); they override nothing a ``memprog.weights/1`` file states.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError("weights", str(p), "an existing file")
    suffix = p.suffix.lower()
    if suffix in MAP_SUFFIXES:
        return ConductanceMap(load_conductance_map(p), str(p))
    if suffix in (".pt", ".pth"):
        net = _from_torch(p)
    elif suffix == ".npz":
        net = _from_npz(p)
    elif suffix == ".safetensors":
        net = _from_safetensors(p)
    else:
        raise ConfigError(
            "weights", str(p), f"a file ending in one of {list(WEIGHT_SUFFIXES + MAP_SUFFIXES)}"
        )
    if not net.meta.get("_activation_from_file"):
        net.activation = activation or net.activation
    if not net.meta.get("_output_from_file"):
        net.output = output or ("softmax" if net.sizes[-1] > 1 else "sigmoid")
    net.meta.pop("_activation_from_file", None)
    net.meta.pop("_output_from_file", None)
    _check_choice(p, "activation", net.activation, ACTIVATIONS)
    _check_choice(p, "output", net.output, OUTPUTS)
    net.source = str(p)
    return net


def load_conductance_map(path: Path, parameter: str = "weights") -> np.ndarray:
    """A 2-D map (µS) from ``.npy`` (no pickles) or ``.csv``; NaN allowed, inf/negative not.

    The one map reader of ``program`` and ``tune --map`` (``parameter`` names the option in
    errors). At most ``MAX_CHIP_SIDE`` x ``MAX_CHIP_SIDE`` cells: no chip holds more. A CSV
    may start with one header row, recognised only when none of its cells is a number
    (:func:`memprog.core.array_files.read_csv_numbers`); any other non-numeric cell is refused
    with its line and column.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        m = load_npy(path, max_numbers=MAX_MAP_CELLS, max_side=MAX_CHIP_SIDE, max_ndim=2)
    elif path.suffix.lower() == ".csv":
        m = read_csv_numbers(
            path, parameter, max_rows=MAX_CHIP_SIDE, max_cols=MAX_CHIP_SIDE, max_numbers=MAX_MAP_CELLS,
            allowed="comma-separated numbers in µS (NaN to skip a cell), at most one header row "
            "(a first row without any numeric cell)",
        )
    else:
        raise ConfigError(parameter, str(path), "a .npy or .csv file")
    if m.dtype.kind not in "fiu":
        raise ConfigError("weights", str(path), "a numeric conductance map", f"dtype {m.dtype}")
    m = np.asarray(m, dtype=float)
    if m.ndim != 2:
        raise ConfigError(f"{path.name} shape", m.shape, "a 2-D conductance map (rows x cols)")
    if np.isinf(m).any():
        r, c = np.argwhere(np.isinf(m))[0]
        raise ConfigError(f"{path.name}[{r},{c}]", float(m[r, c]), "a finite conductance (µS) or NaN")
    if np.isnan(m).all():
        raise ConfigError(path.name, "all NaN", "at least one conductance to program")
    neg = np.nan_to_num(m, nan=1.0) <= 0
    if neg.any():
        r, c = np.argwhere(neg)[0]
        raise ConfigError(f"{path.name}[{r},{c}]", float(m[r, c]), "a conductance > 0 µS")
    return m


def _check_choice(path: Path, name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{path.name}: {name}", value, f"one of {list(allowed)}")


def _from_torch(path: Path) -> Network:
    import torch  # deferred: torch takes ~1 s to import; .npz, .csv and .npy files never need it

    if not zipfile.is_zipfile(path):
        # torch's legacy format is a bare pickle: refuse without unpickling anything
        raise ConfigError(
            "weights",
            str(path),
            "a torch zip archive written by torch.save",
            "not a zip archive (a bare pickle, or not a torch file at all); memprog never "
            "unpickles a weight file",
        )
    # torch allocates what the zip's directory states: bound it before torch reads anything
    check_zip_budget(path, 8 * MAX_WEIGHT_NUMBERS + 2**24, "a torch zip archive written by torch.save")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ConfigError(
            "weights",
            str(path),
            "tensors, numbers, strings, lists and dicts only (torch weights_only)",
            f"refused, nothing was executed: {str(exc).splitlines()[0]}",
        ) from exc
    except Exception as exc:  # torch's reader raises many kinds on a damaged archive
        first = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ConfigError(
            "weights", str(path), "a file written by torch.save", f"cannot read it: {first}"
        ) from exc
    if not isinstance(obj, dict):
        raise ConfigError(
            "weights", str(path), "a state_dict or a memprog.weights/1 dict", type(obj).__name__
        )
    if "format" in obj:
        return _from_memprog_dict(path, obj)
    return _from_state_dict(path, {k: _tensor(path, k, v) for k, v in obj.items()})


def _tensor(path: Path, key: str, v: Any) -> np.ndarray:
    import torch  # deferred: torch takes ~1 s to import; .npz, .csv and .npy files never need it

    if isinstance(v, torch.Tensor):
        if v.is_complex() or v.dtype == torch.bool or not (v.is_floating_point() or v.dtype in _torch_ints()):
            # complex: the imaginary part would be dropped; bool: a mask is not a weight
            raise ConfigError(f"{path.name}: {key} dtype", str(v.dtype).replace("torch.", ""), NUMERIC_WORDS)
        if v.dim() > 2 or v.numel() > MAX_MAP_CELLS:
            raise ConfigError(
                f"{path.name}: {key} shape", tuple(v.shape),
                f"at most 2-D and {MAX_MAP_CELLS} numbers (the largest chip's cells)",
            )
        return v.detach().to(torch.float64).cpu().numpy()
    raise ConfigError(f"{path.name}: {key}", type(v).__name__, "a tensor")


def _torch_ints() -> tuple[Any, ...]:
    import torch  # deferred: torch takes ~1 s to import; .npz, .csv and .npy files never need it

    return (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def _from_memprog_dict(path: Path, obj: dict[str, Any]) -> Network:
    fmt = obj.get("format")
    if fmt != WEIGHTS_FORMAT:
        raise ConfigError(f"{path.name}: format", fmt, WEIGHTS_FORMAT)
    sd = obj.get("state_dict")
    if not isinstance(sd, dict):
        raise ConfigError(f"{path.name}: state_dict", type(sd).__name__, "a dict of tensors")
    net = _from_state_dict(path, {k: _tensor(path, k, v) for k, v in sd.items()})
    sizes = obj.get("sizes")
    if sizes is not None and list(sizes) != net.sizes:
        raise ConfigError(f"{path.name}: sizes", list(sizes), f"the state_dict's {net.sizes}")
    if "activation" in obj:
        net.activation = obj["activation"]
        net.meta["_activation_from_file"] = True
    if "output" in obj:
        net.output = obj["output"]
        net.meta["_output_from_file"] = True
    mapping = obj.get("mapping")
    if mapping is not None:
        net.mapping = _check_mapping(path, mapping)
    for k, v in obj.items():
        if k not in ("state_dict", "mapping", "activation", "output", "format"):
            net.meta[k] = v
    return net


def _check_mapping(path: Path, mapping: Any) -> dict[str, Any]:
    if not isinstance(mapping, dict):
        raise ConfigError(f"{path.name}: mapping", type(mapping).__name__, "a dict")
    scheme = mapping.get("scheme", "differential")
    if scheme != "differential":
        raise ConfigError(f"{path.name}: mapping.scheme", scheme, "'differential'")
    try:
        lo, hi = float(mapping["g_min_us"]), float(mapping["g_max_us"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{path.name}: mapping", mapping, "g_min_us and g_max_us numbers"
        ) from exc
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi):
        raise ConfigError(f"{path.name}: mapping.g_min_us/g_max_us", (lo, hi), "0 < g_min_us < g_max_us")
    out: dict[str, Any] = {"scheme": "differential", "g_min_us": lo, "g_max_us": hi}
    if "bias_scale" in mapping:  # absent: the folded mapping (files written before the key)
        if mapping["bias_scale"] not in BIAS_SCALES:
            raise ConfigError(f"{path.name}: mapping.bias_scale", mapping["bias_scale"], f"one of {list(BIAS_SCALES)}")
        out["bias_scale"] = mapping["bias_scale"]
    return out


_WB = re.compile(r"^(?P<name>.+)\.(?P<kind>weight|bias)$")
_NPZ_W = re.compile(r"^W(?P<k>\d+)$")


def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _from_state_dict(path: Path, sd: dict[str, np.ndarray]) -> Network:
    """Layers from ``<name>.weight`` [out, in] + ``<name>.bias`` [out], in the file's order."""
    names: list[str] = []
    weights: dict[str, np.ndarray] = {}
    biases: dict[str, np.ndarray] = {}
    for key, arr in sd.items():
        m = _WB.match(key)
        if m is None:
            continue  # buffers, running stats: not part of a Linear stack
        _check_finite(path, key, arr)
        if m["kind"] == "weight":
            if arr.ndim != 2:
                raise ConfigError(f"{path.name}: {key} shape", tuple(arr.shape), "2-D [out, in]")
            names.append(m["name"])
            weights[m["name"]] = np.asarray(arr, dtype=float)
        else:
            biases[m["name"]] = np.asarray(arr, dtype=float)
    if not names:
        raise ConfigError(
            path.name, sorted(sd)[:6], "tensors named '<layer>.weight' [out, in] (and '<layer>.bias')"
        )
    if names != sorted(names, key=_natural):
        names = sorted(names, key=_natural)
    ws, bs = [], []
    for n in names:
        w = weights[n]
        b = biases.get(n, np.zeros(w.shape[0]))
        if b.shape != (w.shape[0],):
            raise ConfigError(f"{path.name}: {n}.bias shape", tuple(b.shape), f"({w.shape[0]},)")
        ws.append(w)
        bs.append(b)
    _check_chain(path, names, ws)
    return Network(ws, bs)


def _check_finite(path: Path, key: str, arr: np.ndarray) -> None:
    a = np.asarray(arr)
    if a.dtype.kind not in "fiu":
        raise ConfigError(f"{path.name}: {key} dtype", str(a.dtype), NUMERIC_WORDS)
    bad = ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ConfigError(f"{path.name}: {key}{list(idx)}", float(a[idx]), "a finite number")


def _check_chain(path: Path, names: list[str], ws: list[np.ndarray]) -> None:
    for k in range(1, len(ws)):
        if ws[k].shape[1] != ws[k - 1].shape[0]:
            raise ConfigError(
                f"{path.name}: {names[k]}.weight shape",
                tuple(ws[k].shape),
                f"[out, {ws[k - 1].shape[0]}] (the output width of {names[k - 1]})",
            )


_NPZ_TEXT = ("activation", "output")
_NPZ_SCALARS = ("g_min_us", "g_max_us")


def _npz_weight_limits(name: str) -> dict[str, Any]:
    """Header limits of a weight ``.npz`` member: names as text, mapping as scalars, tensors."""
    if name in _NPZ_TEXT:
        return {"max_numbers": 1, "max_ndim": 0, "kinds": "U"}
    if name in _NPZ_SCALARS:
        return {"max_numbers": 1, "max_ndim": 1}
    return {"max_numbers": MAX_MAP_CELLS, "max_ndim": 2}


def _from_npz(path: Path) -> Network:
    data = load_npz(path, _npz_weight_limits, max_total_numbers=MAX_WEIGHT_NUMBERS)
    meta = {k: data.pop(k) for k in ("activation", "output", "g_min_us", "g_max_us") if k in data}
    if any(_NPZ_W.match(k) for k in data):
        # W0 [in, out], b0 [out], W1, b1, ...
        ks = sorted(int(_NPZ_W.match(k)["k"]) for k in data if _NPZ_W.match(k))
        if ks != list(range(len(ks))):
            raise ConfigError(f"{path.name}: layer keys", [f"W{k}" for k in ks], "W0, W1, ... without gaps")
        sd = {}
        for k in ks:
            w = data[f"W{k}"]
            _check_finite(path, f"W{k}", w)
            if w.ndim != 2:
                raise ConfigError(f"{path.name}: W{k} shape", w.shape, "2-D [in, out]")
            sd[f"layer{k}.weight"] = np.asarray(w, dtype=float).T
            if f"b{k}" in data:
                sd[f"layer{k}.bias"] = data[f"b{k}"]
        net = _from_state_dict(path, sd)
    else:
        net = _from_state_dict(path, data)
    _apply_text_meta(path, net, {k: (v.item() if v.ndim == 0 else v) for k, v in meta.items()})
    return net


def _apply_text_meta(path: Path, net: Network, meta: dict[str, Any]) -> None:
    if "activation" in meta:
        net.activation = str(meta["activation"])
        net.meta["_activation_from_file"] = True
    if "output" in meta:
        net.output = str(meta["output"])
        net.meta["_output_from_file"] = True
    if "g_min_us" in meta or "g_max_us" in meta:
        net.mapping = _check_mapping(
            path, {"g_min_us": meta.get("g_min_us"), "g_max_us": meta.get("g_max_us")}
        )


def _from_safetensors(path: Path) -> Network:
    # read by memprog itself, every header entry bounded first; bf16 converted exactly
    data, meta = load_safetensors(path, max_numbers=MAX_MAP_CELLS, max_total_numbers=MAX_WEIGHT_NUMBERS)
    net = _from_state_dict(path, data)
    _apply_text_meta(path, net, meta)
    return net


def _test_set_limits(name: str) -> dict[str, Any] | None:
    if name in ("x", "X"):
        return {"max_numbers": MAX_TEST_NUMBERS, "max_ndim": 2}
    if name == "y":
        return {"max_numbers": MAX_TEST_NUMBERS, "max_ndim": 2}
    return None  # other members are never read


def load_test_set(
    path: str | Path, n_inputs: int | None = None, n_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A labelled test set: ``.npz`` with ``x`` (or ``X``) [n, in] and ``y`` [n] integer
    labels, or ``.csv`` with the label in the last column. No pickles; at most
    ``MAX_TEST_NUMBERS`` numbers.

    Args:
        n_inputs: the network's input width (x must have it).
        n_classes: the network's classes; a label outside ``0..n_classes-1`` is refused
            (an accuracy over labels the network cannot output means nothing).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError("test set", str(p), "an existing .npz or .csv file")
    if p.suffix.lower() == ".npz":
        z = load_npz(p, _test_set_limits, max_total_numbers=2 * MAX_TEST_NUMBERS, what="a .npz archive")
        xk = "x" if "x" in z else "X" if "X" in z else None
        if xk is None or "y" not in z:
            raise ConfigError("test set", sorted(z), "arrays 'x' (or 'X') and 'y'")
        x, y = z[xk], z["y"]
    elif p.suffix.lower() == ".csv":
        d = read_csv_numbers(
            p, "test set", max_rows=MAX_TEST_NUMBERS, max_cols=MAX_CHIP_SIDE + 1, max_numbers=MAX_TEST_NUMBERS,
            allowed="comma-separated numbers, the label in the last column, at most one header row",
        )
        x, y = d[:, :-1], d[:, -1]
    else:
        raise ConfigError("test set", str(p), "a .npz or .csv file")
    x = np.asarray(x, dtype=float)
    if x.ndim != 2:
        raise ConfigError("test set x shape", x.shape, "2-D [samples, inputs]")
    y = np.asarray(y).ravel()
    if y.shape[0] != x.shape[0]:
        raise ConfigError("test set y length", y.shape[0], f"{x.shape[0]} (one label per sample)")
    _check_finite(p, "x", x)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)) or np.any(np.abs(y) > 2**31):
            raise ConfigError("test set y", "non-integer labels", "integer class labels")
    y = y.astype(np.int64)
    if n_inputs is not None and x.shape[1] != n_inputs:
        raise ConfigError("test set inputs", x.shape[1], f"{n_inputs} (the network's input width)")
    if n_classes is not None and y.size:
        bad = (y < 0) | (y >= n_classes)
        if bad.any():
            k = int(np.argmax(bad))
            raise ConfigError(
                f"{p.name}: y[{k}]", int(y[k]), f"a class label in 0..{n_classes - 1} (the network's classes)"
            )
    return x, y


__all__ = [
    "load_test_set",
    "Network",
    "ConductanceMap",
    "load_program_input",
    "load_conductance_map",
    "activate",
    "predict_from_scores",
    "ACTIVATIONS",
    "OUTPUTS",
]
