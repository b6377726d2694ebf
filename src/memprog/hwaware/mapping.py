"""Weights <-> differential conductance pairs, the crossbar layout, and the weight file.

Why this module exists: three subsystems must agree, to the device, on how a trained layer
becomes conductances — hardware-aware training (which samples the chip's non-idealities on
those conductances), the program job (which writes them) and in-situ training (which reads
them back). Contract B of the working agreement fixes the convention; this module is its
only implementation, numpy in and out so the program job needs no torch.

Convention (Contract B):
  * a layer ``y = W x + b`` (``W``: out x in) is one (in+1) x out matrix ``A`` whose last row
    is the bias, driven by a constant input of 1;
  * each weight is a differential pair ``w = (g_plus - g_minus) * scale``: the device of the
    weight's sign carries ``|w|``, the other sits at ``g_min``;
  * ``scale = max|A| / (g_max - g_min)`` per layer (min-max per layer: the largest weight
    sits at ``g_max``);
  * the bias row's own scale (``mapping.bias_scale``): ``"folded"`` (the default, and what a
    file without the key means) puts it on the layer's one scale; ``"own"`` maps the biases
    on their own min-max scale ``max|b| / (g_max - g_min)`` (the largest bias at ``g_max``,
    as seed 001's authors scale them). The chip computes it with the same one crossbar: the
    bias row holds ``b / r`` on the weights' scale, ``r = max|b| / max|W|``
    (:func:`bias_drive`), and is driven at ``r`` times the unit input voltage instead of 1.
    Why a drive and not a second readout: a DAC sets a row's voltage anyway, one VMM per
    input keeps the column currents summed on chip, and the drive stays within the read
    limit because a VMM scales every input so the largest maps to the read voltage.

Crossbar layout and programming order (used for the disturb model): the pair matrix of a
layer sits on (in+1) rows x 2*out columns, the two devices of a weight in adjacent columns
(``2*o`` for g_plus, ``2*o + 1`` for g_minus), programmed row-major (Drolet's order: the
last device programmed sees no later write). :func:`later_writes` gives, per device, how
many devices of the same layer are programmed after it — the fallback when no chip is in
view; for a chip, :func:`memprog.hwaware.order.network_later_writes` counts the cells the
program job really writes after each device there (all layers, the job's own order).
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from memprog.core.array_files import MAX_WEIGHT_NUMBERS, check_zip_budget
from memprog.core.errors import ConfigError, MemprogError
from memprog.hwaware.datasets import DATASETS

# the one name of the weight-file format: written here (save_weights), checked here and by
# the program job's loader (memprog.jobs.weights)
WEIGHTS_FORMAT = "memprog.weights/1"
# how a layer's biases are scaled (``mapping.bias_scale``); absent means "folded" (old files)
BIAS_SCALES = ("folded", "own")
ACTIVATIONS = ("sigmoid", "relu", "tanh")
OUTPUTS = ("sigmoid", "softmax")
_KEYS = {
    "format": str,
    "dataset": str,
    "sizes": list,
    "activation": str,
    "output": str,
    "state_dict": dict,
    "mapping": dict,
    "hardware_aware": bool,
    "seed": int,
    "epochs": int,
    "variability_source": str,
}


def _check_range(g_min_us: float, g_max_us: float) -> None:
    if not (math.isfinite(g_min_us) and g_min_us >= 0):
        raise ConfigError("g_min_us", g_min_us, "a finite conductance >= 0 µS")
    if not (math.isfinite(g_max_us) and g_max_us > g_min_us):
        raise ConfigError("g_max_us", g_max_us, f"finite and > g_min_us={g_min_us}")


def weights_to_pairs(
    w: np.ndarray, g_min_us: float, g_max_us: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Map a weight matrix to differential conductance pairs (min-max per layer).

    Args:
        w: the layer's weights, any shape (normally the (in+1) x out matrix with the bias row).
        g_min_us, g_max_us: the chip's working range.

    Returns:
        ``(g_plus_us, g_minus_us, scale)`` with ``w == (g_plus_us - g_minus_us) * scale``;
        the larger of each pair carries ``|w|``, the other sits at ``g_min_us``;
        ``scale = max|w| / (g_max_us - g_min_us)`` (0 for an all-zero matrix, both devices at
        ``g_min_us``).
    """
    g_min_us, g_max_us = float(g_min_us), float(g_max_us)
    _check_range(g_min_us, g_max_us)
    w = np.asarray(w, dtype=float)
    if w.size == 0:
        raise ConfigError("w", f"shape {w.shape}", "a non-empty weight matrix")
    if not np.all(np.isfinite(w)):
        raise ConfigError("w", f"{int((~np.isfinite(w)).sum())} non-finite values", "finite weights")
    wmax = float(np.abs(w).max())
    scale = wmax / (g_max_us - g_min_us)
    if scale == 0.0:
        g = np.full(w.shape, g_min_us)
        return g, g.copy(), 0.0
    g_plus = g_min_us + np.maximum(w, 0.0) / scale
    g_minus = g_min_us + np.maximum(-w, 0.0) / scale
    return g_plus, g_minus, scale


