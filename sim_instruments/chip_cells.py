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

#: cells per block when a large contiguous batch is processed in blocks: a block's
#: temporaries (about ten arrays of float64) stay in the processor's cache, so a whole-array
#: operation streams through memory a few times instead of once per arithmetic step
BLOCK_CELLS = 1 << 15

# stuck-kind codes
WORKING, STUCK_HRS, STUCK_LRS, UNRESPONSIVE, BROKEN = 0, 1, 2, 3, 4


def count_cells(sel: Sel, n: int) -> int:
    """How many cells ``sel`` names in an array of ``n``."""
    return len(range(*sel.indices(n))) if isinstance(sel, slice) else int(sel.size)


def subset_cells(sel: Sel, mask: np.ndarray, n: int) -> np.ndarray:
    """The flat indices of ``sel`` where ``mask`` is true."""
    if isinstance(sel, slice):
        idx = np.flatnonzero(mask)
        idx += sel.indices(n)[0]
        return idx
    return sel[mask]


def block_spans(sel: Sel, n: int) -> list[tuple[int, int]]:
    """Positions ``[a, b)`` of the blocks a batch is processed in: blocks of
    :data:`BLOCK_CELLS` for a slice (its cells are distinct, so blocks never touch the same
    cell), one block for an index array (which may name a cell twice: gathered once,
    written once, as a single operation)."""
    if type(sel) is not slice:
        return [(0, sel.size)]
    m = count_cells(sel, n)
    if m <= BLOCK_CELLS:
        return [(0, m)]
    return [(a, min(a + BLOCK_CELLS, m)) for a in range(0, m, BLOCK_CELLS)]


def part(sel: Sel, a: int, b: int, n: int) -> Sel:
    """Cells at positions ``[a, b)`` of the selection ``sel`` (a slice stays a slice)."""
    if type(sel) is slice:
        start, stop, _ = sel.indices(n)
        return sel if a == 0 and stop - start == b else slice(start + a, start + b)
    return sel if a == 0 and b == sel.size else sel[a:b]


def as_selection(idx: np.ndarray) -> Sel:
    """A slice when ``idx`` is one contiguous ascending run (views instead of gathers)."""
    if idx.size == 1:  # one cell (the write-verify hot path): basic indexing is cheapest
        i = int(idx[0])
        return slice(i, i + 1)
    if idx.size > 1 and idx[-1] - idx[0] == idx.size - 1 and steps_of_one(idx):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def steps_of_one(idx: np.ndarray) -> bool:
    """Whether every index is its predecessor plus one (checked block by block: no
    whole-batch temporary, and an early no)."""
    for a in range(0, idx.size - 1, BLOCK_CELLS):
        if not np.all(np.diff(idx[a : a + BLOCK_CELLS + 1]) == 1):
            return False
    return True
