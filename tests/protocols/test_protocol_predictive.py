"""The predictive protocol (issue 25): a response model per cell, learned through reads only.

Backends: the on-chip bench (``sim_onchip``: real driver, @memprog simulator) for HfO2 and
TiO2-x, the 4200 + 707B bench for the passive TiO2 crossbar, and a DirectChipProgrammer
(a CellProgrammer straight onto a SimChip) where the chip's own counters must match the
protocol's pulse and read counts cell for cell (the on-chip controller reads whole rows).
The figures of the whole 256x256 map are in ``benchmarks/bench_predictive.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from memprog import open_bench
from memprog.bench.direct import DirectChipProgrammer
from memprog.core.errors import ConfigError
from memprog.protocols.array import random_level_map, tune_predictive_map
from memprog.protocols.events import MemorySink
from memprog.protocols.predictive import (
    PredictiveParams,
    predictive_defaults,
    priors_from_characterisation,
    priors_from_variability,
    tune_predictive,
)
from memprog.protocols.programmer import CellProgrammer
from memprog.protocols.results import FLAG_STUCK, TuneResult
from memprog.sim_instruments import SimChip
from memprog.store.variability import MissingDataError

ROOT = Path(__file__).resolve().parents[2]
BENCHES = ROOT / "benches"


def _map_cells(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = random_level_map(n, n, 64, seed=seed)
    r, c = np.nonzero(np.isfinite(m))
    return r, c, m[r, c]


def _within(chip, res: TuneResult) -> np.ndarray:
    true = chip.true_conductance_us()[res.rows, res.cols]
    return np.abs(true - res.target_us) <= res.tolerance_us


@pytest.fixture(scope="module")
def hfo2_run():
    """A 32x32 corner of the 64-level map on the HfO2 bench, then 1 h of retention."""
    r, c, t = _map_cells(32)
    sink = MemorySink()
    with open_bench(BENCHES / "sim_onchip.yaml") as bench:
        chip = bench.sim_chip
        b0 = bench.bench_time_s
        res = tune_predictive(bench.programmer, r, c, t, sink=sink)
        bench_s = bench.bench_time_s - b0
        working = chip.working_mask[r, c]
        within_settle = _within(chip, res)
        bench.programmer.wait(3600.0)
        within_1h = _within(chip, res)
    return res, working, within_settle, within_1h, bench_s, sink


def test_hfo2_map_lands_in_band_in_few_pulses(hfo2_run):
    res, working, within_settle, within_1h, bench_s, _ = hfo2_run
    assert 0.05 < (~working).mean() < 0.2  # Li 2018: 11 % unresponsive, on this corner too
    # what the chip holds after the protocol's settle and after 1 h (truth, not reads)
    assert within_settle[working].mean() >= 0.995  # measured: 99.8 %, 2 of 902 (256x256: 99.95 %)
    assert within_1h[working].mean() >= 0.995
    assert res.converged[working].mean() >= 0.99
    assert np.all(res.converged | (res.flags != ""))  # every cell that did not converge says why
    # every cell counted, the dead ones included (Alibart's array job: 25.6 per cell)
    assert res.pulses.mean() <= 6.0  # measured: 4.35
    # one settle per batch and short relaxation waits: seconds, not tens of seconds
    assert bench_s < 8.0  # measured: 6.0 s (the waits do not scale with the cell count)
    assert res.bench_time_s == pytest.approx(bench_s)


def test_hfo2_stuck_cells_are_flagged_after_two_strong_pulses(hfo2_run):
    res, working, *_ = hfo2_run
    stuck = res.has_flag(FLAG_STUCK)
    assert np.array_equal(stuck, ~working)  # every dead cell, and no working one
    assert res.pulses[~working].max() <= 2  # k = stuck_pulses strong SETs, not hundreds
    assert not res.converged[~working].any()
    assert res.pulses.max() <= PredictiveParams().max_pulses


def test_hfo2_events_follow_the_sink_conventions(hfo2_run):
    res, _, _, _, _, sink = hfo2_run
    assert [e["event"] for e in sink.events[:1]] == ["tune_start"]
    assert sink.events[-1]["event"] == "tune_end"
    assert sink.events[-1]["summary"]["cells"] == len(res)
    # the batch's learning is reported: relaxation fit, one settle plan per batch
    fit = sink.events_of("relaxation_fit")[0]
    assert 0.3 < fit["tau_s"] < 3.0  # measured from the reads: ~0.95 s
    assert len(sink.events_of("settle_plan")) == 1
    # per-cell results streamed once each, and flagged cells announced
    assert len(sink.results) == len(res)
    assert len(sink.events_of("cell_flagged")) == int((~res.converged).sum())


def test_pulse_bound_holds_for_every_cell():
    r, c, t = _map_cells(16, seed=3)
    chip = SimChip(16, 16, "hfo2_1t1r", seed=11)
    p = predictive_defaults(DirectChipProgrammer(chip).info).model_copy(update={"max_pulses": 4})
    res = tune_predictive(DirectChipProgrammer(chip), r, c, t, params=p)
    assert res.pulses.max() <= 4
    assert (res.pulses == 4).any()  # the bound was reached by someone: it is what held them
    over = res.has_flag("pulse_budget")
    assert over.any() and not res.converged[over].any()


def test_pulse_and_read_counts_match_the_chip_counters():
    r, c, t = _map_cells(16, seed=2)
    chip = SimChip(16, 16, "hfo2_1t1r", seed=7)
    prog = DirectChipProgrammer(chip)
    p0, r0 = chip.pulse_count, chip.read_count
    res = tune_predictive(prog, r, c, t)
    assert int(res.pulses.sum()) == chip.pulse_count - p0
    assert int(res.reads.sum()) == chip.read_count - r0
    assert res.pulses.sum() > len(res)  # it did pulse (a protocol that counted nothing fails)


class _InterfaceOnly(CellProgrammer):
    """Exposes the CellProgrammer interface of a stack and refuses anything else.

    Why: a protocol must learn through reads; reaching for the simulated chip (its
    parameters, its true conductance) through the programmer must fail loudly. The error
    is not an AttributeError, so ``getattr(x, name, default)`` cannot swallow it.
    """

    ALLOWED = frozenset({"info", "limits", "pulse", "read", "read_burst", "pulse_read",
                         "read_array", "wait", "close", "bench_time_s"})  # fmt: skip

    def __init__(self, inner: CellProgrammer) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "touched", set())

    def __getattribute__(self, name: str):
        if name.startswith("__") or name in ("_inner", "touched", "ALLOWED"):
            return object.__getattribute__(self, name)
        if name not in _InterfaceOnly.ALLOWED:
            raise RuntimeError(f"the protocol reached for programmer.{name}")
        object.__getattribute__(self, "touched").add(name)
        return getattr(object.__getattribute__(self, "_inner"), name)

    def pulse(self, *a, **k):  # pragma: no cover - resolved through __getattribute__
        raise NotImplementedError

    def read(self, *a, **k):  # pragma: no cover
        raise NotImplementedError


def test_protocol_learns_through_the_interface_only():
    r, c, t = _map_cells(16, seed=4)
    chip = SimChip(16, 16, "hfo2_1t1r", seed=9)
    guard = _InterfaceOnly(DirectChipProgrammer(chip))
    res = tune_predictive(guard, r, c, t)  # raises if anything but the interface is touched
    assert {"pulse", "read", "wait"} <= guard.touched
    working = chip.working_mask[r, c]
    assert _within(chip, res)[working].mean() >= 0.99  # and it still lands the cells


@pytest.mark.parametrize("module", ["predictive", "predictive_model", "predictive_settle"])
def test_protocol_modules_import_nothing_from_the_simulator(module):
    src = (ROOT / "protocols" / f"{module}.py").read_text(encoding="utf-8")
    names: list[str] = []
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    assert names  # the parse found the imports
    assert not [n for n in names if "sim_instruments" in n or "drivers" in n]
    for word in ("sim_chip", "true_conductance", "working_mask", "DeviceParams", "presets"):
        assert word not in src


def test_bad_targets_are_refused_before_any_pulse():
    chip = SimChip(8, 8, "hfo2_1t1r", seed=1)
    with pytest.raises(ConfigError, match="targets_us"):
        tune_predictive(DirectChipProgrammer(chip), [0, 1], [0, 1], [100.0, 9e6])
    assert chip.pulse_count == 0 and chip.read_count == 0


def test_gate_prior_beyond_the_bench_limit_is_refused():
    chip = SimChip(8, 8, "hfo2_1t1r", seed=1)
    p = PredictiveParams(gate_v_max=5.0)
    with pytest.raises(ConfigError, match="gate_v_max"):
        tune_predictive(DirectChipProgrammer(chip), [0], [0], [500.0], params=p)
    assert chip.pulse_count == 0


def test_characterisation_priors_replace_the_technology_ones():
    base = PredictiveParams()
    p = priors_from_characterisation(base, {"set_threshold_v": 0.95, "relax_tau_s": None})
    assert p.set_vth_v == 0.95 and p.reset_vth_v == base.reset_vth_v
    assert p.relax_tau_s == base.relax_tau_s
    assert priors_from_characterisation(base, None) is base


def test_tio2x_chip_converges_within_tolerance():
    with open_bench(BENCHES / "sim_onchip_tio2x.yaml") as bench:
        prog, chip = bench.programmer, bench.sim_chip
        lo, hi = prog.info.g_range_us
        t = np.random.default_rng(0).uniform(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo), 256)
        r, c = np.divmod(np.arange(256), 16)
        res = tune_predictive(prog, r, c, t)
        within = _within(chip, res)
    assert res.converged.all()  # measured: 256 of 256
    assert within.mean() >= 0.99  # the true state, after the settle
    assert res.pulses.mean() <= 6  # measured: 3.3


@pytest.mark.slow  # ~5 s: 64 serial cells through two simulated instruments, a settle each
def test_tio2_passive_crossbar_converges_through_both_instruments():
    """8x8 passive TiO2 (4200 + 707B, serial): one cell at a time, amplitude steps, no gate.

    The reads decide (later writes disturb earlier cells on a passive array, so their true
    state is not the figure; the last cell's is).
    """
    levels = np.linspace(100.0, 400.0, 8)
    r, c = np.divmod(np.arange(64), 8)
    t = levels[(r + c) % 8]
    with open_bench(BENCHES / "sim_k4200_707b.yaml") as bench:
        prog, chip = bench.programmer, bench.sim_chip
        p = predictive_defaults(prog.info, prog.limits)
        res = tune_predictive(prog, r, c, t, params=p)
        last_true = float(chip.true_conductance_us(r[-1], c[-1])[0])
    # issue 25: with Rao's denoise pulses (sub-threshold kicks of ~5 µS on TiO2) and 6
    # settle reads, 51 of 64 converged at 27 pulses per cell; without them 59 at 7.5; with
    # 16 settle reads 63 at 6.6. The rest are flagged, none left unflagged
    assert res.converged.mean() >= 0.95
    assert res.pulses.mean() <= 10.0
    assert not res.extra["denoise_pulses"].any()
    assert np.all(res.converged | (res.flags != ""))
    assert res.within_tolerance[res.converged].mean() >= 0.95
    assert res.pulses.max() <= p.max_pulses
    assert abs(last_true - t[-1]) / t[-1] < 0.02


def _tio2_direct(seed: int):
    """A passive TiO2 chip's stuck cells (to 250 µS) then a random 64-level 8x8 corner."""
    chip = SimChip(16, 16, "tio2_passive", seed=seed)
    dead = np.flatnonzero(~chip.working_mask.ravel())
    m = random_level_map(8, 8, 64, 100.0, 400.0, seed=seed)
    rr, cc = np.divmod(np.arange(64), 8)
    assert chip.working_mask[rr, cc].all()  # the corner is all working cells
    r = np.concatenate([dead // 16, rr])
    c = np.concatenate([dead % 16, cc])
    t = np.concatenate([np.full(dead.size, 250.0), m[rr, cc]])
    return chip, r, c, t, int(dead.size)


@pytest.mark.slow  # ~1 s: 68 serial cells, a settle each
def test_tio2_passive_counts_match_the_chip_and_stuck_cells_are_bounded():
    """The serial path (batch of one, settle re-tunes): exact counts, stuck cells cut short."""
    chip, r, c, t, n_dead = _tio2_direct(seed=2)
    assert n_dead >= 3  # HRS- and LRS-stuck cells (Drolet: 0.5 % each; this seed has 4)
    prog = DirectChipProgrammer(chip)
    p0, r0 = chip.pulse_count, chip.read_count
    res = tune_predictive(prog, r, c, t)
    # what the chip counted is what the result says, cell for cell summed
    assert int(res.pulses.sum()) == chip.pulse_count - p0
    assert int(res.reads.sum()) == chip.read_count - r0
    stuck = res.has_flag(FLAG_STUCK)
    # every stuck cell whose target is out of its reach is flagged stuck after a few
    # silent steps up to the amplitude cap and stuck_pulses capped pulses: measured 2-5,
    # against the 60-pulse bound a cell chasing its noise may use
    far = np.abs(chip.true_conductance_us()[r[:n_dead], c[:n_dead]] - 250.0) > 50.0
    assert stuck[:n_dead][far].all()
    assert res.pulses[:n_dead].max() <= 10
    assert not stuck[n_dead:].any()  # no working cell is called stuck
    assert not res.extra["denoise_pulses"].any()  # no sub-threshold kicks on TiO2
    assert res.converged[n_dead:].mean() >= 0.9


def test_map_helper_validates_before_any_pulse_and_keeps_the_order():
    chip = SimChip(8, 8, "hfo2_1t1r", seed=1)
    prog = DirectChipProgrammer(chip)
    with pytest.raises(ConfigError, match="target_map_us"):
        tune_predictive_map(prog, np.full((4, 4), 500.0), origin=(6, 6))  # off the array
    assert chip.pulse_count == 0 and chip.read_count == 0
    m = np.full((3, 3), 800.0)
    m[1, 1] = np.nan  # left alone
    res = tune_predictive_map(prog, m, origin=(2, 4), order="column-major")
    assert list(zip(res.rows, res.cols, strict=True))[:3] == [(2, 4), (3, 4), (4, 4)]
    assert len(res) == 8 and (5, 5) not in set(zip(res.rows, res.cols, strict=True))
    assert chip.true_conductance_us(3, 5)[0] < 300  # the NaN cell was never programmed


def test_defaults_take_the_cli_flags_and_refuse_unknown_ones():
    info = DirectChipProgrammer(SimChip(4, 4, "hfo2_1t1r", seed=1)).info
    p = predictive_defaults(info, None, tolerance_rel=0.02, max_pulses=None, settle_s=0.0)
    assert (p.tolerance_rel, p.max_pulses, p.settle_s) == (0.02, PredictiveParams().max_pulses, 0.0)
    with pytest.raises(ConfigError, match="overrides"):
        predictive_defaults(info, None, tolerance_pct=2)
    tio2 = predictive_defaults(DirectChipProgrammer(SimChip(4, 4, "tio2_passive", seed=1)).info)
    assert tio2.set_vth_v == 0.8 and not tio2.observe_s  # the technology's priors


def test_variability_census_sets_the_read_error_prior():
    import pandas as pd  # deferred: pandas is heavy and only this test needs it

    class Census:  # what VariabilityDB.rtn_stats returns
        def __init__(self, frame):
            self.frame = frame

        def rtn_stats(self):
            if self.frame is None:
                raise MissingDataError("rtn", "chip_id = 1")
            return self.frame

    base = PredictiveParams()
    frame = pd.DataFrame({"phase": ["after", "before"], "median_us": [0.4, 3.0]})
    assert priors_from_variability(base, Census(frame)).read_noise_us == 1.5
    assert priors_from_variability(base, Census(None)) is base  # the store stays optional