def pairs_to_weights(g_plus_us: np.ndarray, g_minus_us: np.ndarray, scale: float) -> np.ndarray:
    """The weights a pair of conductance matrices represents: ``(g_plus - g_minus) * scale``."""
    gp = np.asarray(g_plus_us, dtype=float)
    gm = np.asarray(g_minus_us, dtype=float)
    if gp.shape != gm.shape:
        raise ConfigError("g_minus_us", f"shape {gm.shape}", f"the shape of g_plus_us {gp.shape}")
    if not (math.isfinite(scale) and scale >= 0):
        raise ConfigError("scale", scale, "a finite scale >= 0")
    return (gp - gm) * float(scale)


def fold_bias(weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The (in+1) x out matrix of a layer: ``weight`` (out x in) transposed, bias as last row."""
    weight = np.asarray(weight, dtype=float)
    bias = np.asarray(bias, dtype=float)
    if weight.ndim != 2 or bias.shape != (weight.shape[0],):
        raise ConfigError(
            "bias", f"shape {bias.shape}", f"({weight.shape[0]},) for a weight of shape {weight.shape}"
        )
    return np.vstack([weight.T, bias[None, :]])


def bias_drive(weight: np.ndarray, bias: np.ndarray, bias_scale: str = "own") -> float:
    """The bias row's input drive (in unit inputs) that puts the biases on their own scale.

    ``"own"``: ``r = max|b| / max|W|``, so the row holding ``b / r`` on the weights' scale
    ``max|W| / (g_max - g_min)`` holds ``b`` on the biases' own scale ``max|b| / (g_max -
    g_min)``, independent of the working range. 1 for ``"folded"``, and where either part is
    all zero (then the two mappings are the same).
    """
    if bias_scale not in BIAS_SCALES:
        raise ConfigError("bias_scale", bias_scale, f"one of {BIAS_SCALES}")
    if bias_scale == "folded":
        return 1.0
    wmax = float(np.abs(np.asarray(weight, dtype=float)).max(initial=0.0))
    bmax = float(np.abs(np.asarray(bias, dtype=float)).max(initial=0.0))
    if wmax == 0.0 or bmax == 0.0:
        return 1.0
    return bmax / wmax


def chip_matrix(weight: np.ndarray, bias: np.ndarray, bias_scale: str = "folded") -> tuple[np.ndarray, float]:
    """The (in+1) x out matrix a layer's crossbar holds and its bias row's drive.

    ``(A, r)``: ``A`` is :func:`fold_bias` with the bias row divided by ``r =``
    :func:`bias_drive`; ``A[:-1]`` times the inputs plus ``r * A[-1]`` is the layer's output,
    and :func:`weights_to_pairs` of ``A`` maps the weights on their scale and the biases on
    their own (``"own"``) or on the weights' (``"folded"``, ``r = 1``).
    """
    r = bias_drive(weight, bias, bias_scale)
    a = fold_bias(weight, bias)
    if r != 1.0:
        a[-1] /= r
    return a, r


def unfold_bias(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`fold_bias`: ``(weight (out x in), bias (out,))``."""
    a = np.asarray(a, dtype=float)
    return a[:-1].T.copy(), a[-1].copy()


