"""Where the in-situ network's devices sit on the array: layers on diagonal blocks, each
weight a differential pair of adjacent columns, spare rows for the gate calibration.

Why a module of its own: the layout is the contract between the forward pass (which rows a
``VMM?`` drives, which column currents make a neuron), the update pulses (which cells each
target belongs to) and the final read of the chip (which devices make the saved weights);
tests read the chip through it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from memprog.core.errors import ConfigError

CALIBRATION_ROWS = 4


@dataclass
class LayerCells:
    """Where one layer's (n_in + 1) × n_out differential pairs sit on the array."""

    n_in: int
    n_out: int
    row0: int
    col0: int

    @property
    def rows(self) -> np.ndarray:
        return self.row0 + np.arange(self.n_in + 1)

    @property
    def cols_plus(self) -> np.ndarray:
        return self.col0 + 2 * np.arange(self.n_out)

    @property
    def cols_minus(self) -> np.ndarray:
        return self.cols_plus + 1

    def cells(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat (rows, cols): every plus device row-major, then every minus device."""
        r = np.repeat(self.rows, self.n_out)
        cp = np.tile(self.cols_plus, self.n_in + 1)
        return np.concatenate([r, r]), np.concatenate([cp, cp + 1])

    @property
    def n_cells(self) -> int:
        return 2 * (self.n_in + 1) * self.n_out


@dataclass
class Layout:
    """Both layers and the calibration rows, placed from ``origin``."""

    layers: list[LayerCells]
    calibration_rows: np.ndarray
    rows: np.ndarray = field(init=False)
    cols: np.ndarray = field(init=False)
    slices: list[slice] = field(init=False)

    def __post_init__(self) -> None:
        rs, cs, self.slices = [], [], []
        start = 0
        for layer in self.layers:
            r, c = layer.cells()
            rs.append(r)
            cs.append(c)
            self.slices.append(slice(start, start + r.size))
            start += r.size
        self.rows = np.concatenate(rs)
        self.cols = np.concatenate(cs)

    @classmethod
    def place(
        cls, sizes: list[int], origin: tuple[int, int], array_rows: int, array_cols: int
    ) -> Layout:
        """Layers on diagonal blocks (rows of one layer never drive another's columns)."""
        r0, c0 = origin
        layers = []
        r, c = r0, c0
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers.append(LayerCells(n_in, n_out, r, c))
            r += n_in + 1
            c += 2 * n_out
        need_rows = r + CALIBRATION_ROWS
        if r0 < 0 or c0 < 0 or need_rows > array_rows or c > array_cols:
            raise ConfigError(
                "origin",
                origin,
                f"a corner where the {need_rows - r0} x {c - c0} block fits the "
                f"{array_rows} x {array_cols} array",
                f"layers {sizes} need {r - r0} rows + {CALIBRATION_ROWS} calibration rows "
                f"and {c - c0} columns",
            )
        return cls(layers, np.arange(r, need_rows))

    def split(self, g_flat: np.ndarray, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """(G+, G-) matrices (n_in + 1, n_out) of ``layer`` from a flat per-cell vector."""
        lc = self.layers[layer]
        part = g_flat[self.slices[layer]]
        half = part.size // 2
        shape = (lc.n_in + 1, lc.n_out)
        return part[:half].reshape(shape), part[half:].reshape(shape)


__all__ = ["CALIBRATION_ROWS", "LayerCells", "Layout"]
