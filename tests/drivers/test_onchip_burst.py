"""Pulse-then-read and read bursts (``PULS:READ?``, ``READ:BURS?``) of the on-chip protocol.

Driver tests run against scripted traffic (tests/protocol_fake.ExpectedProtocol: every byte
checked, no simulator); simulator tests run on the @memprog simulator of
benches/sim_onchip.yaml; the interface's default (stacks without the commands) runs on a
DirectChipProgrammer. Each test says which.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import memprog
from memprog.bench.direct import DirectChipProgrammer
from memprog.core.errors import ConfigError, InstrumentError, SafetyError
from memprog.drivers import onchip_commands as cmd
from memprog.drivers.onchip_programmer import OnChipProgrammer
from memprog.drivers.transport import make_block
from memprog.protocols.programmer import BURST_INTERVAL_S, CellProgrammer
from memprog.sim_instruments import SimChip
from tests.drivers.test_onchip_protocol import CONNECT, NO_ERROR, connected
from tests.protocol_fake import ExpectedProtocol

BENCH = Path(__file__).resolve().parents[2] / "benches" / "sim_onchip.yaml"
LATENCY_S = 50e-6
LINK_BYTES_PER_S = 1e7
READ_TIME_S = 10e-6


def _block_s(values_us) -> bytes:
    return make_block(np.asarray(values_us, dtype="<f4") * np.float32(1e-6))


# ------------------------------------------------------------------ driver, exact traffic
def test_pulse_read_is_one_message_carrying_the_train_and_the_burst():
    """Backend: ExpectedProtocol (exact strings)."""
    reads = [[100.0, 200.0], [101.0, 199.0], [99.5, 200.5]]
    with ExpectedProtocol(
        CONNECT
        + [
            ("PULS:READ? 3,4,6.3E-05,1,1E-06,17,NAN,1.05", _block_s([[5.0]] * 4)),
            (
                "PULS:READ? 3,3,0.0001,3,1E-08,1E-06,1E-06,5,1.2,1.3,0.6,0.6,9,0.9,0,-0.7,-0.7",
                _block_s(reads),
            ),
        ]
    ) as t:
        ctrl = connected(t)
        g = ctrl.pulse_read(3, [17], 1.05, 1e-6, reads=4, interval_s=63e-6)
        assert g.shape == (4, 1) and g == pytest.approx(np.full((4, 1), 5.0), rel=1e-6)
        amps = np.array([[1.3, 0.0], [0.6, -0.7], [0.6, -0.7]])  # (pulses, cells)
        g = ctrl.pulse_read(
            3, np.array([5, 9]), amps, [1e-8, 1e-6, 1e-6], gate_v=[1.2, 0.9], reads=3,
            interval_s=1e-4,
        )  # fmt: skip
    np.testing.assert_allclose(g, reads, rtol=1e-6)


def test_read_burst_is_one_message_answered_by_one_block():
    """Backend: ExpectedProtocol (exact strings)."""
    with ExpectedProtocol(
        CONNECT + [("READ:BURS? 7,5,6.3E-05,2,3", _block_s(np.arange(10.0).reshape(5, 2)))]
    ) as t:
        ctrl = connected(t)
        g = ctrl.read_burst(7, [2, 3], 5, interval_s=63e-6)
    np.testing.assert_allclose(g, np.arange(10.0).reshape(5, 2), rtol=1e-6)


@pytest.mark.parametrize(
    ("call", "error", "parameter"),
    [
        (lambda c: c.pulse_read(0, [0], 2.6, 1e-7), SafetyError, "amplitude_v"),
        (lambda c: c.pulse_read(0, [0], [[1.0], [-2.6]], [1e-7, 1e-7]), SafetyError, "amplitude_v"),
        (lambda c: c.pulse_read(0, [0], 1.0, [1e-7, 1e-3]), SafetyError, "width_s"),
        (lambda c: c.pulse_read(0, [0], 1.0, 1e-7, gate_v=2.6), SafetyError, "gate_v"),
        (lambda c: c.pulse_read(0, [0], 1.0, [1e-7] * 33), ConfigError, "width_s"),
        (lambda c: c.pulse_read(0, [0, 1], [1.0, 1.0, 1.0], 1e-7), ConfigError, "amplitude_v"),
        (lambda c: c.pulse_read(0, [0], 1.0, 1e-7, reads=0), ConfigError, "reads"),
        (lambda c: c.read_burst(0, [0], 65), ConfigError, "reads"),
        (lambda c: c.read_burst(0, [0], 4, interval_s=0.02), ConfigError, "interval_s"),
        (lambda c: c.read_burst(0, [0, 0], 4), ConfigError, "cols"),
        (lambda c: c.read_burst(0, np.arange(17), 4), ConfigError, "cols"),
        (lambda c: c.read_burst(256, [0], 4), ConfigError, "rows"),
        (lambda c: c.read_burst(0, [256], 4), ConfigError, "cols"),
    ],
)
def test_burst_arguments_are_checked_before_anything_is_sent(call, error, parameter):
    """Backend: ExpectedProtocol (nothing may be sent after connecting)."""
    with ExpectedProtocol(CONNECT) as t:
        ctrl = connected(t)
        with pytest.raises(error, match=parameter):
            call(ctrl)


def test_a_refused_train_raises_the_controller_error_and_goes_safe():
    """Backend: ExpectedProtocol (exact strings)."""
    refusal = 'ERR 202,"Amplitude above chip limit; 2.4 V, allowed |V| <= 2.2 V"'
    with ExpectedProtocol(
        CONNECT
        + [
            ("PULS:READ? 0,2,6.3E-05,1,1E-07,0,NAN,2.4", (refusal + "\n").encode()),
            ("SYST:ERR?", refusal[4:]),
            NO_ERROR,
            ("ABOR", None),
        ]
    ) as t:
        ctrl = connected(t)
        with pytest.raises(InstrumentError, match="error 202: Amplitude above chip limit"):
            ctrl.pulse_read(0, [0], 2.4, 1e-7, reads=2, interval_s=63e-6)


def test_the_programmer_uses_the_commands_where_they_fit_and_falls_back_elsewhere():
    """Backend: ExpectedProtocol. One row: PULS:READ? / READ:BURS?; two rows, another read
    voltage or more reads than a block holds: the interface's separate pulses and reads."""
    one = _block_s([[1.0]])
    with ExpectedProtocol(
        CONNECT
        + [
            ("PULS:READ? 2,1,0,2,1E-06,1E-06,4,NAN,0.6,0.6", one),
            # two rows: a pulse per train pulse (one binary batch each), then one read per read
            ("PULS:ROWS 1E-06,", None),
            NO_ERROR,
            ("READ:SEL ", None),
            ("READ:SEL?", _block_s([1.0, 2.0])),
            # another read voltage: separate reads
            ("READ:CELL? 2,4,0.1", "1E-06"),
            ("READ:CELL? 2,4,0.1", "2E-06"),
            # 70 reads: 64 + 6 in two bursts
            ("READ:BURS? 2,64,0,4", _block_s(np.ones((64, 1)))),
            ("READ:BURS? 2,6,0,4", _block_s(np.ones((6, 1)))),
        ]
    ) as t:
        prog = OnChipProgrammer(connected(t))
        assert prog.pulse_read(2, 4, 0.6, [1e-6, 1e-6]).shape == (1, 1)
        g = prog.pulse_read([2, 3], [4, 4], 0.6, 1e-6)
        np.testing.assert_allclose(g, [[1.0, 2.0]], rtol=1e-6)
        np.testing.assert_allclose(prog.read_burst(2, 4, 2, read_v=0.1), [[1.0], [2.0]])
        assert prog.read_burst(2, 4, 70).shape == (70, 1)