def crossbar_columns(n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Column of each output's g_plus and g_minus device: ``2*o`` and ``2*o + 1``."""
    o = np.arange(int(n_out))
    return 2 * o, 2 * o + 1


def later_writes(n_rows: int, n_out: int) -> np.ndarray:
    """Devices of the same layer programmed after each device, shape (2, n_out, n_rows).

    Index ``[s, o, r]``: sign ``s`` (0 = g_plus, 1 = g_minus) of output ``o`` on row ``r``
    (row ``n_rows - 1`` is the bias row). Row-major programming over the (n_rows x 2*n_out)
    crossbar; the last device has 0 later writes.
    """
    n_rows, n_out = int(n_rows), int(n_out)
    if n_rows < 1 or n_out < 1:
        raise ConfigError("layer shape", (n_rows, n_out), "at least 1 row and 1 output")
    total = n_rows * 2 * n_out
    s = np.arange(2)[:, None, None]
    o = np.arange(n_out)[None, :, None]
    r = np.arange(n_rows)[None, None, :]
    position = r * (2 * n_out) + 2 * o + s
    return (total - 1 - position).astype(np.int64)


def layer_pairs(state_dict: dict[str, Any], sizes: list[int], g_min_us: float, g_max_us: float,
                bias_scale: str = "folded"):
    """Per layer ``(g_plus_us, g_minus_us, scale)`` of the (in+1) x out matrix the chip holds
    (:func:`chip_matrix`: with ``"own"``, the bias row's scale is ``scale`` times its drive)."""
    out = []
    for i in range(len(sizes) - 1):
        w = np.asarray(state_dict[f"layers.{i}.weight"], dtype=float)
        b = np.asarray(state_dict[f"layers.{i}.bias"], dtype=float)
        out.append(weights_to_pairs(chip_matrix(w, b, bias_scale)[0], g_min_us, g_max_us))
    return out


def mapping_bias_scale(mapping: dict[str, Any] | None) -> str:
    """A weight file's ``mapping.bias_scale``; ``"folded"`` when absent (files written before
    the key existed mean the folded mapping)."""
    return str((mapping or {}).get("bias_scale", "folded"))


def validate_weights(obj: Any, source: str = "weights") -> dict:
    """Check a weight dict against Contract B; return it (tensors untouched) or raise ConfigError."""
    import torch  # deferred: torch takes ~1 s to import; the mapping itself is numpy-only

    if not isinstance(obj, dict):
        raise ConfigError(source, type(obj).__name__, f"a dict in the {WEIGHTS_FORMAT} format")
    if obj.get("format") != WEIGHTS_FORMAT:
        raise ConfigError(f"{source}: format", obj.get("format"), repr(WEIGHTS_FORMAT))
    for key, typ in _KEYS.items():
        if key not in obj:
            raise ConfigError(f"{source}: {key}", "missing", f"a {typ.__name__}")
        if not isinstance(obj[key], typ) or (typ is int and isinstance(obj[key], bool)):
            raise ConfigError(f"{source}: {key}", type(obj[key]).__name__, f"a {typ.__name__}")
    if obj["dataset"] not in DATASETS:
        raise ConfigError(f"{source}: dataset", obj["dataset"], f"one of {DATASETS}")
    if obj["activation"] not in ACTIVATIONS:
        raise ConfigError(f"{source}: activation", obj["activation"], f"one of {ACTIVATIONS}")
    if obj["output"] not in OUTPUTS:
        raise ConfigError(f"{source}: output", obj["output"], f"one of {OUTPUTS}")
    sizes = obj["sizes"]
    if len(sizes) < 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes):
        raise ConfigError(f"{source}: sizes", sizes, "a list of >= 2 positive layer widths")
    if obj["output"] == "sigmoid" and sizes[-1] != 1:
        raise ConfigError(f"{source}: sizes", sizes, "one output unit for a sigmoid output")
    if obj["output"] == "softmax" and sizes[-1] < 2:
        raise ConfigError(f"{source}: sizes", sizes, ">= 2 output units for a softmax output")
    m = obj["mapping"]
    if m.get("scheme") != "differential":
        raise ConfigError(f"{source}: mapping.scheme", m.get("scheme"), "'differential'")
    for k in ("g_min_us", "g_max_us"):
        if not isinstance(m.get(k), float | int) or isinstance(m.get(k), bool):
            raise ConfigError(f"{source}: mapping.{k}", m.get(k), "a number (µS)")
    _check_range(float(m["g_min_us"]), float(m["g_max_us"]))
    if m.get("bias_scale", "folded") not in BIAS_SCALES:
        raise ConfigError(f"{source}: mapping.bias_scale", m.get("bias_scale"), f"one of {BIAS_SCALES}")
    sd = obj["state_dict"]
    expected = set()
    for i in range(len(sizes) - 1):
        for name, shape in (("weight", (sizes[i + 1], sizes[i])), ("bias", (sizes[i + 1],))):
            key = f"layers.{i}.{name}"
            expected.add(key)
            t = sd.get(key)
            if not isinstance(t, torch.Tensor):
                raise ConfigError(f"{source}: state_dict[{key!r}]", type(t).__name__, f"a tensor of shape {shape}")
            if tuple(t.shape) != shape:
                raise ConfigError(f"{source}: state_dict[{key!r}]", f"shape {tuple(t.shape)}", f"shape {shape} for sizes {sizes}")
            if not t.is_floating_point() or not bool(torch.isfinite(t).all()):
                raise ConfigError(f"{source}: state_dict[{key!r}]", "non-finite or non-float", "finite floating-point values")
    extra = set(sd) - expected
    if extra:
        raise ConfigError(f"{source}: state_dict", sorted(extra), f"only the keys {sorted(expected)}")
    return obj


