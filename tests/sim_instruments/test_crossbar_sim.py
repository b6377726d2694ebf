"""The k4200_707b stack end to end on the simulated bench (backend: @memprog simulator).

What the simulated 4200 measures depends on what the simulated 707B has closed: these
tests check open circuits, misrouting, sneak paths and V/3 (V/2) disturb through the real
drivers, the VISA backend and the bench file.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from memprog.bench.assembly import open_bench
from memprog.core.crossbar_wiring import wiring_from_bench
from memprog.core.errors import ConfigError, InstrumentError, SafetyError
from memprog.core.strict_yaml import dump_yaml
from memprog.drivers.crossbar_programmer import (
    CrossbarOptions,
    CrossbarProgrammer,
    OpenCircuitError,
)
from memprog.drivers.keithley707b import MatrixInterlock
from memprog.sim_instruments.chip import SimChip

BENCH = Path(__file__).resolve().parents[2] / "benches" / "sim_k4200_707b.yaml"


def bench_variant(tmp_path: Path, edit) -> Path:
    """A copy of the simulated bench file with ``edit(dict)`` applied."""
    data = yaml.safe_load(BENCH.read_text())
    edit(data)
    p = tmp_path / "bench.yaml"
    p.write_text(dump_yaml(data))
    return p


def _sim(bench):
    return bench._ctx.resource_manager(bench.config.instruments["k4200"]).visalib.ensure_bench()


@pytest.fixture
def bench():
    with open_bench(BENCH) as b:
        assert b.simulated  # this suite runs on the simulator
        yield b


def test_bench_opens_with_both_drivers_and_the_stack(bench):
    p = bench.programmer
    assert isinstance(p, CrossbarProgrammer)
    assert set(bench.instruments) == {"k4200", "k707b"}
    assert (p.info.rows, p.info.cols, p.info.parallel, p.info.has_gate) == (8, 8, "cell", False)
    assert p.bias_scheme == "v3" and p.read_scheme == "ground"
    assert bench.instruments["k4200"].smus == [1, 2, 3, 4]
    assert bench.instruments["k707b"].closed_cache == set()


def test_reads_match_the_chip_with_grounded_unselected_lines(bench):
    chip = bench.sim_chip
    g = bench.programmer.read_array()
    true = chip.true_conductance_us()
    assert g.shape == (8, 8)
    # read noise 0.1 µS + 0.05 %, RTN of a few µS on some cells: never more than 3 %
    assert np.max(np.abs(g - true) / true) < 0.03
    assert bench.instruments["k707b"].closed_cache == set()  # opened after every operation
    assert _sim(bench).instruments["k707b"].closed_crosspoints() == frozenset()


def test_reads_of_sneak_paths_with_floating_lines(tmp_path):
    def floating(d):
        d["chip"]["read_scheme"] = "float"

    with open_bench(bench_variant(tmp_path, floating)) as b:
        chip = b.sim_chip
        chip.set_state_us(400.0)  # every neighbour conducting: strong sneak paths
        chip.set_state_us(100.0, 2, 5)
        true = chip.true_conductance_us(2, 5)
        g_float = b.programmer.read(2, 5)[0]
        b.programmer.read_scheme = "ground"  # same cell, unselected lines grounded
        b.programmer._routes.clear()
        g_ground = b.programmer.read(2, 5)[0]
    # the sneak path through three 400 µS cells in series adds ~400/3 µS... and more in parallel
    assert g_float > true + 100.0
    assert abs(g_ground - true) < 0.03 * true


def test_nothing_routed_reads_an_open_circuit(bench):
    k, m = bench.instruments["k4200"], bench.instruments["k707b"]
    m.open_all()
    k.source_voltage(1, 0.2, 1e-3)
    k.source_voltage(2, 0.0, 1e-3)
    assert abs(k.current(2)) < 1e-10  # noise floor, nothing connected


def test_misrouting_reads_the_wrong_cell_or_an_open_circuit(bench, tmp_path):
    chip = bench.sim_chip
    k, m = bench.instruments["k4200"], bench.instruments["k707b"]
    cfg = bench.config
    # a programmer whose idea of the wiring swaps bit lines 0 and 1 (a wrong cable)
    w = copy.deepcopy(cfg.wiring)
    w["bit_lines"] = {"slot": 2, "columns": [2, 1, 3, 4, 5, 6, 7, 8]}
    swapped = wiring_from_bench(w, 8, 8)
    m.interlock = MatrixInterlock.from_wiring(swapped)
    wrong = CrossbarProgrammer(k, m, swapped, 8, 8, cfg.chip.limits, options=CrossbarOptions())
    chip.set_state_us(150.0, 0, 0)
    chip.set_state_us(350.0, 0, 1)
    assert wrong.read(0, 0)[0] == pytest.approx(350.0, rel=0.03)  # it reads cell (0, 1)
    # a wiring naming a column no chip pad is bonded to: the stack reports an open circuit
    w["bit_lines"] = {"slot": 2, "columns": [9, 2, 3, 4, 5, 6, 7, 8]}
    unbonded = wiring_from_bench(w, 8, 8)
    m.interlock = MatrixInterlock.from_wiring(unbonded)
    lost = CrossbarProgrammer(k, m, unbonded, 8, 8, cfg.chip.limits, options=CrossbarOptions())
    with pytest.raises(OpenCircuitError, match=r"cell \(0, 0\) reads .* open circuit"):
        lost.read(0, 0)
    # and the stack left the bench safe
    assert _sim(bench).instruments["k707b"].closed_crosspoints() == frozenset()
    assert all(s.value == 0.0 for s in _sim(bench).instruments["k4200"].smus.values())


def test_v3_pulses_disturb_every_unselected_cell_like_the_chips_own_scheme(bench):
    chip = bench.sim_chip
    twin = SimChip(8, 8, "tio2_passive", seed=bench.config.chip.seed, bias_scheme="v3")
    cells = ([3, 3, 5], [3, 3, 1])
    amps = [1.2, 1.3, -1.5]
    for r, c, a in zip(*cells, amps, strict=True):
        bench.programmer.pulse(r, c, a, 200e-9)
        twin.pulse(r, c, a, 200e-9)
    nd = chip._n_disturb.reshape(8, 8)
    # V/3 >= 0.4 V: every cell but the selected one is disturbed by each pulse (counters
    # restart when a cell itself switches)
    np.testing.assert_array_equal(nd, twin._n_disturb.reshape(8, 8))
    assert nd[0, 0] == 3 and nd[7, 7] == 3
    np.testing.assert_allclose(chip.true_conductance_us(), twin.true_conductance_us(), rtol=2e-3)


def test_v2_scheme_leaves_cells_off_the_selected_lines_alone(tmp_path):
    def v2(d):
        d["programmer"]["options"]["bias_scheme"] = "v2"

    with open_bench(bench_variant(tmp_path, v2)) as b:
        chip = b.sim_chip
        g0 = chip.true_conductance_us()
        b.programmer.pulse(4, 6, 0.7, 200e-9)  # below threshold: only disturb
        nd = chip._n_disturb.reshape(8, 8)
        half = np.zeros((8, 8), bool)
        half[4, :] = half[:, 6] = True
        half[4, 6] = False
        untouched = ~half
        untouched[4, 6] = False  # the selected cell sees 0.7 V itself
        assert np.all(nd[half] == 1)  # half-selected cells see V/2 = 0.35 V
        assert np.all(nd[untouched] == 0)  # V/2: the rest of the array sees 0 V
        np.testing.assert_allclose(chip.true_conductance_us()[untouched], g0[untouched], rtol=2e-3)


def test_cycle_time_and_message_budget(bench):
    p = bench.programmer
    t0 = bench.bench_time_s
    p.pulse(1, 1, 1.0, 200e-9)
    g = p.read(1, 1)
    dt = bench.bench_time_s - t0
    # 4 relay phases (close, open for the pulse; close, open for the read) of 3 ms, a PMU
    # execution (1 ms setup), one 1-PLC reading (16.7 ms) and the KXCI/GPIB messages
    assert 0.025 < dt < 0.06
    assert g.shape == (1,) and g[0] > 50


def test_batch_release_keeps_routes_within_a_call(tmp_path):
    def batch(d):
        d["programmer"]["options"]["matrix_release"] = "batch"

    with open_bench(bench_variant(tmp_path, batch)) as b:
        sim707 = _sim(b).instruments["k707b"]
        n0 = sim707.version
        b.programmer.read([2, 2, 2], [3, 3, 3])  # same cell three times: routed once
        assert sim707.version - n0 == 2  # one route, one release
        assert sim707.closed_crosspoints() == frozenset()


def test_limits_refuse_the_batch_before_anything_is_sent(bench):
    sim = _sim(bench)
    execs = sim.instruments["k4200"].pmu_executions
    with pytest.raises(SafetyError, match="amplitude_v=2.3"):
        bench.programmer.pulse([0, 1], [0, 1], [1.0, 2.3], 200e-9)
    with pytest.raises(SafetyError, match="width_s"):
        bench.programmer.pulse(0, 0, 1.0, 5e-6)
    with pytest.raises(SafetyError, match="read_v"):
        bench.programmer.read(0, 0, read_v=0.5)
    with pytest.raises(ConfigError, match="gate_v"):
        bench.programmer.pulse(0, 0, 1.0, 200e-9, gate_v=1.0)
    with pytest.raises(ConfigError, match="rows"):
        bench.programmer.read(8, 0)
    assert sim.instruments["k4200"].pmu_executions == execs


def test_instrument_error_mid_operation_leaves_the_bench_safe(bench):
    sim = _sim(bench)
    k = bench.instruments["k4200"]
    p = bench.programmer
    p.read(0, 0)
    # the analyzer loses its SMU2 (e.g. an overloaded card): the next read fails...
    smu2 = sim.instruments["k4200"].smus.pop(2)
    with pytest.raises(InstrumentError) as err:
        p.read(0, 0)
    assert "SMU2" in str(err.value) and err.value.code == -102
    # ...and every source went to 0 V with the matrix open
    assert sim.instruments["k707b"].closed_crosspoints() == frozenset()
    assert all(not ch.output for ch in sim.instruments["k4200"].pmu.values())
    sim.instruments["k4200"].smus[2] = smu2  # repaired: the stack sets itself up again
    assert p.read(0, 0)[0] == pytest.approx(bench.sim_chip.true_conductance_us(0, 0), rel=0.03)
    assert k.smus == [1, 2, 3, 4]


def test_wiring_errors_name_the_field(tmp_path):
    def bad_role(d):
        d["wiring"]["roles"]["pulse_row"] = "SMU4"

    with pytest.raises(ConfigError, match=r"wiring\.roles\.pulse_row"):
        open_bench(bench_variant(tmp_path, bad_role))

    def short_rows(d):
        d["wiring"]["word_lines"]["columns"] = [1, 2, 3]

    with pytest.raises(ConfigError, match=r"wiring\.word_lines.*chip\.rows"):
        open_bench(bench_variant(tmp_path, short_rows))

    def unknown_option(d):
        d["programmer"]["options"]["matrix_relase"] = "batch"

    with pytest.raises(ConfigError, match=r"programmer\.options\.matrix_relase"):
        open_bench(bench_variant(tmp_path, unknown_option))


def test_stack_resyncs_after_the_instruments_were_used_directly(bench):
    p, chip = bench.programmer, bench.sim_chip
    k = bench.instruments["k4200"]
    g0 = p.read(5, 5)[0]
    bench.safe_state()  # every source to 0 V, PMU outputs off, matrix open
    assert p.read(5, 5)[0] == pytest.approx(g0, rel=0.03)
    p.pulse(5, 5, 0.6, 200e-9)  # PMU outputs back on: the pulse reaches the chip
    assert chip._n_disturb.reshape(8, 8)[5, 5] >= 1
    # a direct system-mode sweep of the force SMU (matrix open: nothing connected)
    res = k.sweep_voltage(1, 0.0, 0.1, 0.05, 1e-3)
    assert np.all(np.abs(res.current_a) < 1e-9)
    assert p.read(5, 5)[0] == pytest.approx(chip.true_conductance_us(5, 5), rel=0.03)


def test_selected_column_held_by_a_pmu_channel(tmp_path):
    def pmu_col(d):
        d["wiring"]["rows"]["H"] = "PMU2-2"
        d["wiring"]["roles"]["pulse_col"] = "PMU2-2"

    with open_bench(bench_variant(tmp_path, pmu_col)) as b:
        twin = SimChip(8, 8, "tio2_passive", seed=b.config.chip.seed)
        b.programmer.pulse([2, 6], [1, 4], [1.4, -1.6], 200e-9)
        twin.pulse([2, 6], [1, 4], [1.4, -1.6], 200e-9)
        np.testing.assert_array_equal(b.sim_chip._n_disturb, twin._n_disturb)
        sim4200 = _sim(b).instruments["k4200"]
        assert sim4200.pmu[4].output and sim4200.pmu[4].width == pytest.approx(200e-9)