def test_builders_write_the_documented_wire_format():
    """Backend: none (pure builders)."""
    assert cmd.read_burst(0, 4, 6.3e-5, np.array([1, 2])) == "READ:BURS? 0,4,6.3E-05,1,2"
    msg = cmd.pulse_read(
        1, 2, 0.0, np.array([1e-6]), np.array([3]), np.array([np.nan]), np.array([[0.5]])
    )
    assert msg == "PULS:READ? 1,2,0,1,1E-06,3,NAN,0.5"


# ------------------------------------------------------------------ simulated controller
@pytest.fixture
def bench():
    with memprog.open_bench(BENCH) as b:
        yield b


def _working_cells(chip, row: int, n: int) -> np.ndarray:
    return np.flatnonzero(chip.working_mask[row])[:n]


def test_pulse_read_on_the_simulator_pulses_then_reads_and_charges_real_time(bench):
    """Backend: @memprog simulator of benches/sim_onchip.yaml."""
    prog, chip = bench.programmer, bench.sim_chip
    row = 4
    cols = _working_cells(chip, row, 2)
    g_before = chip.true_conductance_us(np.full(2, row), cols)
    pulses_before = chip.pulse_count
    t0 = bench.bench_time_s
    # two SET pulses on the first cell only, then 3 reads 100 µs apart
    amps = np.array([[1.6, 0.0], [1.6, 0.0]])
    g = prog.pulse_read(np.full(2, row), cols, amps, [1e-6, 1e-6], reads=3, interval_s=1e-4)
    elapsed = bench.bench_time_s - t0
    true = chip.true_conductance_us(np.full(2, row), cols)
    assert chip.pulse_count - pulses_before == 2  # the second cell sat both pulses out
    assert true[0] > g_before[0] + 10 and true[1] == pytest.approx(g_before[1])
    assert g.shape == (3, 2)
    bound = chip.rtn_peak_to_peak_us(np.full(2, row), cols) / 2 + 6 * (
        chip.params.read_noise_abs_us + chip.params.read_noise_rel * true
    )
    assert np.all(np.abs(g - true) <= bound)
    sent = len(
        cmd.pulse_read(row, 3, 1e-4, np.array([1e-6, 1e-6]), cols, np.full(2, np.nan), amps.T)
    )
    reply = len("#224") + 24
    expected = LATENCY_S + 2e-6 + 2 * 1e-4 + READ_TIME_S + (sent + reply) / LINK_BYTES_PER_S
    assert elapsed == pytest.approx(expected, rel=1e-9)


