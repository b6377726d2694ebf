"""End to end on the simulated bench: driver -> @memprog backend -> simulated controller -> chip.

Backend: the @memprog simulator of benches/sim_onchip.yaml (every test says so by using it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pyvisa

import memprog
from memprog.drivers.onchip import OnChipController
from memprog.drivers.onchip_programmer import OnChipProgrammer

BENCH = Path(__file__).resolve().parents[2] / "benches" / "sim_onchip.yaml"
RESOURCE = "TCPIP0::127.0.0.1::5025::SOCKET"
LATENCY_S = 50e-6
LINK_BYTES_PER_S = 1e7
READ_TIME_S = 10e-6


@pytest.fixture
def bench():
    with memprog.open_bench(BENCH) as b:
        yield b


def _noise_bound_us(chip, rows, cols):
    """Largest honest read error: half the RTN peak-to-peak plus 6 sigma of white noise."""
    p = chip.params
    g = chip.true_conductance_us(rows, cols)
    return chip.rtn_peak_to_peak_us(rows, cols) / 2 + 6 * (
        p.read_noise_abs_us + p.read_noise_rel * g
    )


def test_open_bench_builds_the_onchip_stack(bench):
    assert bench.simulated
    prog = bench.programmer
    assert isinstance(prog, OnChipProgrammer)
    assert isinstance(bench.instruments["controller"], OnChipController)
    info = prog.info
    assert (info.rows, info.cols, info.parallel, info.has_gate, info.technology) == (
        256,
        256,
        "row",
        True,
        "hfo2_1t1r",
    )
    assert info.g_range_us == pytest.approx((30.0, 4800.0))
    assert info.read_v == 0.2
    assert prog.limits.set_v_max == 2.5
    prog.read_array()
    assert prog.bench_time_s == bench.bench_time_s > 2.56e-3  # the simulated clock


def test_reads_match_the_chip_and_pulses_program_cells(bench):
    prog, chip = bench.programmer, bench.sim_chip
    rows, cols = np.array([0, 0, 0, 1]), np.array([0, 1, 2, 3])
    working = chip.working_mask[rows, cols]
    assert working.all()
    g0 = prog.read(rows, cols)
    assert np.all(
        np.abs(g0 - chip.true_conductance_us(rows, cols)) <= _noise_bound_us(chip, rows, cols)
    )
    # gate-limited SET: per-cell gates set per-cell compliances (1T1R)
    gates = np.array([0.8, 1.0, 1.2, 1.4])
    for _ in range(30):
        prog.pulse(rows, cols, 1.6, 1e-6, gate_v=gates)
    g1 = prog.read(rows, cols)
    assert np.all(np.diff(g1) > 0), g1  # a higher gate reaches a higher conductance
    p = chip.params
    expected = p.g_min_us + (gates - p.gate_v_min_v) / (p.gate_v_max_v - p.gate_v_min_v) * (
        p.g_max_us - p.g_min_us
    )
    np.testing.assert_allclose(g1, expected, rtol=0.15)
    # RESET brings them back down
    for _ in range(5):
        prog.pulse(rows, cols, -2.0, 1e-6)
    assert np.all(prog.read(rows, cols) < 0.3 * g1)


def test_operations_advance_the_bench_clock_by_their_real_duration(bench):
    prog = bench.programmer
    t0 = bench.bench_time_s
    prog.pulse(5, 6, 1.2, 300e-9, gate_v=1.1)  # "PULS:ROW? 5,3E-07,6,1.2,1.1" -> "1"
    sent = len("PULS:ROW? 5,3E-07,6,1.2,1.1") + 1
    assert bench.bench_time_s - t0 == pytest.approx(
        LATENCY_S + 300e-9 + sent / LINK_BYTES_PER_S, rel=1e-9
    )
    t0 = bench.bench_time_s
    prog.read_array()
    n_bytes = len("READ:ARR?") + len("#6262144") + 262144
    assert bench.bench_time_s - t0 == pytest.approx(
        LATENCY_S + 256 * READ_TIME_S + n_bytes / LINK_BYTES_PER_S, rel=1e-9
    )
    # three rows in one binary message: one pulse width per row, plus the error-queue check
    t0 = bench.bench_time_s
    rows = np.repeat([3, 9, 200], 50)
    prog.pulse(rows, np.tile(np.arange(50), 3), 1.3, 1e-6)
    block = 150 * 16
    n_bytes = (
        len("PULS:ROWS 1E-06,") + len(f"#4{block}") + block + len("SYST:ERR?") + len('0,"No error"')
    )
    assert bench.bench_time_s - t0 == pytest.approx(
        2 * LATENCY_S + 3 * 1e-6 + n_bytes / LINK_BYTES_PER_S, rel=1e-9
    )


def test_reads_spread_over_many_rows_cost_two_messages(bench):
    prog, chip = bench.programmer, bench.sim_chip
    ctrl = prog.controller
    calls = []  # every message that goes over VISA, by its header
    resource = ctrl.transport.resource
    real = resource.write_raw
    resource.write_raw = lambda data: (calls.append(bytes(data[:9]).decode("latin-1")), real(data))[
        1
    ]
    rng = np.random.default_rng(1)
    flat = rng.choice(65536, 3000, replace=False)
    rows, cols = np.divmod(flat, 256)
    t0 = bench.bench_time_s
    g = prog.read(rows, cols)
    assert calls == ["READ:SEL ", "READ:SEL?"]
    assert np.all(
        np.abs(g - chip.true_conductance_us(rows, cols)) <= _noise_bound_us(chip, rows, cols)
    )
    distinct_rows = np.unique(rows).size
    n_bytes = len("READ:SEL ") + len("#512000") + 12000 + len("READ:SEL?") + len("#512000") + 12000
    expected = 2 * LATENCY_S + distinct_rows * READ_TIME_S + n_bytes / LINK_BYTES_PER_S
    assert bench.bench_time_s - t0 == pytest.approx(expected, rel=1e-9)
    # whole array: one message
    calls.clear()
    g = prog.read_array()
    assert calls == ["READ:ARR?"] and g.shape == (256, 256)


def test_leaving_the_bench_puts_the_controller_in_its_safe_state():
    sent = []
    with pytest.raises(RuntimeError, match="script failed"):
        with memprog.open_bench(BENCH) as b:
            transport = b.instruments["controller"].transport
            real = transport.write
            transport.write = lambda m: (sent.append(m), real(m))[1]
            b.programmer.pulse(0, 0, 1.2, 1e-7)
            raise RuntimeError("script failed")
    assert sent[-1] == "ABOR"
    with memprog.open_bench("sim_onchip") as b:  # a shipped bench, found by name
        transport = b.instruments["controller"].transport
        sent.clear()
        real = transport.write
        transport.write = lambda m: (sent.append(m), real(m))[1]
    assert sent == ["ABOR"]


def test_plain_pyvisa_reads_the_array_as_a_binary_block():
    rm = pyvisa.ResourceManager(f"{BENCH}@memprog")
    try:
        chip = rm.visalib.ensure_bench().chip
        inst = rm.open_resource(RESOURCE, read_termination="\n", write_termination="\n")
        assert inst.query("*IDN?").startswith("MEMPROG,ONCHIP-256X256,")
        assert inst.query("ARR:SIZE?") == "256,256"
        g = inst.query_binary_values("READ:ARR?", datatype="f", container=np.array)
        assert g.shape == (65536,) and g.dtype == np.float32
        truth = chip.true_conductance_us().ravel()
        bound = _noise_bound_us(chip, *np.divmod(np.arange(65536), 256))
        assert np.all(np.abs(g * 1e6 - truth) <= bound + 1e-3)
        row = inst.query_binary_values("READ:ROW? 17,0.1", datatype="f", container=np.array)
        np.testing.assert_allclose(
            row * 1e6, truth[17 * 256 : 18 * 256], atol=float(bound.max()) + 1e-3
        )
        assert inst.query("SYST:ERR?") == '0,"No error"'
    finally:
        rm.close()


def test_binary_uploads_survive_line_feed_bytes_in_the_data():
    """Block data equal to the message terminator must not cut the message (IEEE 488.2)."""
    rm = pyvisa.ResourceManager(f"{BENCH}@memprog")
    try:
        chip = rm.visalib.ensure_bench().chip
        inst = rm.open_resource(RESOURCE, read_termination="\n", write_termination="\n")
        v = np.full(
            256, np.frombuffer(b"\x0a\x0a\x0a\x3e", dtype="<f4")[0]
        )  # 0.135 V, three LF bytes each
        v[::2] = np.frombuffer(b"\x0a\x20\x00\x3d", dtype="<f4")[0]  # LF, space and NUL bytes
        inst.write_binary_values("VMM:INP ", v, datatype="f")
        assert inst.query("SYST:ERR?") == '0,"No error"'
        i = inst.query_binary_values("VMM?", datatype="f", container=np.array)
        expected = (chip.true_conductance_us() * 1e-6).T @ v.astype(float)
        np.testing.assert_allclose(i, expected, rtol=2e-3)
    finally:
        rm.close()


def test_a_map_ending_in_space_nul_cr_lf_bytes_arrives_whole(bench):
    """Level codes 13, 0, 10, 32 are CR, NUL, LF and space bytes at the very end of the block."""
    ctrl, chip = bench.instruments["controller"], bench.sim_chip
    codes = np.full((256, 256), 255, dtype=np.uint8)
    codes[255, -4:] = [13, 0, 10, 32]
    result = ctrl.program_levels(codes)
    assert result.cells == 4
    levels = np.linspace(50.0, 4144.0, 64)[[13, 0, 10, 32]]
    ok = chip.working_mask[255, -4:]
    assert np.all(np.abs(chip.true_conductance_us()[255, -4:][ok] - levels[ok]) < 4094 / 63 / 2)


def test_the_same_stack_runs_over_a_serial_line(tmp_path):
    """ASRL resource: same driver, same commands; the 921,600-baud link sets the bench time."""
    import yaml

    from memprog.core.strict_yaml import dump_yaml

    data = yaml.safe_load(BENCH.read_text())
    data["instruments"]["controller"]["resource"] = "ASRL1::INSTR"
    data["instruments"]["controller"]["options"] = {}
    path = tmp_path / "serial_bench.yaml"
    path.write_text(dump_yaml(data))
    with memprog.open_bench(path) as b:
        t0 = b.bench_time_s
        g = b.programmer.read_array()
        n_bytes = len("READ:ARR?") + len("#6262144") + 262144
        assert g.shape == (256, 256)
        assert b.bench_time_s - t0 == pytest.approx(LATENCY_S + 256 * READ_TIME_S + n_bytes / 92_160.0)
