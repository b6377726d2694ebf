"""Every PNG kind memprog draws reads at a glance (issue 27): not blank, every axis labelled,
colour bars with their unit and clipped range, stuck and failed cells in their own colour
with a legend, titles that name the run and the chip.

Backend: the simulated on-chip bench (``@memprog``) for the CLI figures; the figures are
captured as matplotlib Figures when saved (their artists inspected) and as PNG files (their
pixels inspected). Copies go to ``$MEMPROG_ARTIFACTS/figures`` to be looked at.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from memprog.protocols.results import TuneResult  # noqa: E402
from memprog.reporting.outcome import FLAG_COLOURS  # noqa: E402
from tests.dashboard_helpers import artifacts_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ONCHIP = str(ROOT / "benches" / "sim_onchip.yaml")


@pytest.fixture
def saved(monkeypatch):
    """Every Figure saved while the test runs, with the path it was saved to."""
    figs: list[tuple[Figure, Path]] = []
    orig = Figure.savefig

    def spy(self, fname, *a, **k):
        figs.append((self, Path(fname)))
        return orig(self, fname, *a, **k)

    monkeypatch.setattr(Figure, "savefig", spy)
    return figs


def _keep(path: Path) -> None:
    d = artifacts_dir() / "figures"
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, d / path.name)


def _is_colorbar(ax) -> bool:
    return getattr(ax, "_colorbar", None) is not None


def _check(fig: Figure, png: Path, *, legends: int = 0, title_has: tuple[str, ...] = ()) -> str:
    """The PNG is not blank; every plot axes has both labels, every colour bar a label with
    a unit; at least ``legends`` legends; the title carries ``title_has``. Returns the text
    of every label (for the caller's own checks)."""
    img = mpimg.imread(png)[..., :3]
    assert img.std() > 0.05, f"{png.name} looks blank (pixel std {img.std():.3f})"
    texts = []
    plot_axes = [a for a in fig.axes if not _is_colorbar(a)]
    assert plot_axes
    for ax in plot_axes:
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), (png.name, ax.get_title())
        texts += [ax.get_xlabel(), ax.get_ylabel(), ax.get_title()]
    for ax in fig.axes:
        if _is_colorbar(ax):
            lab = ax.get_ylabel() or ax.get_xlabel()
            assert any(u in lab for u in ("µS", "%", "(")), (png.name, lab)
            texts.append(lab)
    n_leg = sum(ax.get_legend() is not None for ax in fig.axes) + len(fig.legends)
    assert n_leg >= legends, (png.name, n_leg)
    title = (fig._suptitle.get_text() if fig._suptitle is not None else "") + " ".join(
        a.get_title() for a in fig.axes
    )
    for word in title_has:
        assert word in title, (png.name, word, title)
    texts.append(title)
    for ax in fig.axes:
        if ax.get_legend() is not None:
            texts += [t.get_text() for t in ax.get_legend().get_texts()]
    _keep(png)
    return "\n".join(texts)


def _colour_pixels(png: Path, hexc: str) -> int:
    img = (mpimg.imread(png)[..., :3] * 255).round()
    want = np.array([int(hexc[k : k + 2], 16) for k in (1, 3, 5)])
    return int((np.abs(img - want).max(axis=-1) <= 2).sum())


def _tune_result(n_side: int = 6) -> TuneResult:
    n = n_side * n_side
    rows, cols = np.divmod(np.arange(n), n_side)
    final = 500.0 + np.linspace(-3, 3, n)
    flags = np.array([""] * n, dtype=object)
    final[7] = 10.0  # a stuck cell far below every target
    flags[7] = "stuck"
    conv = np.ones(n, dtype=bool)
    conv[7] = False
    return TuneResult("alibart", rows + 20, cols + 100, np.full(n, 500.0), final, np.ones(n), np.ones(n),
                      conv, flags, 5.0)  # fmt: skip


@pytest.mark.slow
def test_tune_maps_clip_the_scale_and_paint_the_stuck_cell(tmp_path, saved):
    """A stuck cell at 10 µS among 500 µS targets: the final-read scale stays around 500 µS
    (it is not stretched to 10), the colour bar says it is clipped, and the stuck cell is
    painted in the stuck colour with a legend that counts it."""
    from memprog.cli.tune import _plot_tune

    png = tmp_path / "maps.png"
    _plot_tune(_tune_result(), "hfo2_1t1r", png, "run-abc", "CHIP-7")
    fig, _ = saved[-1]
    text = _check(fig, png, legends=2, title_has=("run-abc", "CHIP-7"))
    final_ax = fig.axes[1]
    lo, hi = final_ax.images[0].get_clim()
    assert lo > 400 and hi < 600, (lo, hi)  # not stretched by the 10 µS cell
    assert "percentile" in text and "beyond" in text
    assert "stuck (1)" in text
    assert _colour_pixels(png, FLAG_COLOURS["stuck"]) > 50
    # integer ticks at the physical rows/columns (no -0.5, 0.5 ticks)
    for tick in final_ax.get_yticks():
        assert float(tick).is_integer(), final_ax.get_yticks()