def test_read_burst_on_the_simulator_spaces_the_reads(bench):
    """Backend: @memprog simulator of benches/sim_onchip.yaml."""
    prog, chip = bench.programmer, bench.sim_chip
    t0 = bench.bench_time_s
    g = prog.read_burst(0, 3, 5, interval_s=BURST_INTERVAL_S)
    sent = len(f"READ:BURS? 0,5,{BURST_INTERVAL_S:.6G},3")
    reply = len("#220") + 20
    expected = LATENCY_S + 4 * BURST_INTERVAL_S + READ_TIME_S + (sent + reply) / LINK_BYTES_PER_S
    assert bench.bench_time_s - t0 == pytest.approx(expected, rel=1e-9)
    true = chip.true_conductance_us(0, 3)
    assert g.shape == (5, 1) and np.all(np.abs(g - true) < 10)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("PULS:READ? 0,0,0,1,1E-06,0,NAN,0.5", -222),  # no reads
        ("PULS:READ? 0,65,0,1,1E-06,0,NAN,0.5", -222),  # more reads than a burst holds
        ("PULS:READ? 0,1,0.5,1,1E-06,0,NAN,0.5", -222),  # interval too long
        ("PULS:READ? 0,1,0,0,0,NAN", -222),  # no pulse
        ("PULS:READ? 0,1,0,2,1E-06,1E-06,0,NAN,0.5", -109),  # one amplitude missing
        ("PULS:READ? 0,1,0,1,1E-06,0,NAN,x", -104),
        ("PULS:READ? 300,1,0,1,1E-06,0,NAN,0.5", 201),
        ("PULS:READ? 0,1,0,1,1E-06,0,NAN,3.1", 202),
        ("PULS:READ? 0,1,0,1,1E-06,0,5,0.5", 203),
        ("PULS:READ? 0,1,0,2,1E-06,1,0,NAN,0.5,0.5", 204),
        ("PULS:READ? 0,1,0,1,1E-06,0,NAN,0.5,0,NAN,0.5", 206),
        ("READ:BURS? 0,4,0", -109),
        ("READ:BURS? 0,0,0,1", -222),
        ("READ:BURS? 0,4,0,256", 201),
    ],
)
def test_the_simulated_firmware_refuses_bad_bursts_before_pulsing(bench, message, code):
    """Backend: @memprog simulator (raw messages through the VISA seam)."""
    chip = bench.sim_chip
    ctrl = bench.programmer.controller
    before = chip.pulse_count
    reply = ctrl.transport.query(message)
    assert reply.startswith(f"ERR {code},"), reply
    assert chip.pulse_count == before
    assert ctrl.drain_errors()[0][0] == code


