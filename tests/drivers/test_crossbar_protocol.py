"""The k4200_707b stack's traffic, byte for byte, on both instruments (no simulator).

One V/3 write and one read of cell (0, 0) on the 8x8 bench wiring: what the 707B and the
4200A-SCS receive, in order, per instrument.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from memprog.core.crossbar_wiring import wiring_from_bench
from memprog.core.errors import SafetyError
from memprog.core.limits import SafetyLimits
from memprog.drivers.crossbar_programmer import (
    CrossbarOptions,
    CrossbarProgrammer,
    OpenCircuitError,
)
from memprog.drivers.keithley707b import Keithley707B, MatrixInterlock
from memprog.drivers.keithley4200 import Keithley4200
from tests.protocol_fake import ExpectedProtocol

BENCH = Path(__file__).resolve().parents[2] / "benches" / "sim_k4200_707b.yaml"
ZERO = "0.00000e+00"
LIMITS = SafetyLimits(
    set_v_max=2.1, reset_v_max=2.5, width_s_min=1e-7, width_s_max=1e-6, read_v_max=0.25,
    current_compliance_a=1e-3,
)  # fmt: skip


def _stack(k_pairs, m_pairs, **options):
    wiring = wiring_from_bench(yaml.safe_load(BENCH.read_text())["wiring"], 8, 8)
    tk, tm = ExpectedProtocol(k_pairs, "k4200"), ExpectedProtocol(m_pairs, "k707b")
    k = Keithley4200(tk, limits=LIMITS)
    k.smus, k.pmu_channels, k.cards, k._mode = [1, 2, 3, 4], [1, 2, 3, 4], ["SMU1"], "user"
    m = Keithley707B(tm, interlock=MatrixInterlock.from_wiring(wiring))
    m._closed, m._rule = set(), "break_before_make"
    p = CrossbarProgrammer(k, m, wiring, 8, 8, LIMITS, options=CrossbarOptions(**options))
    return p, tk, tm


SETUP_4200 = [
    (":PMU:INIT 0", "ACK"),
    (":PMU:RPM:CONFIGURE PMU1-1,0", "ACK"),
    (":PMU:RPM:CONFIGURE PMU1-2,0", "ACK"),
    (":PMU:RPM:CONFIGURE PMU2-1,0", "ACK"),
    # the PMU's 50 ohm source corrected for the load; 10 V range (manual: set at set-up)
    (":PMU:SOURCE:RANGE 1,10", "ACK"),
    (":PMU:LOAD 1,1000000", "ACK"),
    (":PMU:SOURCE:RANGE 2,10", "ACK"),
    (":PMU:LOAD 2,1000000", "ACK"),
    (":PMU:SOURCE:RANGE 3,10", "ACK"),
    (":PMU:LOAD 3,1000000", "ACK"),
    (":PMU:MEASURE:MODE 1", "ACK"),
    (":PMU:PULSE:BURST:COUNT 1", "ACK"),
    (":PMU:PULSE:TRAIN 1,0,0", "ACK"),
    (":PMU:OUTPUT:STATE 1,1", "ACK"),
    (":PMU:PULSE:TRAIN 2,0,0", "ACK"),
    (":PMU:OUTPUT:STATE 2,1", "ACK"),
    (":PMU:PULSE:TRAIN 3,0,0", "ACK"),
    (":PMU:OUTPUT:STATE 3,1", "ACK"),
    ("DV2,0,0,0.001", "ACK"),  # read sense at 0 V
    ("DV3,0,0,0.001", "ACK"),  # read ground at 0 V
]
OPEN = [('channel.open("allslots")', None), ("print(errorqueue.count)", ZERO)]


def test_one_v3_write_and_one_read_of_cell_0_0():
    k_pairs = SETUP_4200 + [
        (":PMU:PULSE:TIMES 1,4.8e-07,2e-07,2e-08,2e-08", "ACK"),
        (":PMU:PULSE:TIMES 2,4.8e-07,2e-07,2e-08,2e-08", "ACK"),
        (":PMU:PULSE:TIMES 3,4.8e-07,2e-07,2e-08,2e-08", "ACK"),
        (":PMU:PULSE:TRAIN 1,0,1.5", "ACK"),  # selected word line: V
        (":PMU:PULSE:TRAIN 2,0,0.5", "ACK"),  # unselected word lines: V/3
        (":PMU:PULSE:TRAIN 3,0,1", "ACK"),  # unselected bit lines: 2V/3
        (":PMU:EXECUTE", "ACK"),
        (":PMU:TEST:STATUS?", "0"),
        ("DV1,0,0.2,0.001", "ACK"),  # read force
        ("TI2", "NBI-4.0000E-05"),  # 40 µA into the sense SMU: 200 µS
    ]
    m_pairs = OPEN + [
        ('channel.exclusiveclose("1A01,1B02:1B08,2C02:2C08,2D01")', None),
        ("print(errorqueue.count)", ZERO),
        *OPEN,
        ('channel.exclusiveclose("1E01,1G02:1G08,2F01,2G02:2G08")', None),
        ("print(errorqueue.count)", ZERO),
        *OPEN,
    ]
    p, tk, tm = _stack(k_pairs, m_pairs)
    with tk, tm:
        p.pulse(0, 0, 1.5, 200e-9)
        g = p.read(0, 0)
    np.testing.assert_allclose(g, [200.0])


def test_v2_levels_and_batch_release_send_only_what_changed():
    k_pairs = SETUP_4200 + [
        (":PMU:PULSE:TIMES 1,4.8e-07,2e-07,2e-08,2e-08", "ACK"),
        (":PMU:PULSE:TIMES 2,4.8e-07,2e-07,2e-08,2e-08", "ACK"),
        (":PMU:PULSE:TIMES 3,4.8e-07,2e-07,2e-08,2e-08", "ACK"),
        (":PMU:PULSE:TRAIN 1,0,-1.2", "ACK"),
        (":PMU:PULSE:TRAIN 2,0,-0.6", "ACK"),
        (":PMU:PULSE:TRAIN 3,0,-0.6", "ACK"),
        (":PMU:EXECUTE", "ACK"),
        (":PMU:TEST:STATUS?", "0"),
        (":PMU:EXECUTE", "ACK"),  # same cell, same levels: only the execution is repeated
        (":PMU:TEST:STATUS?", "0"),
    ]
    m_pairs = OPEN + [
        ('channel.exclusiveclose("1A08,1B01:1B07,2C01:2C07,2D08")', None),
        ("print(errorqueue.count)", ZERO),
        *OPEN,
    ]
    p, tk, tm = _stack(k_pairs, m_pairs, bias_scheme="v2", matrix_release="batch")
    with tk, tm:
        p.pulse([7, 7], [7, 7], -1.2, 200e-9)


def test_open_circuit_is_reported_and_the_bench_left_safe():
    k_pairs = SETUP_4200 + [
        ("DV1,0,0.2,0.001", "ACK"),
        ("TI2", "NBI-1.2000E-12"),  # pA: nothing is connected
        ("DV1,0,0,0.001", "ACK"),  # safe state: every SMU to 0 V ...
        ("DV2,0,0,0.001", "ACK"),
        ("DV3,0,0,0.001", "ACK"),
        ("DV4,0,0,0.001", "ACK"),
        (":PMU:OUTPUT:STATE 1,0", "ACK"),  # ... every PMU channel off
        (":PMU:OUTPUT:STATE 2,0", "ACK"),
        (":PMU:OUTPUT:STATE 3,0", "ACK"),
        (":PMU:OUTPUT:STATE 4,0", "ACK"),
    ]
    m_pairs = OPEN + [
        ('channel.exclusiveclose("1E04,1G01:1G03,1G05:1G08,2F06,2G01:2G05,2G07:2G08")', None),
        ("print(errorqueue.count)", ZERO),
        *OPEN,  # ... and the matrix open
    ]
    p, tk, tm = _stack(k_pairs, m_pairs)
    with tk, tm:
        with pytest.raises(OpenCircuitError, match=r"cell \(3, 5\)"):
            p.read(3, 5)


def test_nothing_is_sent_when_a_pulse_is_refused():
    p, tk, tm = _stack([], [])
    with tk, tm:
        with pytest.raises(SafetyError):
            p.pulse([0, 1, 2], [0, 1, 2], [1.0, 1.5, 2.2], 200e-9)
        with pytest.raises(SafetyError):
            p.read(0, 0, read_v=0.3)
