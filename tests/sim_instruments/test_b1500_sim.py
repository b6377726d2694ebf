"""Simulated B1500A mainframe answering FLEX through the @memprog VISA backend.

Backend: pyvisa ResourceManager("benches/sim_b1500_wgfmu.yaml@memprog"): raw FLEX strings
in, raw replies out, acting on the bench's simulated chip through the probes (SMUs reach
the device through the RSUs, which pass the SMUs through until the WGFMU library takes the
channels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pyvisa

BENCH = Path(__file__).resolve().parents[2] / "benches" / "sim_b1500_wgfmu.yaml"
NO_ERROR = '+0,"No Error."'


@pytest.fixture()
def b1500():
    rm = pyvisa.ResourceManager(f"{BENCH}@memprog")
    res = rm.open_resource("GPIB0::17::INSTR", read_termination="\r\n", write_termination="\r\n")
    res.chip = rm.visalib.ensure_bench().chip
    yield res
    res.close()
    rm.close()


def test_identity_modules_and_error_queue(b1500):
    assert b1500.query("*IDN?") == "Keysight Technologies,B1500A,SIM0001500,A.06.03.2022.0816"
    assert b1500.query("UNT? 0") == "B1530A,0;B1517A,0;B1517A,0;B1520A,0;0,0;0,0;0,0;0,0;0,0;0,0"
    assert b1500.query("UNT?") == b1500.query("UNT? 0")
    assert b1500.query("ERRX?") == NO_ERROR
    b1500.write("*CLS")  # not FLEX: a real B1500A queues error 100 for it
    b1500.write("FOO 1")
    b1500.write("DV 2,0,abc")
    b1500.write("DV 2,0")
    b1500.write("DV 7,0,0.1")
    b1500.write("DV 2,0,0.1")  # output relay still open
    assert b1500.query("ERRX?") == '+100,"Undefined GPIB command."'
    assert b1500.query("ERRX?") == '+100,"Undefined GPIB command."'
    assert b1500.query("ERRX?") == '+102,"Incorrect numeric data syntax."'
    assert b1500.query("ERRX?") == '+103,"Incorrect terminator position."'
    assert b1500.query("ERRX?") == '+121,"Channel number must be a slot with a suitable module."'
    assert b1500.query("ERRX?") == '+120,"Incorrect parameter value."'
    assert b1500.query("ERRX?") == NO_ERROR
    assert b1500.query("*OPC?") == "1"


def test_replies_end_with_cr_lf_and_gpib_writes_need_no_terminator(b1500):
    b1500.write_raw(b"*IDN?")  # GPIB: one write call is one message (EOI)
    raw = b1500.read_raw()
    assert raw.endswith(b"B1500A,SIM0001500,A.06.03.2022.0816\r\n")


def test_smus_measure_the_probed_device_through_the_rsus(b1500):
    chip = b1500.chip
    g = chip.true_conductance_us(0, 0)[0]
    b1500.write("CN 2,3")
    b1500.write("DV 2,0,0.2,0.001;DV 3,0,0")  # two commands in one message
    assert b1500.query("ERRX?") == NO_ERROR
    reply = b1500.query("TI 2")
    assert reply[:3] == "NBI" and len(reply) == 15  # status, channel B (=2), current, 12 digits
    assert float(reply[3:]) == pytest.approx(0.2 * g * 1e-6, rel=0.01)
    reply3 = b1500.query("TI 3")
    assert reply3[:3] == "NCI" and float(reply3[3:]) == pytest.approx(-0.2 * g * 1e-6, rel=0.01)
    assert b1500.query("TV 2") == "NBV+200.000E-03"
    assert b1500.query("*LRN? 0") == "CN2,3"
    # compliance: 1 uA limit on a ~16 uA device current
    b1500.write("DV 2,0,0.2,1E-06")
    assert b1500.query("TI 2") == "CBI+001.000E-06"
    assert b1500.query("TI 3")[0] == "T"  # another channel is at its compliance
    b1500.write("DV 2,0,0.2,0.001")
    # a fixed 1 uA range overflows: dummy value with status V
    assert b1500.query("TI 2,-14") == "VBI+199.999E+99"
    # without header (FMT 2) only the number
    b1500.write("FMT 2,0")
    assert b1500.query("TI 2").startswith("+0")
    b1500.write("FMT 1,0")
    # a current source: the device decides the voltage
    b1500.write("DV 2,0,0")
    b1500.write("DI 3,0,-1E-05,2")
    v3 = float(b1500.query("TV 3")[3:])
    assert v3 == pytest.approx(-1e-5 / (g * 1e-6), rel=0.02)
    b1500.write("CL")
    assert b1500.query("*LRN? 0") == "CL"
    assert abs(float(b1500.query("TI 2")[3:])) < 1e-9  # relay open: nothing flows
    assert b1500.query("ERRX?") == NO_ERROR


def test_unprobed_rsu_reads_an_open_circuit(b1500):
    bench_mf = b1500.visalib.ensure_bench().instrument("b1500")
    b1500.write("CN 2,3")
    b1500.write("DV 2,0,0.2;DV 3,0,0")
    bench_mf.wgfmu[102].mode = 2001  # the bottom RSU switched to the WGFMU (not connected)
    assert abs(float(b1500.query("TI 2")[3:])) < 1e-9


def test_spot_and_staircase_measurements_with_xe(b1500):
    g = b1500.chip.true_conductance_us(0, 0)[0]
    b1500.write("CN 2,3")
    b1500.write("DV 3,0,0")
    b1500.write("MM 1,2,3")
    b1500.write("DV 2,0,0.1")
    data = b1500.query("XE").split(",")
    assert [d[:3] for d in data] == ["NBI", "NCI"]
    b1500.write("WV 2,1,0,0,0.2,5,0.001")
    b1500.write("WT 0,0.001")
    b1500.write("WM 2,1")
    b1500.write("MM 2,3")
    b1500.write("FMT 1,1")
    assert b1500.query("*LRN? 31") == "TM1;AV1,0;CM1;FMT1,1;MM2,3"
    assert b1500.query("*LRN? 33") == "WT0,0.001,0,0,0;WM2,1;WV2,1,0,0,0.2,5,0.001"
    tokens = b1500.query("XE").split(",")
    assert len(tokens) == 10  # (current of channel 3, source value of channel 2) x 5 steps
    i = np.array([float(t[3:]) for t in tokens[0::2]])
    v = np.array([float(t[3:]) for t in tokens[1::2]])
    np.testing.assert_allclose(v, np.linspace(0, 0.2, 5))
    assert [t[:3] for t in tokens[1::2]] == ["WBv"] * 4 + ["EBv"]
    np.testing.assert_allclose(-i[1:] / v[1:] * 1e6, g, rtol=0.02)
    assert b1500.query("ERRX?") == NO_ERROR


def test_settings_and_cmu_setup_are_acknowledged_not_silently_faked(b1500):
    for cmd in ("AV 10,1", "AZ 0", "FL 1", "AIT 0,2,2", "IMP 101", "FC 4,1000", "ACV 4,0.03",
                "DCV 4,0", "ADJ 4,1", "LMN 0", "ACT 2,1", "WTDCV 0,0,0,0,0", "CMM 2,1", "RI 2,-14"):  # fmt: skip
        b1500.write(cmd)
        assert b1500.query("ERRX?") == NO_ERROR, cmd
    assert b1500.query("*LRN? 46").startswith("CMM2,1")
    assert b1500.query("*LRN? 32").startswith("RI2,-14")
    b1500.write("FMT 3,0")  # binary data format: not simulated, and said so
    b1500.write("TC 4,0")
    assert b1500.query("ERRX?") == '+999,"Not supported by the memprog simulator."'
    assert b1500.query("ERRX?") == '+999,"Not supported by the memprog simulator."'
    b1500.write("AV 0")
    assert b1500.query("ERRX?") == '+120,"Incorrect parameter value."'
    b1500.write("FC 4,abc")
    assert b1500.query("ERRX?") == '+102,"Incorrect numeric data syntax."'
