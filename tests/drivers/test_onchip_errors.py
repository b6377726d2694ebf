"""Every controller error reaches the caller as InstrumentError with its code, queue drained.

Backend: the @memprog simulator of benches/sim_onchip.yaml, except where a test builds a
bench file of its own to show a configuration error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pyvisa

import memprog
from memprog.core.errors import ConfigError, InstrumentError, SafetyError
from memprog.core.limits import SafetyLimits
from memprog.drivers.onchip import OnChipController

BENCH = Path(__file__).resolve().parents[2] / "benches" / "sim_onchip.yaml"


@pytest.fixture
def bench():
    # function scope: pyvisa shares one resource manager per library path, so a plain-pyvisa
    # test closing its manager would close a longer-lived bench's session too
    with memprog.open_bench(BENCH) as b:
        yield b


@pytest.fixture
def ctrl(bench):
    c = bench.instruments["controller"]
    assert c.drain_errors() == []
    return c


def assert_queue_drained(ctrl):
    assert ctrl.error_count() == 0
    assert ctrl.next_error() == (0, "No error")


def test_unknown_command(ctrl):
    with pytest.raises(InstrumentError) as err:
        ctrl.query_raw("ARR:COLOUR?")
    assert (err.value.code, err.value.message) == (-113, "Undefined header; ARR:COLOUR?")
    assert err.value.command == "ARR:COLOUR?" and "controller error -113" in str(err.value)
    assert_queue_drained(ctrl)
    with pytest.raises(InstrumentError, match=r"-113: Undefined header; SYST:BEEP"):
        ctrl.write_raw("SYST:BEEP 440")
    assert_queue_drained(ctrl)


def test_address_out_of_range(ctrl, bench):
    with pytest.raises(InstrumentError) as err:
        ctrl.query_raw("READ:CELL? 300,0")
    assert err.value.code == 201
    assert err.value.message == "Address out of range; row 300, allowed [0, 255]"
    assert_queue_drained(ctrl)
    # the driver itself refuses it before sending: the bench clock does not move
    t0 = bench.bench_time_s
    with pytest.raises(ConfigError, match=r"rows=300 is not allowed \(allowed: \[0, 255\]\)"):
        ctrl.read_cell(300, 0)
    with pytest.raises(ConfigError, match=r"cols=256"):
        bench.programmer.pulse([0, 1], [3, 256], 1.0, 1e-7)
    assert bench.bench_time_s == t0


def test_amplitude_above_the_chip_limit(bench):
    ctrl = bench.instruments["controller"]
    chip = bench.sim_chip
    assert ctrl.controller_limits().amplitude_max_v == pytest.approx(2.97)  # 0.9 x 3.3 V breakdown
    before = chip.true_conductance_us([0, 1], [0, 0])
    # the bench's limits refuse 3.1 V before anything is sent
    t0 = bench.bench_time_s
    with pytest.raises(SafetyError, match=r"amplitude_v=3\.1.*\[-2\.5, 2\.5\] V"):
        bench.programmer.pulse(0, 0, 3.1, 1e-7)
    assert bench.bench_time_s == t0
    # a driver given looser limits reaches the firmware, which enforces the breakdown-safe limit
    loose = OnChipController(
        ctrl.transport, SafetyLimits(set_v_max=3.2, reset_v_max=3.2), name="loose"
    )
    loose.connect()
    with pytest.raises(InstrumentError) as err:
        loose.pulse_cells(0, 0, 3.1, 1e-7)
    assert err.value.code == 202
    assert err.value.message == "Amplitude above chip limit; 3.1 V, allowed |V| <= 2.97 V"
    assert_queue_drained(loose)
    with pytest.raises(InstrumentError, match="error 202: Amplitude above chip limit; -3.05 V"):
        loose.pulse_cells(np.arange(40) // 20, np.arange(40) % 20, -3.05, 1e-7)
    assert_queue_drained(loose)
    np.testing.assert_array_equal(
        chip.true_conductance_us([0, 1], [0, 0]), before
    )  # no cell was hit
    assert not (chip.kind_grid == 4).any()  # nothing broke down


def test_malformed_block(ctrl):
    with pytest.raises(InstrumentError) as err:
        ctrl.write_block_raw("READ:SEL ", np.array([1, 2, 3], dtype=np.uint16), "H")
    assert err.value.code == -161
    assert (
        err.value.message == "Invalid block data; 6 bytes is not a whole number of 4-byte records"
    )
    assert_queue_drained(ctrl)
    # the failed upload leaves no selection: the next read names both errors, oldest first
    ctrl.transport.write_binary("READ:SEL ", np.array([0, 0, 1], dtype=np.uint16), "H")
    with pytest.raises(InstrumentError) as err:
        ctrl._query_block("READ:SEL?", "f", 2, "two conductances")
    assert err.value.code == -161 and "then 212 No read selection" in err.value.message
    assert_queue_drained(ctrl)
    # a block header that is not one
    with pytest.raises(InstrumentError) as err:
        ctrl.write_raw("READ:SEL #3ab")
    assert err.value.code == -160 and "bad length field 'ab'" in err.value.message
    assert_queue_drained(ctrl)


def test_malformed_block_over_plain_pyvisa():
    rm = pyvisa.ResourceManager(f"{BENCH}@memprog")
    try:
        inst = rm.open_resource(
            "TCPIP0::127.0.0.1::5025::SOCKET", read_termination="\n", write_termination="\n"
        )
        inst.write_raw(b"VMM:INP #13abcd\n")  # header announces 3 bytes, 4 follow
        assert inst.query("VMM?") == 'ERR 213,"No VMM input; send VMM:INP <block> first"'
        assert (
            inst.query("SYST:ERR?") == '-160,"Block data error; header announces 3 bytes, 4 follow"'
        )
        assert inst.query("SYST:ERR?") == '213,"No VMM input; send VMM:INP <block> first"'
        inst.write_binary_values("VMM:INP ", np.zeros(10), datatype="f")
        assert (
            inst.query("SYST:ERR?")
            == '-161,"Invalid block data; 10 input voltages, the array has 256 rows"'
        )
        assert inst.query("SYST:ERR?") == '0,"No error"'
    finally:
        rm.close()


def test_error_queue_overflow_keeps_sixteen_entries(ctrl):
    for _ in range(20):
        ctrl.transport.write("NOPE")
    errors = ctrl.drain_errors()
    assert len(errors) == 16 and errors[0][0] == -113 and errors[-1] == (-350, "Queue overflow")


def _bench_copy(tmp_path, old: str, new: str) -> Path:
    text = BENCH.read_text()
    assert old in text
    path = tmp_path / "my_bench.yaml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize("resource", ["TCPIP0::127.0.0.1::SOCKET", "not a resource"])
def test_wrong_resource_string_is_a_one_line_config_error(tmp_path, resource):
    path = _bench_copy(tmp_path, '"TCPIP0::127.0.0.1::5025::SOCKET"', f'"{resource}"')
    with pytest.raises(ConfigError) as err:
        memprog.open_bench(path)
    msg = str(err.value)
    assert msg.startswith("my_bench.yaml: instruments.controller.resource=")
    assert resource in msg and "\n" not in msg


def test_missing_bench_file_and_bad_options_are_one_line_config_errors(tmp_path):
    with pytest.raises(ConfigError) as err:
        memprog.open_bench(tmp_path / "no_such_bench.yaml")
    assert "no_such_bench.yaml" in str(err.value) and "\n" not in str(err.value)
    path = _bench_copy(tmp_path, "instrument: controller", "instrument: matrix")
    with pytest.raises(
        ConfigError, match=r"^my_bench.yaml: programmer.options.instrument='matrix'"
    ):
        memprog.open_bench(path)
    path = _bench_copy(tmp_path, "link_bytes_per_s: 1.0e+7", "link_bytes_per_s: -1")
    with pytest.raises(ConfigError, match="link_bytes_per_s"):
        memprog.open_bench(path)
