"""One test per issue-14 finding (exact bytes where the reference is known).

Backends: the exact-traffic fake (protocol tests) and the in-process ``@memprog`` backend.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pyvisa

from memprog.core.errors import InstrumentError, SafetyError
from memprog.core.limits import SafetyLimits
from memprog.drivers import flex_commands as fx
from memprog.drivers import kxci_commands as kx
from memprog.drivers.b1500 import B1500
from memprog.drivers.keithley4200 import Keithley4200, Keithley4200Settings
from memprog.drivers.transport import LinkTimeout
from tests.protocol_fake import ExpectedProtocol

ROOT = Path(__file__).resolve().parents[2]
LIMITS = SafetyLimits(set_v_max=2.1, reset_v_max=2.5, current_compliance_a=1e-3)


class StbProtocol(ExpectedProtocol):
    """The fake with a serial poll: scripted as ("<serial poll>", "<stb>")."""

    def read_stb(self) -> int:
        return int(self._next("<serial poll>"))


def test_kxci_over_gpib_does_not_wait_for_ack():
    """GPIB: commands get no ACK; the syntax-error bit of the status byte is polled."""
    pairs = [
        ("*OPT?", "SMU1,SMU2,PMU1"),
        ("BC", None),
        ("<serial poll>", "0"),
        ("US", None),
        ("<serial poll>", "0"),
        ("DV1,0,0.2,0.001", None),
        ("<serial poll>", "0"),
        ("DV9,0,0.2,0.001", None),
        ("<serial poll>", "2"),
    ]
    with StbProtocol(pairs) as t:
        k = Keithley4200(t, LIMITS, Keithley4200Settings(link="gpib"))
        k.connect()
        k.source_voltage(1, 0.2, 1e-3)
        k.smus = []  # let the bad channel through to the instrument
        with pytest.raises(InstrumentError, match="syntax error"):
            k.source_voltage(9, 0.2, 1e-3)


def test_pmu_load_and_range_are_sent_and_limit_the_voltage_at_the_device():
    assert kx.pmu_load(1, 1e6) == ":PMU:LOAD 1,1000000"
    assert kx.pmu_source_range(2, 40) == ":PMU:SOURCE:RANGE 2,40"
    pairs = [
        ("*OPT?", "SMU1,PMU1"),
        ("BC", "ACK"),
        ("US", "ACK"),
        (":PMU:SOURCE:RANGE 1,10", "ACK"),
        (":PMU:LOAD 1,50", "ACK"),
        (":PMU:PULSE:TRAIN 1,0,1", "ACK"),
    ]
    with ExpectedProtocol(pairs) as t:
        k = Keithley4200(t, LIMITS)
        k.connect()
        k.pmu_source_range(1, 10)
        k.pmu_load(1, 50.0)  # a 50 ohm load: the source doubles the level into an open line
        k.pmu_pulse_train(1, 0.0, 1.0)  # 2 V at an open device: within 2.1 V
        with pytest.raises(SafetyError, match="at the device"):
            k.pmu_pulse_train(1, 0.0, 1.1)  # 2.2 V at the device: refused, nothing sent


def test_simulated_pmu_models_the_50_ohm_source(tmp_path):
    """With sim_pmu_source_ohm: 50 a V/3 pulse's bias lines move with the current they carry."""
    import numpy as np
    import yaml

    import memprog
    from memprog.core.strict_yaml import dump_yaml
    from memprog.sim_instruments import k4200

    data = yaml.safe_load((ROOT / "benches" / "sim_k4200_707b.yaml").read_text())
    data["instruments"]["k4200"].setdefault("options", {})["sim_pmu_source_ohm"] = 50.0
    path = tmp_path / "b.yaml"
    path.write_text(dump_yaml(data))
    seen = []
    orig = k4200.Sim4200._source_drop

    def spy(self, conn, pulsing, rv, cv):
        before = rv.copy(), cv.copy()
        orig(self, conn, pulsing, rv, cv)
        seen.append((before, (rv.copy(), cv.copy())))

    k4200.Sim4200._source_drop = spy
    try:
        with memprog.open_bench(path) as b:
            b.programmer.pulse(3, 3, 1.2, 200e-9)
    finally:
        k4200.Sim4200._source_drop = orig
    (r0, c0), (r1, c1) = seen[0]
    assert r0[3] == 1.2 and r0[0] == pytest.approx(0.4) and c0[0] == pytest.approx(0.8)
    # the selected row sags a little, the bias lines move toward each other (they carry the
    # half-select current of the whole array through their 50 ohm)
    assert 1.1 < r1[3] < 1.2
    assert r1[0] > 0.41 and c1[0] < 0.79
    assert c1[3] == 0.0 and np.isfinite(r1).all()


def test_b1500_rejected_ti_is_reported_for_ti_not_the_next_command():
    timeout = LinkTimeout("b1500", -1073807339, "Timeout expired before operation completed.", "TI 1,0")
    pairs = [
        ("TI 1,0", timeout),
        (fx.errx(), '+121,"Channel number error"'),
        (fx.errx(), '+0,"No Error."'),
    ]
    with ExpectedProtocol(pairs) as t:
        b = B1500(t)
        b.modules = fx.parse_unt("B1517A,0;0,0;0,0;0,0;0,0;0,0;0,0;0,0;0,0;0,0", "b1500")
        with pytest.raises(InstrumentError, match=r"121: Channel number error \(after 'TI 1,0'\)"):
            b.measure_current(1, 0)


def test_fmt1_lowercase_channel_letters_and_status_f():
    r = fx.parse_reading("NaI+012.345E-06")
    assert r.channel == 102 and r.value == pytest.approx(12.345e-6)
    assert fx.parse_reading("NjV+001.000E+00").channel == 1002
    f = fx.parse_reading("FAI+000.100E-03")
    assert f.status == "F" and "force_saturation" in f.flags and not f.ok


def test_list_resources_returns_a_tuple():
    rm = pyvisa.ResourceManager(f"{ROOT / 'benches' / 'sim_onchip.yaml'}@memprog")
    try:
        assert rm.list_resources("GPIB?*::INSTR") == ()
        assert rm.list_resources() == ("TCPIP0::127.0.0.1::5025::SOCKET",) or isinstance(
            rm.list_resources(), tuple
        )
    finally:
        rm.close()


def test_relative_and_absolute_paths_share_one_simulated_bench(monkeypatch):
    monkeypatch.chdir(ROOT)
    rel = pyvisa.ResourceManager("benches/sim_onchip.yaml@memprog")
    ab = pyvisa.ResourceManager(f"{ROOT / 'benches' / 'sim_onchip.yaml'}@memprog")
    try:
        assert rel.visalib is not ab.visalib
        assert rel.visalib.ensure_bench() is ab.visalib.ensure_bench()
    finally:
        rel.close()
        ab.close()
