"""The program job on the simulated on-chip bench (backend: ``@memprog``, in-process):
small networks programmed, verified and run by VMM or from read-out conductances; each
cell reported once; an interrupted job resumed without pulsing a finished cell again."""

from __future__ import annotations

import numpy as np
import pytest

import memprog
from memprog.hwaware.variability import VariabilityModel
from memprog.jobs import ProgramParams, load_program_input, run_program, write_report
from memprog.jobs.evaluate import compare_with_prediction
from memprog.jobs.weights import ConductanceMap
from memprog.protocols.events import MemorySink
from memprog.protocols.results import TuneResult
from tests.weights_helpers import save_random_net

BENCH = "sim_onchip"


def _net(tmp_path, sizes=(12, 10, 4), seed=0):
    net = load_program_input(save_random_net(tmp_path / "w.pt", sizes, seed))
    x = np.random.default_rng(seed).random((600, sizes[0]))
    # labels = the software network's answers (software accuracy 1), on the 60 inputs with
    # the clearest answers: a random network's close calls would test luck, not the chip
    sc = np.sort(net.forward(x), axis=1)
    keep = np.argsort(sc[:, -1] - sc[:, -2])[-60:]
    return net, (x[keep], net.predict(x[keep]))


class _NoVmm:
    """The on-chip programmer without its controller: a stack with no analog VMM."""

    def __init__(self, prog):
        self._p = prog
        self.info, self.limits = prog.info, prog.limits

    def pulse(self, *a, **k):
        return self._p.pulse(*a, **k)

    def read(self, *a, **k):
        return self._p.read(*a, **k)

    def read_burst(self, *a, **k):  # the rest of the CellProgrammer interface the loops use
        return self._p.read_burst(*a, **k)

    def pulse_read(self, *a, **k):
        return self._p.pulse_read(*a, **k)

    @property
    def bench_time_s(self):
        return self._p.bench_time_s

    def wait(self, seconds):
        w = getattr(self._p, "wait", None)  # Contract C, where the stack has it
        if w is not None:
            w(seconds)


class _Bench:
    def __init__(self, prog):
        self.programmer = prog


@pytest.mark.slow
def test_network_runs_on_the_chip_by_vmm(tmp_path):
    net, data = _net(tmp_path)
    sink = MemorySink()
    with memprog.open_bench(BENCH) as b:
        rep = run_program(b, net, ProgramParams(), test_set=data, sink=sink)
    s = rep.summary()
    assert s["inference"] == "vmm" and s["copies"] == 2
    assert s["software_accuracy"] == 1.0
    assert s["chip_accuracy"] >= 0.9, s
    assert s["cells_total"] == 2 * 2 * (13 * 10 + 11 * 4)
    # every cell streamed to the sink exactly once as it is programmed, then once more in
    # its final (settled, verified) state — the row the store keeps (issue 20)
    n = s["cells_total"]
    keys = [(r["row"], r["col"]) for r in sink.results]
    assert len(keys[:-n]) == len(set(keys[:-n])) == n
    assert keys[-n:] == list(zip(rep.result.rows.tolist(), rep.result.cols.tolist(), strict=True))
    np.testing.assert_array_equal([r["final_us"] for r in sink.results[-n:]], rep.result.final_us)
    assert s["bench_time_s"] > 0 and s["wall_s"] > 0
    # twin compensation: pairs (sum of both copies) closer to target than single cells
    for layer in s["layers"]:
        assert layer["pair_error_rms_us"] < 60
    files = write_report(rep, tmp_path / "rep", "hfo2_1t1r")
    assert all((tmp_path / "rep" / f).exists() for f in ("report.json", "layer0.png", "layer1.png"))
    assert files["png"]


def test_readout_inference_where_the_stack_has_no_vmm(tmp_path):
    net, data = _net(tmp_path, sizes=(6, 5, 3), seed=1)
    with memprog.open_bench(BENCH) as b:
        rep = run_program(_Bench(_NoVmm(b.programmer)), net, ProgramParams(copies=1), test_set=data)
    s = rep.summary()
    assert s["inference"] == "readout" and s["copies"] == 1
    assert s["chip_accuracy"] == s["readout_accuracy"] >= 0.8


def test_conductance_map_is_programmed_as_is():
    m = np.full((4, 6), np.nan)
    m[1:3, 1:5] = np.linspace(100, 800, 8).reshape(2, 4)
    with memprog.open_bench(BENCH) as b:
        # denoise: the HfO2 protocol that removes the as-programmed telegraph noise (a few
        # µS p-p on some cells, more than the 3 µS band), so the settled read is in band
        rep = run_program(b, ConductanceMap(m), ProgramParams(protocol="denoise"))
        chip = b.sim_chip
        working = chip.working_mask.reshape(chip.rows, chip.cols)[1:3, 1:5].ravel()
    r = rep.result
    assert len(r) == 8 and rep.software_accuracy is None and rep.chip_accuracy is None
    assert r.within_tolerance[working].all()


