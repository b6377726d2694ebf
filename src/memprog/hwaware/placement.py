"""Where each weight of a network goes on the array.

Why this is a module of its own: the placement is the contract between programming and
inference (the VMM must drive exactly the rows the weights were written to and read
exactly their columns), and a resumed run must find it again unchanged, so it is a plain
value (:meth:`Placement.to_dict`) stored with the run. It lives in ``hwaware``, below the
jobs, because hardware-aware training needs the very layout the program job writes: each
device's disturb key is the number of cells written after it there
(:mod:`memprog.hwaware.order`). The conductance of each pair comes from the one pair
mapping, :func:`memprog.hwaware.mapping.weights_to_pairs`.

The layout, and why:

- **Differential pairs.** A weight is ``w = (G+ − G−)·scale``: the pair's two cells sit in
  two adjacent columns (``+`` even, ``−`` odd of the tile) on the same row; the larger one
  carries ``|w|``, the other sits at ``g_min`` (Contract B, min-max scale per layer). The
  bias is one more row driven by a constant input.
- **Tiles.** A layer with more inputs (+1 bias) than rows, or more outputs than column
  pairs, is cut into tiles; the partial sums of a layer's row tiles are added digitally.
- **Several layers on one array.** A VMM drives only its tile's rows (every other row at
  0 V) and reads only its tile's columns, so tiles need only be disjoint rectangles:
  they are packed in shelves (tallest first, left to right, then a new shelf below).
- **Copies.** Where the array has room, every logical conductance is held by ``copies``
  cells on different rows of the same column, driven by the same input: the column sums
  them. The job programs copy 0 first and then the last copy to ``copies·G − (what the
  others reached)``, so a stuck cell (Li 2018: 11 % of HfO2 1T1R cells) or a cell left at
  the edge of its band is compensated by its twin — every cell still programmed once.
- **Known stuck cells** (from the run store's variability database) are avoided where
  the map has room: the rows and columns used are the ones with the fewest stuck cells,
  and a stuck cell that stays inside the layout is not pulsed; its twin takes its share.

A network that does not fit is refused before anything is sent, saying by how much.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memprog.core.errors import ConfigError


@dataclass
class Tile:
    """One rectangle of one layer on the array.

    Attributes:
        layer: layer index.
        in_lo, in_hi: the layer's input rows it holds (the bias row is index ``n_in``).
        out_lo, out_hi: the layer's outputs it holds.
        rows: physical rows, shape (copies, in_hi − in_lo): ``rows[k, i]`` is copy ``k``
            of input ``in_lo + i``.
        cols_plus, cols_minus: physical columns of each output's ``+`` and ``−`` cell.
    """

    layer: int
    in_lo: int
    in_hi: int
    out_lo: int
    out_hi: int
    rows: np.ndarray
    cols_plus: np.ndarray
    cols_minus: np.ndarray

    @property
    def height(self) -> int:
        """Physical rows used."""
        return int(self.rows.size)

    @property
    def width(self) -> int:
        """Physical columns used."""
        return 2 * (self.out_hi - self.out_lo)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "layer": self.layer,
            "in": [self.in_lo, self.in_hi],
            "out": [self.out_lo, self.out_hi],
            "rows": self.rows.tolist(),
            "cols_plus": self.cols_plus.tolist(),
            "cols_minus": self.cols_minus.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tile:
        """Inverse of :meth:`to_dict`."""
        return cls(
            int(d["layer"]),
            int(d["in"][0]),
            int(d["in"][1]),
            int(d["out"][0]),
            int(d["out"][1]),
            np.asarray(d["rows"], dtype=np.int64),
            np.asarray(d["cols_plus"], dtype=np.int64),
            np.asarray(d["cols_minus"], dtype=np.int64),
        )


@dataclass
class Placement:
    """Every tile of every layer, and the array it was made for."""

    array_shape: tuple[int, int]
    copies: int
    tiles: list[Tile]
    layer_shapes: list[tuple[int, int]]  # per layer (in+1, out)
    avoided_stuck: int = 0
    stuck_inside: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def cells_total(self) -> int:
        """Physical cells the placement programs (known stuck ones included)."""
        return int(sum(t.height * t.width for t in self.tiles))

    def tiles_of(self, layer: int) -> list[Tile]:
        """The tiles of one layer."""
        return [t for t in self.tiles if t.layer == layer]

    def cells(self) -> dict[str, np.ndarray]:
        """Flat per-cell arrays: row, col, layer, in_index, out_index, sign (+1/−1), copy."""
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("row", "col", "layer", "i", "j", "sign", "copy")}
        for t in self.tiles:
            c, h = t.rows.shape
            nout = t.out_hi - t.out_lo
            kk, ii, jj, ss = np.meshgrid(
                np.arange(c), np.arange(h), np.arange(nout), np.array([1, -1]), indexing="ij"
            )
            parts["row"].append(t.rows[kk, ii].ravel())
            parts["col"].append(np.where(ss > 0, t.cols_plus[jj], t.cols_minus[jj]).ravel())
            parts["layer"].append(np.full(kk.size, t.layer))
            parts["i"].append((ii + t.in_lo).ravel())
            parts["j"].append((jj + t.out_lo).ravel())
            parts["sign"].append(ss.ravel())
            parts["copy"].append(kk.ravel())
        return {k: np.concatenate(v).astype(np.int64) for k, v in parts.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored with the run, so a resume finds the same layout)."""
        return {
            "array_shape": list(self.array_shape),
            "copies": self.copies,
            "layer_shapes": [list(s) for s in self.layer_shapes],
            "tiles": [t.to_dict() for t in self.tiles],
            "avoided_stuck": self.avoided_stuck,
            "stuck_inside": self.stuck_inside,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Placement:
        """Inverse of :meth:`to_dict`."""
        return cls(
            tuple(d["array_shape"]),  # type: ignore[arg-type]
            int(d["copies"]),
            [Tile.from_dict(t) for t in d["tiles"]],
            [tuple(s) for s in d["layer_shapes"]],  # type: ignore[misc]
            int(d.get("avoided_stuck", 0)),
            int(d.get("stuck_inside", 0)),
            list(d.get("notes", [])),
        )


def _split(n: int, size: int) -> list[tuple[int, int]]:
    """[0, n) in near-equal chunks of at most ``size``."""
    k = -(-n // size)
    edges = np.linspace(0, n, k + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _shelf_pack(
    sizes: list[tuple[int, int]], rows: int, cols: int
) -> tuple[list[tuple[int, int]] | None, int]:
    """Shelf packing of (height, width) rectangles; positions, or None and the width short.

    The shortfall is the width the packing would have needed beyond ``cols`` with all the
    array's rows available (how many more columns the array would need).
    """
    order = sorted(range(len(sizes)), key=lambda k: (-sizes[k][0], -sizes[k][1]))
    pos: list[tuple[int, int] | None] = [None] * len(sizes)
    shelf_top, shelf_h, x = 0, 0, 0
    ok = True
    for k in order:
        h, w = sizes[k]
        if h > rows or w > cols:
            ok = False
            break
        if x + w > cols or shelf_h == 0:
            if shelf_h:  # new shelf below
                shelf_top += shelf_h
                x = 0
            shelf_h = h
        if shelf_top + h > rows:
            ok = False
            break
        pos[k] = (shelf_top, x)
        x += w
    if ok:
        return [p for p in pos if p is not None], 0
    # how wide would the array need to be: one shelf per full-height band
    bands: list[int] = []
    heights: list[int] = []
    for k in order:
        h, w = sizes[k]
        for b in range(len(bands)):
            if sum(heights[: b + 1]) <= rows and heights[b] >= h:
                bands[b] += w
                break
        else:
            bands.append(w)
            heights.append(h)
    return None, max(0, max(bands) - cols)


def place_network(
    layer_shapes: list[tuple[int, int]],
    array_shape: tuple[int, int],
    copies: int | None = None,
    stuck_mask: np.ndarray | None = None,
) -> Placement:
    """Place layers of (in+1) x out conductance pairs on one array.

    Args:
        layer_shapes: per layer (inputs + 1 bias row, outputs).
        array_shape: (rows, cols) of the array.
        copies: cells per logical conductance (1 or 2); None: 2 where everything fits
            twice, else 1.
        stuck_mask: known stuck cells (True), same shape as the array, or None.

    Raises:
        ConfigError: the network does not fit, with the shortfall in columns (or rows).
    """
    R, C = array_shape
    if R < 1 or C < 2:
        raise ConfigError("array_shape", array_shape, "at least 1 row and 2 columns")
    if copies is not None and copies not in (1, 2):
        raise ConfigError("copies", copies, "1 or 2 (or None: as many as fit)")
    for k, (nin, nout) in enumerate(layer_shapes):
        if nin < 1 or nout < 1:
            raise ConfigError(f"layer {k} shape", (nin, nout), "at least one input and one output")
    tries = [copies] if copies is not None else [2, 1]
    short = 0
    for c in tries:
        specs: list[tuple[int, int, int, int, int]] = []  # layer, in_lo, in_hi, out_lo, out_hi
        for k, (nin, nout) in enumerate(layer_shapes):
            for a, b in _split(nin, max(1, R // c)):
                for o0, o1 in _split(nout, C // 2):
                    specs.append((k, a, b, o0, o1))
        sizes = [(c * (b - a), 2 * (o1 - o0)) for _, a, b, o0, o1 in specs]
        pos, short = _shelf_pack(sizes, R, C)
        if pos is None:
            continue
        used_r = max(p[0] + s[0] for p, s in zip(pos, sizes, strict=True))
        used_c = max(p[1] + s[1] for p, s in zip(pos, sizes, strict=True))
        prow, pcol = _choose_lines(used_r, used_c, array_shape, stuck_mask)
        tiles = []
        for (k, a, b, o0, o1), (r0, c0), (h, w) in zip(specs, pos, sizes, strict=True):
            rr = prow[r0 : r0 + h].reshape(c, b - a)
            cc = pcol[c0 : c0 + w]
            tiles.append(Tile(k, a, b, o0, o1, rr, cc[0::2].copy(), cc[1::2].copy()))
        pl = Placement((R, C), c, tiles, [tuple(s) for s in layer_shapes])  # type: ignore[misc]
        if stuck_mask is not None:
            cells = pl.cells()
            inside = int(stuck_mask[cells["row"], cells["col"]].sum())
            pl.stuck_inside = inside
            pl.avoided_stuck = int(stuck_mask.sum()) - inside
        if copies is None and c == 1:
            pl.notes.append("one copy per conductance: the network does not fit twice")
        return pl
    total = sum(n * o * 2 for n, o in layer_shapes)
    raise ConfigError(
        "network size",
        f"{total} cells in layers {[tuple(s) for s in layer_shapes]} (x2 for differential pairs)",
        f"fits one {R}x{C} array",
        f"{short} more columns would be needed" if short else "a layer is taller than the array",
    )


def _choose_lines(
    n_rows: int, n_cols: int, shape: tuple[int, int], stuck: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Physical rows and columns (ascending) for the layout's first n_rows x n_cols block.

    With known stuck cells and spare lines, the rows then the columns with the fewest
    stuck cells (in the other chosen lines) are used; otherwise the first ones.
    """
    R, C = shape
    rows, cols = np.arange(n_rows), np.arange(n_cols)
    if stuck is None or not stuck.any() or (n_rows == R and n_cols == C):
        return rows, cols
    s = np.asarray(stuck, dtype=bool)
    if s.shape != (R, C):
        raise ConfigError("stuck_mask shape", s.shape, f"({R}, {C})")
    for _ in range(2):
        per_row = s[:, cols].sum(axis=1)
        rows = np.sort(np.argsort(per_row, kind="stable")[:n_rows])
        per_col = s[rows].sum(axis=0)
        cols = np.sort(np.argsort(per_col, kind="stable")[:n_cols])
    return rows, cols


__all__ = ["Placement", "Tile", "place_network"]
