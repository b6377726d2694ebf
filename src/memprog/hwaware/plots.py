"""Figures of a transfer evaluation: seed 001's table as bars, and for half-moons the decision
boundary with its variability across transfers (seed 001's Figure 6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memprog.hwaware.transfer import TransferResult, TransferSimulator


def plot_evaluation(
    result: TransferResult,
    out: str | Path,
    *,
    title: str,
    sim: TransferSimulator | None = None,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    boundary_transfers: int = 300,
    grid: int = 80,
    seed: int = 0,
) -> Path:
    """Draw the table (and, given a 2-input binary ``sim``, the boundary panel) into ``out``."""
    import matplotlib  # deferred: matplotlib takes ~0.5 s to import; only a figure needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # deferred: as above (after the Agg backend is chosen)

    boundary = sim is not None and x_test is not None and x_test.shape[1] == 2
    fig, axes = plt.subplots(1, 2 if boundary else 1, figsize=(12 if boundary else 6.5, 4.6))
    axes = np.atleast_1d(axes)
    rows = result.table()
    ax = axes[0]
    labels = [r["bin"] for r in rows]
    pct = [r["percent"] for r in rows]
    bars = ax.bar(labels, pct, color=["#1b7837" if i < 2 else "#999999" for i in range(len(rows))])
    for b, r in zip(bars, rows, strict=True):
        ax.annotate(f"{r['points']}", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("% of simulated transfers classifying the point correctly")
    ax.set_ylabel("% of test points")
    s = result.summary()
    ax.set_title(
        f"{title}\n{s['fraction_correct_in_at_least_95pct'] * 100:.1f} % of points correct in >= 95 % of "
        f"{result.n_transfers} transfers; mean accuracy {s['test_accuracy_mean'] * 100:.1f} %",
        fontsize=9,
    )
    if boundary:
        assert sim is not None and x_test is not None and y_test is not None
        lo, hi = x_test.min(0) - 0.1, x_test.max(0) + 0.1
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid))
        pts = np.stack([gx.ravel(), gy.ravel()], 1)
        mean, std = sim.probability_stats(pts, boundary_transfers, seed=seed)
        ax = axes[1]
        im = ax.pcolormesh(gx, gy, std.reshape(gx.shape), cmap="Blues", shading="auto")
        fig.colorbar(im, ax=ax, label="std of P(class 1) across transfers")
        ax.contour(gx, gy, mean.reshape(gx.shape), levels=[0.5], colors="k", linewidths=1)
        ok = result.fraction_correct >= 0.95
        for cls, mk in ((0, "o"), (1, "s")):
            m = y_test == cls
            ax.scatter(x_test[m & ok, 0], x_test[m & ok, 1], marker=mk, s=12, c="#1b7837", label=f"class {cls}, >= 95 %")
            ax.scatter(x_test[m & ~ok, 0], x_test[m & ~ok, 1], marker=mk, s=12, c="#d73027", label=f"class {cls}, < 95 %")
        ax.set_title(f"mean decision boundary (black line) and its variability ({boundary_transfers} transfers)", fontsize=9)
        ax.set_xlabel("input feature 1 (test-set units)")
        ax.set_ylabel("input feature 2 (test-set units)")
        # below the panel: a legend inside would cover test points
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False,
                  title="test points: class, share of transfers classifying them right", title_fontsize=7)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