def test_tune_maps_say_when_no_cell_is_stuck(tmp_path, saved):
    from memprog.cli.tune import _plot_tune

    res = _tune_result()
    res.flags[7] = ""
    res.final_us[7] = 500.0
    png = tmp_path / "maps_clean.png"
    _plot_tune(res, "hfo2_1t1r", png, "run-x", "CHIP-7")
    text = _check(saved[-1][0], png, legends=1)
    assert "no stuck or failed cell" in text


@pytest.mark.slow
def test_program_layer_maps_are_not_squashed_by_an_outlier(tmp_path, saved):
    """One cell stuck at 800 µS must not set the conductance scale (before: target and
    achieved maps looked identical, squashed into the low colours)."""
    import torch

    import memprog
    from memprog.jobs import ProgramParams, load_program_input, run_program, write_report

    g = torch.Generator().manual_seed(3)
    sd = {"fc0.weight": torch.randn(5, 6, generator=g), "fc0.bias": torch.zeros(5)}
    torch.save(sd, tmp_path / "w.pt")
    net = load_program_input(tmp_path / "w.pt")
    with memprog.open_bench(ONCHIP) as b:
        rep = run_program(b, net, ProgramParams(copies=1, settle_s=0.0), run_id="run-prog1")
    r = rep.result
    r.final_us[0] = 800.0
    r.flags[0] = "stuck"
    files = write_report(rep, tmp_path / "rep", "hfo2_1t1r", {"chip_id": "CHIP-P"})
    png = Path(files["png"][0])
    fig = next(f for f, p in saved if p == png)
    text = _check(fig, png, legends=2, title_has=("run-prog1", "CHIP-P", "layer 0"))
    tgt_lo, tgt_hi = fig.axes[0].images[0].get_clim()
    assert tgt_hi < 800 and tgt_hi <= float(np.max(r.target_us)) + 1e-6
    assert "stuck (" in text and "physical" in text
    assert _colour_pixels(png, FLAG_COLOURS["stuck"]) > 20


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


def test_ladder_png_from_a_levels_run(tmp_path, saved):
    from memprog.cli import app

    png = tmp_path / "ladder.png"
    r = _runner().invoke(
        app, ["levels", "--bench", ONCHIP, "--levels", "12", "--start-us", "100", "--out", str(png)]
    )
    assert r.exit_code in (0, 1), r.output
    text = _check(saved[-1][0], png, legends=2, title_has=("run ", "chip HFO2"))
    assert "tolerance" in text and "µS" in text


def test_demo_png_has_a_legend_and_the_pulse_voltages(tmp_path, saved):
    from memprog.cli import app

    png = tmp_path / "demo.png"
    r = _runner().invoke(
        app, ["sim", "demo", "--cells", "3", "--pulses", "6", "--set-v", "1.1", "--out", str(png)]
    )
    assert r.exit_code == 0, r.output
    fig = saved[-1][0]
    _check(fig, png, legends=1, title_has=("chip HFO2",))
    words = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "+1.1 V" in words and "-1.25 V" in words
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert len(labels) == 3


class _FakeSim:
    """A transfer simulator's ``probability_stats``: a tilted boundary and a spread."""

    def probability_stats(self, pts, n, seed=0):
        p = 1 / (1 + np.exp(-4 * (pts[:, 0] - pts[:, 1])))
        return p, 0.1 * p * (1 - p)


def test_evaluation_png_labels_the_boundary_panel_and_keeps_the_legend_off_the_data(
    tmp_path, saved
):
    from memprog.hwaware.plots import plot_evaluation
    from memprog.hwaware.transfer import TransferResult

    rng = np.random.default_rng(0)
    x = rng.random((80, 2))
    y = (x[:, 0] > x[:, 1]).astype(int)
    res = TransferResult(rng.integers(80, 101, 80), 100, rng.uniform(0.8, 0.95, 100), 0.95)
    png = tmp_path / "eval.png"
    plot_evaluation(
        res,
        png,
        title="test net",
        sim=_FakeSim(),
        x_test=x,
        y_test=y,
        boundary_transfers=10,
        grid=20,
    )
    fig = saved[-1][0]
    _check(fig, png, legends=1)
    ax = fig.axes[1]
    leg = ax.get_legend()
    fig.canvas.draw()
    box, frame = leg.get_window_extent(), ax.get_window_extent()
    assert box.y1 <= frame.y0 + 1 or box.x0 >= frame.x1 - 1, "the legend covers the data"


def test_evaluation_comparison_png(tmp_path, saved):
    from memprog.jobs.evaluate import plot_comparison

    summary = {"measured_accuracies": [0.9, 0.92], "predicted": {"mc_transfers": 50, "source": "preset"},
               "software_accuracy": 0.95}  # fmt: skip
    png = tmp_path / "cmp.png"
    plot_comparison(summary, np.random.default_rng(1).uniform(0.85, 0.95, 50), png)
    fig = saved[-1][0]
    _check(fig, png, legends=1)
    ax, leg = fig.axes[0], fig.axes[0].get_legend()
    fig.canvas.draw()
    assert leg.get_window_extent().x0 >= ax.get_window_extent().x1 - 1, "the legend covers the data"
