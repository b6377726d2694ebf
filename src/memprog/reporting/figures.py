"""Shared pieces of memprog's PNG figures: robust colour limits, flag overlays, labels.

Why one module: every heat map a user opens (``program``'s layer maps, ``tune --png``)
must read the same way at a glance. A few stuck cells at 10 µS or 800 µS must not squash
the colour scale of thousands of working ones (so limits are percentiles, and the title of
the colour bar says which percentiles and how many cells lie beyond them); stuck and
failed cells are drawn in their own colours from the one flag table
(:data:`memprog.reporting.outcome.FLAG_COLOURS`, the dashboard's too) with a legend that counts them;
every axis says what it is and in which unit, and the title names the run and the chip.

Nothing here decides a result: it only draws what the caller measured.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memprog.reporting.outcome import BENIGN_FLAGS, flag_layers

#: above this many painted cells, no outlines (one image instead: fast at 256 x 256)
OUTLINE_MAX_CELLS = 2000

#: the percentiles a conductance or error colour scale spans (1st to 99th: a 1 % tail of
#: outliers on either side saturates instead of setting the scale)
PCT_LO, PCT_HI = 1.0, 99.0


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display needed, CI included)."""
    import matplotlib  # deferred: matplotlib (~0.3 s) only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # deferred: after the Agg backend is chosen

    return plt


def robust_limits(values: Any, symmetric: bool = False) -> tuple[float, float, str]:
    """Colour limits spanning the 1st-99th percentile of the finite ``values``.

    Returns ``(vmin, vmax, note)``; ``note`` states the clipped range for the colour bar
    ("1st-99th percentile; 3 cells beyond") so a saturated colour is never read as a value.
    ``symmetric``: limits ±(99th percentile of |value|), for signed errors.
    """
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0, "no data"
    if symmetric:
        hi = float(np.percentile(np.abs(v), PCT_HI))
        hi = max(hi, 1e-3)
        lo = -hi
        note = f"±{PCT_HI:g}th percentile of |value|"
    else:
        lo, hi = (float(x) for x in np.percentile(v, [PCT_LO, PCT_HI]))
        if hi - lo < 1e-9:  # one value everywhere: a visible band around it
            pad = max(abs(hi) * 0.01, 1e-3)
            lo, hi = lo - pad, hi + pad
        note = f"{PCT_LO:g}st-{PCT_HI:g}th percentile"
    beyond = int(((v < lo) | (v > hi)).sum())
    if beyond:
        note += f"; {beyond} cell{'s' if beyond != 1 else ''} beyond (saturated)"
    return lo, hi, note


def heat_map(
    fig: Any,
    ax: Any,
    data: np.ndarray,
    extent: tuple[float, ...],
    lims: tuple[float, float, str],
    cmap: str,
    label: str,
) -> Any:
    """One map with its colour bar: ``label`` (with the unit) and the clipped range on it."""
    lo, hi, note = lims
    im = ax.imshow(
        data, extent=extent, vmin=lo, vmax=hi, cmap=cmap, interpolation="nearest", aspect="auto"
    )
    extend = "both" if "beyond" in note else "neither"
    cb = fig.colorbar(im, ax=ax, shrink=0.85, extend=extend)
    cb.set_label(f"{label}\nscale: {note}", fontsize=8)
    return cb


def array_axes(ax: Any) -> None:
    """Axis labels of an array map (physical positions) and integer ticks (no -0.5 rows)."""
    from matplotlib.ticker import MaxNLocator  # deferred: matplotlib, only when drawing

    ax.set_xlabel("array column (physical)")
    ax.set_ylabel("array row (physical)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def paint_flags(
    ax: Any,
    extent: tuple[float, ...],
    origin: tuple[int, int],
    shape: tuple[int, int],
    rows: np.ndarray,
    cols: np.ndarray,
    flags: Any,
) -> int:
    """Paint stuck and failed cells over a map, whole cells in their own colours, with a legend.

    Colours come from the one flag table (memprog.reporting.outcome, the dashboard's too); benign
    flags (re-tuned after a relaxation or a disturb) are not painted: those cells are fine.
    Failures are drawn last, on top (the table's order). The legend sits below the axes so
    it never covers a cell, and it always appears: with no such cell it says so.
    Returns the number of painted cells.
    """
    # deferred: matplotlib, only when drawing
    from matplotlib.collections import PatchCollection

    # deferred: matplotlib, only when drawing
    from matplotlib.patches import Patch, Rectangle

    colour_of = np.full(len(rows), "", dtype=object)
    handles = []
    for word, colour, mask in flag_layers(flags):  # failures last: they win
        if word in BENIGN_FLAGS or not mask.any():
            continue
        colour_of[mask] = colour
        handles.append(
            Patch(
                facecolor=colour,
                edgecolor="k",
                lw=0.5,
                label=f"{word.replace('_', ' ')} ({int(mask.sum())})",
            )
        )
    painted = colour_of != ""
    if painted.sum() > OUTLINE_MAX_CELLS:
        # a whole array: one RGBA image (thousands of outlined boxes cost seconds to draw)
        from matplotlib.colors import to_rgba  # deferred: matplotlib, only when drawing

        rgba = np.zeros((*shape, 4))
        pr, pc, pcol = rows[painted] - origin[0], cols[painted] - origin[1], colour_of[painted]
        for colour in set(pcol.tolist()):
            m = pcol == colour
            rgba[pr[m], pc[m]] = to_rgba(colour)
        ax.imshow(rgba, extent=extent, interpolation="nearest", aspect="auto")
    elif painted.any():
        # a black outline sets a painted cell apart from the heat map's own colours
        boxes = [
            Rectangle((c - 0.5, r - 0.5), 1, 1)
            for r, c in zip(rows[painted], cols[painted], strict=True)
        ]
        ax.add_collection(
            PatchCollection(
                boxes, facecolors=list(colour_of[painted]), edgecolors="k", linewidths=0.6
            )
        )
    else:
        handles = [
            Patch(facecolor="none", edgecolor="#2e7d32", label="none: no stuck or failed cell")
        ]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncol=min(4, len(handles)),
        fontsize=7,
        frameon=False,
        title="painted in their own colour: flag (cells)",
        title_fontsize=7,
    )
    return int(painted.sum())


def run_title(what: str, run_id: str | None, chip: str | None, technology: str) -> str:
    """``memprog WHAT — run R on chip C (technology)``: which run and chip a figure shows."""
    parts = [f"memprog {what}"]
    where = []
    if run_id:
        where.append(f"run {run_id}")
    if chip:
        where.append(f"chip {chip}")
    tail = ", ".join(where)
    tech = f" ({technology})" if technology else ""
    return f"{parts[0]} — {tail}{tech}" if tail else f"{parts[0]}{tech}"


__all__ = [
    "robust_limits",
    "heat_map",
    "array_axes",
    "paint_flags",
    "run_title",
    "pyplot",
    "PCT_LO",
    "PCT_HI",
]
