"""How the simulated chip names its cells: flat selections and defect codes.

Why a module of its own: every part of the chip's physics (switching, noise, the passive
line network) works on the same flat per-cell arrays and selects cells the same way: a
slice where the cells are one contiguous run (numpy views instead of gathers, the
write-verify hot path) and an index array otherwise. The defect codes are what a cell is
(working, stuck, unresponsive, broken), shared by the physics and the tests' truth.
"""

from __future__ import annotations

import numpy as np

Sel = np.ndarray | slice  # flat cell selection: an index array, or a slice for contiguous runs

# stuck-kind codes
WORKING, STUCK_HRS, STUCK_LRS, UNRESPONSIVE, BROKEN = 0, 1, 2, 3, 4


def count_cells(sel: Sel, n: int) -> int:
    """How many cells ``sel`` names in an array of ``n``."""
    return len(range(*sel.indices(n))) if isinstance(sel, slice) else int(sel.size)


def subset_cells(sel: Sel, mask: np.ndarray, n: int) -> np.ndarray:
    """The flat indices of ``sel`` where ``mask`` is true."""
    base = np.arange(*sel.indices(n)) if isinstance(sel, slice) else sel
    return base[mask]


def as_selection(idx: np.ndarray) -> Sel:
    """A slice when ``idx`` is one contiguous ascending run (views instead of gathers)."""
    if idx.size == 1:  # one cell (the write-verify hot path): basic indexing is cheapest
        i = int(idx[0])
        return slice(i, i + 1)
    if idx.size > 1 and idx[-1] - idx[0] == idx.size - 1 and np.all(np.diff(idx) == 1):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx
