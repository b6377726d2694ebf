"""A network larger than one array, tiled over several chips.

Why: real mappings cut a layer into array-sized tiles (aihwkit and CrossSim split layers at
512 and 1,024 lines; NeuRRAM runs 48 cores of 256×256). One chip's placement
(:func:`memprog.hwaware.placement.place_network`) already cuts a layer into tiles and adds the
partial sums of its row tiles digitally; across chips nothing changes but the address: each
tile goes to one chip, each chip gets an ordinary :class:`Placement` holding only its tiles
(the layer shapes stay the whole network's), so the program job, its resume and its settle
run on each chip unchanged, and the layer matrices the chips hold add up
(:func:`memprog.jobs.program_inference.effective_matrices` of each chip, summed).

How tiles are dealt: cut as one array would cut them (inputs in runs of ``rows // copies``,
outputs in runs of ``cols // 2`` pairs), then dealt largest first to the first chip with
room (shelf packing, as on one array); spare chips then take half the tiles of the busiest
chip, one after another — chips work in parallel, so the busiest chip sets the job's time. A network that even the greedy fill
cannot place on ``n_chips`` arrays is refused with the number of chips it needs.
"""

from __future__ import annotations

import numpy as np

from memprog.core.errors import ConfigError
from memprog.hwaware.placement import Placement, Tile, _shelf_pack, _split

Spec = tuple[int, int, int, int, int]  # layer, in_lo, in_hi, out_lo, out_hi


def tile_specs(layer_shapes: list[tuple[int, int]], array_shape: tuple[int, int], copies: int) -> list[Spec]:
    """Every tile of every layer, cut as one array of ``array_shape`` cuts them."""
    rows, cols = array_shape
    specs: list[Spec] = []
    for k, (nin, nout) in enumerate(layer_shapes):
        for a, b in _split(nin, max(1, rows // copies)):
            for o0, o1 in _split(nout, cols // 2):
                specs.append((k, a, b, o0, o1))
    return specs


def _size(spec: Spec, copies: int) -> tuple[int, int]:
    _, a, b, o0, o1 = spec
    return copies * (b - a), 2 * (o1 - o0)


def _deal(specs: list[Spec], copies: int, array_shape: tuple[int, int], n_chips: int | None) -> list[list[int]] | None:
    """Tiles (indices) per chip: largest first, each to the first chip with room (first fit
    decreasing); None when they do not all fit on ``n_chips`` (None: as many as needed)."""
    rows, cols = array_shape
    order = sorted(range(len(specs)), key=lambda i: -np.prod(_size(specs[i], copies)))
    bins: list[list[int]] = []
    for i in order:
        h, w = _size(specs[i], copies)
        if h > rows or w > cols:
            return None
        for members in bins:
            pos, _ = _shelf_pack([_size(specs[j], copies) for j in members + [i]], rows, cols)
            if pos is not None:
                members.append(i)
                break
        else:
            if n_chips is not None and len(bins) == n_chips:
                return None
            bins.append([i])
    return bins


def _spread(bins: list[list[int]], specs: list[Spec], copies: int, n_chips: int) -> list[list[int]]:
    """Spare chips take work from the busiest ones: half the tiles of the most loaded chip
    move to an empty one until none is empty (a subset of a packed set still packs)."""

    def load(members: list[int]) -> int:
        return int(sum(np.prod(_size(specs[j], copies)) for j in members))

    bins = [list(b) for b in bins]
    while len(bins) < n_chips:
        movable = [b for b in bins if len(b) >= 2]
        if not movable:
            break
        src = max(movable, key=load)
        half = len(src) // 2
        bins.append(src[half:])
        del src[half:]
    return bins + [[] for _ in range(n_chips - len(bins))]


def chips_needed(layer_shapes: list[tuple[int, int]], array_shape: tuple[int, int], copies: int = 1) -> int:
    """How many arrays of ``array_shape`` hold the network (greedy first fit)."""
    specs = tile_specs(layer_shapes, array_shape, copies)
    bins = _deal(specs, copies, array_shape, None)
    if bins is None:
        raise ConfigError("array_shape", array_shape, f"at least {copies} rows and 2 columns per tile")
    return len(bins)


def place_across_chips(
    layer_shapes: list[tuple[int, int]],
    array_shape: tuple[int, int],
    n_chips: int,
    copies: int | None = None,
) -> list[Placement]:
    """One :class:`Placement` per chip (in chip order) holding that chip's tiles.

    Args:
        layer_shapes: per layer (inputs + 1 bias row, outputs).
        array_shape: (rows, cols) of every chip's array (a fleet of one kind of chip).
        n_chips: chips available; a chip that gets no tile gets an empty placement.
        copies: cells per conductance (1 or 2); None: 2 when the tiles fit twice, else 1.

    Raises:
        ConfigError: the network does not fit on ``n_chips`` arrays, naming how many it needs.
    """
    if n_chips < 1:
        raise ConfigError("chips", n_chips, ">= 1")
    if copies is not None and copies not in (1, 2):
        raise ConfigError("copies", copies, "1 or 2 (or None: as many as fit)")
    rows, cols = array_shape
    for c in [copies] if copies is not None else [2, 1]:
        specs = tile_specs(layer_shapes, array_shape, c)
        bins = _deal(specs, c, array_shape, n_chips)
        if bins is None:
            continue
        bins = _spread(bins, specs, c, n_chips)  # chips work in parallel: the busiest sets the time
        placements = []
        for members in bins:
            sizes = [_size(specs[i], c) for i in members]
            pos, _ = _shelf_pack(sizes, rows, cols)
            assert pos is not None  # _deal only keeps packable sets
            tiles = []
            for i, (r0, c0), (h, w) in zip(members, pos, sizes, strict=True):
                k, a, b, o0, o1 = specs[i]
                rr = np.arange(r0, r0 + h, dtype=np.int64).reshape(c, b - a)
                cc = np.arange(c0, c0 + w, dtype=np.int64)
                tiles.append(Tile(k, a, b, o0, o1, rr, cc[0::2].copy(), cc[1::2].copy()))
            tiles.sort(key=lambda t: (t.layer, t.in_lo, t.out_lo))
            pl = Placement((rows, cols), c, tiles, [tuple(s) for s in layer_shapes])  # type: ignore[misc]
            if copies is None and c == 1:
                pl.notes.append("one copy per conductance: the network does not fit twice on these chips")
            placements.append(pl)
        return placements
    need = chips_needed(layer_shapes, array_shape, copies or 1)
    raise ConfigError(
        "chips", n_chips, f">= {need} chips of {rows}x{cols}",
        f"the network's {sum(n * o for n, o in layer_shapes)} weights need {need} arrays"
        + ("" if copies else " at one copy per conductance"),
    )


__all__ = ["place_across_chips", "chips_needed", "tile_specs"]