def load_weights(path: str | Path) -> dict:
    """Load and validate a weight file written by ``memprog train`` (Contract B).

    Never unpickles code: ``torch.load(..., weights_only=True)`` accepts only tensors and plain
    containers; anything else (a pickled module, a file that is not a torch archive) is
    refused with a ConfigError naming the file.
    """
    import torch  # deferred: torch takes ~1 s to import; the mapping itself is numpy-only

    path = Path(path)
    if not path.is_file():
        raise ConfigError("weights", str(path), "an existing weight file written by `memprog train`")
    # torch allocates what the zip's directory states: bound it first (decompression bombs)
    check_zip_budget(path, 8 * MAX_WEIGHT_NUMBERS + 2**24, f"a {WEIGHTS_FORMAT} file (a torch zip archive)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pickle-protocol notes on foreign files
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure to load means: not a weight file of ours
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            "weights", str(path), f"a {WEIGHTS_FORMAT} file loadable with weights_only=True ({first})"
        ) from exc
    return validate_weights(obj, source=str(path))


def save_weights(obj: dict, path: str | Path) -> Path:
    """Validate ``obj`` and write it with ``torch.save`` (tensors moved to the CPU first).

    The one weight-file writer: ``memprog train``, ``memprog insitu`` and the shipped
    example's build all write through it, so every file passes the same validation.

    Written to a temporary file beside ``path`` and renamed over it, so a write that fails
    (disk full, a folder that refuses files) leaves no truncated weight file that a later
    ``memprog program`` would load or ``--out`` would refuse to replace. That failure raises
    a :class:`MemprogError` that is not a ConfigError (exit 3: the disk, not the input; torch
    reports some as RuntimeError, which would otherwise surface as a traceback).
    """
    import torch  # deferred: torch takes ~1 s to import; the mapping itself is numpy-only

    obj = dict(obj)
    obj["state_dict"] = {k: v.detach().to("cpu", torch.float32).clone() for k, v in obj["state_dict"].items()}
    validate_weights(obj, source="weights to save")
    path = Path(path)
    # created as torch.save creates any file (the umask's mode), then renamed over ``path``
    tmp = weights_temp_path(path)
    saved = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, tmp)
        saved = True
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        why = getattr(exc, "strerror", None) or " ".join(str(exc).split())
        if saved:  # the weights are whole in tmp; only the rename failed (a file held open
            # on Windows, another user's file in a sticky folder): keep them, say where
            raise MemprogError(
                f"weights {path}: replacing the file failed ({why}); the weights are kept in {tmp}"
            ) from exc
        raise MemprogError(f"weights {path}: writing the weight file failed: {why}") from exc
    finally:
        if not saved:  # a half-written file (disk full, Ctrl-C) is never left behind
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass  # the folder that refused the file refuses its removal too: nothing to remove
    return path


def weights_temp_path(path: Path) -> Path:
    """The file :func:`save_weights` writes first, beside ``path`` (``memprog train`` probes
    that very name before training, so the probe tests the write that will happen)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")