# ------------------------------------------------------------------ the interface's default
def test_default_pulse_read_pulses_only_non_zero_amplitudes_then_reads():
    """Backend: DirectChipProgrammer (no pulse-and-read primitive: the default runs)."""
    chip = SimChip(4, 4, "hfo2_1t1r", seed=5)
    prog = DirectChipProgrammer(chip)
    assert type(prog).pulse_read is CellProgrammer.pulse_read
    rows, cols = np.divmod(np.flatnonzero(chip.working_mask.ravel())[:2], 4)
    amps = [[1.6, 0.0], [0.0, 0.0], [1.6, 1.6]]
    g = prog.pulse_read(rows, cols, amps, [1e-6, 1e-6, 1e-6], reads=3)
    assert chip.pulse_count == 3 and g.shape == (3, 2)
    with pytest.raises(ConfigError, match="reads"):
        prog.pulse_read(rows, cols, 1.0, 1e-6, reads=0)
    with pytest.raises(ConfigError, match="amplitude_v"):
        prog.pulse_read(rows, cols, [[1.0, 1.0, 1.0]], 1e-6)
    with pytest.raises(ConfigError, match="interval_s"):
        prog.read_burst(rows, cols, 2, interval_s=-1.0)
    assert chip.pulse_count == 3


def test_chip_read_burst_is_successive_reads_spaced_in_time():
    """Backend: SimChip directly (the simulator's model)."""
    a = SimChip(2, 2, "hfo2_1t1r", seed=9)
    b = SimChip(2, 2, "hfo2_1t1r", seed=9)
    g = a.read_burst([0, 1], [1, 1], 3, interval_s=50e-6)
    rows = []
    for k in range(3):
        if k:
            b.advance(40e-6)
        rows.append(b.read([0, 1], [1, 1]))
    np.testing.assert_array_equal(g, np.array(rows))
    assert a.clock_s == pytest.approx(b.clock_s) == pytest.approx(2 * 50e-6 + 10e-6)
    assert a.read_count == b.read_count == 6
    with pytest.raises(ConfigError, match="reads"):
        a.read_burst(0, 0, 0)


def test_a_ladder_level_costs_a_few_messages_on_the_onchip_bench(bench):
    """Backend: @memprog simulator. The denoising ladder hands each tune/denoise/read step to
    PULS:READ? and each verification to READ:BURS?: no per-pulse or per-read messages."""
    from collections import Counter

    from memprog.protocols.ladder import ladder_levels, run_ladder

    prog, chip = bench.programmer, bench.sim_chip
    resource = prog.controller.transport.resource
    heads: Counter[str] = Counter()
    real = resource.write_raw
    resource.write_raw = lambda data: (
        heads.update([bytes(data).split(b" ")[0].decode()]),
        real(data),
    )[1]
    r, c = divmod(int(np.flatnonzero(chip.working_mask.ravel())[0]), 256)
    res = run_ladder(prog, r, c, ladder_levels(50.0, 2.0, 20), protocol="denoise")
    assert res.within.all()
    assert set(heads) <= {"PULS:READ?", "READ:BURS?", "SYST:WAIT?"}, heads
    # one per verification, and the burst that finds where the first level starts
    assert heads["READ:BURS?"] == 20 + res.settle_retunes.sum() + 1
    assert sum(heads.values()) <= 8 * 20


def test_a_protocol_1_0_firmware_gets_separate_reads_and_never_a_burst():
    """Backend: ExpectedProtocol. Firmware from before protocol 1.1 lacks PULS:READ? and
    READ:BURS?: the driver refuses them (nothing sent), the programmer reads one by one."""
    old = [m if m[0] != "SYST:PROT?" else ("SYST:PROT?", "1.0") for m in CONNECT]
    with ExpectedProtocol(old + [("READ:CELL? 2,4", "1E-06"), ("READ:CELL? 2,4", "2E-06")]) as t:
        ctrl = connected(t)
        assert not ctrl.has_bursts
        with pytest.raises(ConfigError, match=r"1\.1 or later for PULS:READ\?"):
            ctrl.pulse_read(2, [4], 0.6, 1e-6)
        with pytest.raises(ConfigError, match=r"1\.1 or later for READ:BURS\?"):
            ctrl.read_burst(2, [4], 2)
        g = OnChipProgrammer(ctrl).read_burst(2, 4, 2)
    np.testing.assert_allclose(g, [[1.0], [2.0]], rtol=1e-6)