class _StopAfter(MemorySink):
    """Interrupts the job after ``n`` checkpoints (as a Ctrl-C would)."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def record_event(self, event):
        super().record_event(event)
        if event.get("event") == "checkpoint":
            self.n -= 1
            if self.n == 0:
                raise KeyboardInterrupt


@pytest.mark.slow
def test_resume_pulses_no_finished_cell_again(tmp_path):
    net, data = _net(tmp_path, sizes=(10, 8, 3), seed=2)
    params = ProgramParams(chunk_cells=40)
    first = _StopAfter(2)
    with memprog.open_bench(BENCH) as b:
        with pytest.raises(KeyboardInterrupt):
            run_program(b, net, params, sink=first)
        done_keys = {(r["row"], r["col"]) for r in first.results}
        frame = first.results_frame()
        done = TuneResult(
            "program", frame["row"], frame["col"], frame["target_us"], frame["final_us"],
            frame["pulses"], frame["reads"], frame["converged"], frame["flags"], frame["tolerance_us"],
        )
        chip = b.sim_chip
        before = chip.true_conductance_us().copy()
        second = MemorySink()
        rep = run_program(b, net, params, test_set=data, sink=second, done=done)
        after = chip.true_conductance_us()
    assert 0 < len(done_keys) < rep.summary()["cells_total"]
    total = rep.summary()["cells_total"]
    # the last `total` rows are every cell's final (settled) row; the ones before, the cells
    # programmed by this run
    assert {(r["row"], r["col"]) for r in second.results[-total:]} == set(
        zip(rep.result.rows.tolist(), rep.result.cols.tolist(), strict=True)
    )
    again = {(r["row"], r["col"]) for r in second.results[:-total]}
    # resume reads before it trusts (issue 20): a finished cell is programmed again only
    # when the re-read finds it outside its band, and the resume says how many
    retuned = rep.summary()["resume"]["cells_retuned"]
    assert len(again & done_keys) == retuned < len(done_keys) / 4
    assert len(again) + len(done_keys) - retuned == rep.summary()["cells_total"]
    # a kept cell whose pair the job's settle found out of band (its twin stuck) is given a
    # new target and re-tuned, announced by a pair_compensation event: not untouched
    kept_t = {(r["row"], r["col"]): r["target_us"] for r in first.results}
    moved = {
        (r["row"], r["col"]) for r in second.results[-total:]
        if (r["row"], r["col"]) in kept_t and r["target_us"] != kept_t[(r["row"], r["col"])]
    }  # fmt: skip
    paired = sum(e["cells"] for e in second.events if e.get("event") == "pair_compensation")
    assert len(moved - again) <= paired
    # a kept cell the job's final settle found relaxed out of band is re-tuned there: its
    # final row counts the new pulses and carries the `relaxed` flag (pulsed, and said so)
    kept_p = {(r["row"], r["col"]): r["pulses"] for r in first.results}
    final_rows = {(r["row"], r["col"]): r for r in second.results[-total:]}
    resettled = {k for k in done_keys - again if final_rows[k]["pulses"] > kept_p[k]}
    assert all("relaxed" in final_rows[k]["flags"] or k in moved for k in resettled)
    assert len(resettled) < len(done_keys) / 4
    rr, cc = np.array(sorted(done_keys - again - moved - resettled)).T
    # finished cells within band were not pulsed: only relaxation/noise-free truth unchanged
    np.testing.assert_allclose(after[rr, cc], before[rr, cc], atol=1.0)
    assert rep.chip_accuracy >= 0.85


@pytest.mark.slow
def test_known_stuck_cells_are_avoided_not_pulsed_and_made_up_for(tmp_path):
    net, data = _net(tmp_path, sizes=(20, 12, 4), seed=3)
    with memprog.open_bench(BENCH) as b:
        chip = b.sim_chip
        bad = ~chip.working_mask.reshape(chip.rows, chip.cols)
        truth = chip.true_conductance_us()
        known = {(int(r), int(c)): float(truth[r, c]) for r, c in np.argwhere(bad)}
        rep = run_program(b, net, ProgramParams(), test_set=data, known_stuck=known)
    pl = rep.plan.placement
    assert pl.avoided_stuck > 0  # spare rows and columns were used to dodge them
    r = rep.result
    skipped = r.has_flag("skipped")
    assert skipped.sum() == pl.stuck_inside and (r.pulses[skipped] == 0).all()
    # few cells left that the protocol found stuck (11 % without the map), pairs close
    assert (r.has_flag("stuck") & ~skipped).mean() < 0.01
    for layer in rep.summary()["layers"]:
        assert layer["pair_error_rms_us"] < 10, layer
    assert rep.chip_accuracy >= 0.95


@pytest.mark.slow
def test_prediction_vs_chips(tmp_path):
    net, data = _net(tmp_path, sizes=(10, 8, 3), seed=4)
    out = compare_with_prediction(
        tmp_path / "w.pt", BENCH, 2, VariabilityModel.from_preset("tio2_passive"), data,
        mc_transfers=200, png=tmp_path / "cmp.png",
    )
    assert len(out["measured_accuracies"]) == 2 and out["copies"] == 1
    assert {c["seed"] for c in out["chips"]} == {1, 2}  # two different chips
    # two different chips: their stuck census or what programming them cost differs
    a, b = ({k: c[k] for k in ("cells_stuck", "cells_within_tolerance", "bench_time_s")} for c in out["chips"])
    assert a != b, (a, b)
    # the prediction covers what the chips measured
    assert out["measured_mean_in_predicted_5_95"], out
    assert 0 <= out["predicted"]["p5"] <= out["predicted"]["p95"] <= 1
    assert (tmp_path / "cmp.png").exists()


def test_feedforward_on_the_tio2x_chip(tmp_path):
    net, data = _net(tmp_path, sizes=(4, 3, 2), seed=6)
    with memprog.open_bench("sim_onchip_tio2x") as b:
        rep = run_program(b, net, ProgramParams(protocol="feedforward"), test_set=data)
    s = rep.summary()
    assert s["cells_within_tolerance"] == s["cells_total"]
    assert s["chip_accuracy"] >= 0.95
