"""The simulated 4200A-SCS answers KXCI like the instrument (backend: @memprog simulator).

Includes PyMeasure's own Keithley4200 driver, used exactly as its documentation shows,
against the simulated bench.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pyvisa

from memprog.bench.assembly import open_bench
from memprog.core.errors import InstrumentError

BENCH = Path(__file__).resolve().parents[2] / "benches" / "sim_k4200_707b.yaml"
LIB = f"{BENCH}@memprog"
K4200 = "TCPIP0::127.0.0.1::1225::SOCKET"
K707B = "GPIB0::16::INSTR"


def route(r: int, c: int) -> str:
    """707B list: SMU1 (row E) on word line r, SMU2 (row F) on bit line c, SMU3 (row G) on
    every other line (the bench wires word lines to card 1, bit lines to card 2)."""
    chans = [f"1E{r + 1:02d}", f"2F{c + 1:02d}"]
    chans += [f"1G{i + 1:02d}" for i in range(8) if i != r] + [
        f"2G{j + 1:02d}" for j in range(8) if j != c
    ]
    return ",".join(chans)


@pytest.fixture
def raw():
    """Raw pyvisa sessions to both simulated instruments, and the simulated bench."""
    rm = pyvisa.ResourceManager(LIB)
    k = rm.open_resource(K4200, read_termination="\0", write_termination="\0")
    m = rm.open_resource(K707B, read_termination="\n", write_termination="\n")
    yield k, m, rm.visalib.ensure_bench()
    rm.close()


def test_static_surface_and_termination(raw):
    k, _, _ = raw
    assert k.query("*OPT?") == "SMU1,SMU2,SMU3,SMU4,PMU1,PMU2"
    assert "4200A-SCS" in k.query("*IDN?")
    assert k.query("ID") == "KI4200A V1.13"
    assert k.query("BC") == "ACK"


def test_user_mode_through_the_matrix(raw):
    k, m, sim = raw
    chip = sim.chip
    m.write(f'channel.exclusiveclose("{route(3, 5)}")')  # SMU1 -> word line 3, SMU2 -> bit line 5
    assert k.query("US;DV1,0,0.2,0.001;DV2,0,0,0.001;DV3,0,0,0.001") == "ACK"
    reply = k.query("TI2")
    assert reply.startswith("NBI-")
    g = -float(reply[3:]) / 0.2 * 1e6
    assert g == pytest.approx(chip.true_conductance_us(3, 5), rel=0.03)
    assert k.query("TV1") == "NAV+2.0000E-01"
    # the force SMU also feeds the cells of word line 3 that end on the grounded bit lines
    row_g = chip.true_conductance_us(np.full(8, 3), np.arange(8)).sum()
    assert float(k.query("TI1")[3:]) == pytest.approx(0.2 * row_g * 1e-6, rel=0.03)
    # with the other lines floating instead, sneak paths add to the sensed current
    m.write('channel.exclusiveclose("1E04,2F06")')
    assert -float(k.query("TI2")[3:]) / 0.2 * 1e6 > chip.true_conductance_us(3, 5) + 20


def test_compliance_statuses_and_mode_errors(raw):
    k, m, sim = raw
    m.write('channel.exclusiveclose("1E01,2F01")')
    sim.chip.set_state_us(300.0, 0, 0)
    k.query("US")
    k.query("DV2,0,0,0.001")
    k.query("DV1,0,0.2,1e-5")  # 300 µS at 0.2 V wants 60 µA: SMU1 in compliance
    assert k.query("TI1") == "CAI+1.0000E-05"
    assert k.query("TI2").startswith("TBI")  # the other channel is in compliance
    assert k.query("DE") == "ACK"
    assert k.query("TI1").startswith("ERROR -101")
    assert k.query("dv1,0,0,1e-3").startswith("ERROR -992")
    assert k.query("ZZ").startswith("ERROR -100")
    assert k.query(":PMU:PULSE:TRAIN 7,0,1").startswith("ERROR -102")


def test_two_sources_fighting_on_a_line_read_compliance(raw):
    k, m, _ = raw
    # no interlock here (raw session): SMU1 and SMU3 both on word line 0
    m.write('channel.close("1E01,1G01,2F01")')
    k.query("US;DV1,0,0.2,0.001;DV3,0,0,0.001;DV2,0,0,0.001")
    assert k.query("TI1").startswith("CAI") and k.query("TI3").startswith("CCI")


def test_current_source_drives_the_cell_to_the_ohmic_voltage(raw):
    k, m, sim = raw
    sim.chip.set_state_us(200.0, 1, 1)
    m.write(f'channel.exclusiveclose("{route(1, 1)}")')
    k.query("US;DV2,0,0,0.001;DV3,0,0,0.001")
    assert k.query("DI1,0,2e-5,1") == "ACK"
    v = float(k.query("TV1")[3:])
    row_g = sim.chip.true_conductance_us(np.full(8, 1), np.arange(8)).sum()  # all to ground
    assert v == pytest.approx(2e-5 / (row_g * 1e-6), rel=0.03)
    m.write('channel.open("allslots")')
    assert k.query("TV1") == "CAV+1.0000E+00"  # open circuit: runs to its compliance


def test_pmu_pulse_goes_through_the_routing(raw):
    k, m, sim = raw
    chip = sim.chip
    chip.set_state_us(150.0, 2, 2)
    g0 = chip.true_conductance_us()
    for cmd in (
        ":PMU:INIT 0",
        ":PMU:RPM:CONFIGURE PMU1-1,0",
        ":PMU:PULSE:TRAIN 1,0,1.6",
        ":PMU:PULSE:TIMES 1,5e-07,2e-07,2e-08,2e-08",
        ":PMU:OUTPUT:STATE 1,1",
    ):
        assert k.query(cmd) == "ACK"
    t0 = chip.clock_s
    assert k.query(":PMU:EXECUTE") == "ACK"  # nothing routed: nothing happens but time
    assert k.query(":PMU:TEST:STATUS?") == "0"
    np.testing.assert_array_equal(chip.true_conductance_us(), g0)
    assert chip.clock_s - t0 == pytest.approx(5e-7 + 1e-3 + 2 * 500e-6)
    m.write('channel.exclusiveclose("1A03,2D03")')  # PMU1-1 -> word line 2, GNDU -> bit line 2
    k.query(":PMU:EXECUTE")
    g1 = chip.true_conductance_us()
    assert g1[2, 2] > g0[2, 2] + 5  # a 1.6 V SET pulse on the selected cell
    # the other lines float: cells sharing word line 2 see part of the pulse through the array
    assert chip._n_disturb.reshape(8, 8)[2, 3] >= 1


def test_system_mode_sweep_and_user_library(raw, tmp_path):
    k, m, sim = raw
    sim.chip.set_state_us(250.0, 0, 3)
    m.write(f'channel.exclusiveclose("{route(0, 3)}")')
    for cmd in (
        "DE",
        "CH1,'V1','I1',1,1",
        "CH2,'V2','I2',1,3",
        "CH3,'V3','I3',1,3",
        "SS",
        "VR1,0,0.2,0.05,0.001",
        "VC2,0,0.001",
        "VC3,0,0.001",
        "HT0",
        "DT0",
        "MD",
        "ME1",
    ):
        assert k.query(cmd) == "ACK", cmd
    assert k.query("SP") == "1" and k.query("SP") == "0"
    i2 = [float(x[1:]) for x in k.query("DO 'I2'").split(",")]
    v1 = [float(x[1:]) for x in k.query("DO 'V1'").split(",")]
    np.testing.assert_allclose(v1, [0, 0.05, 0.1, 0.15, 0.2])
    np.testing.assert_allclose(-np.array(i2), 250e-6 * np.array(v1), rtol=0.03, atol=1e-8)
    assert float(k.query("RD 'I2',5")) == pytest.approx(i2[4])
    assert k.query("RD 'I2',6") == "0"
    assert k.query("UL") == "ACK"
    k.query("US;DV1,0,0.2,0.001;DV3,0,0,0.001")
    assert k.query("UL") == "ACK"
    assert k.query("EX memprog_sim smu_read(2,0,3,,4)") == "RETURN VALUE = 0"
    vals = k.query("GP 4 3")
    assert vals.startswith("PARAM VALUE = ") and len(vals.split(";")) == 3
    assert k.query("GN I 5").startswith("ERROR -980")
    assert k.query("EX nolib nomod()").startswith("ERROR -100")


def test_driver_turns_error_replies_into_exceptions():
    with open_bench(BENCH) as b:
        k = b.instruments["k4200"]
        with pytest.raises(InstrumentError) as err:
            k._command("ZZ1")
        assert err.value.code == -100 and err.value.command == "ZZ1"
        with pytest.raises(InstrumentError) as err:
            k.execute_module("nolib", "nomod", ())
        assert err.value.code == -100
        res_ok = k.sweep_voltage(1, 0.0, 0.1, 0.05, 1e-3, constant_v={2: 0.0})
        assert res_ok.status.tolist() == ["N", "N", "N"]


@pytest.mark.slow
def test_pymeasure_keithley4200_works_unchanged_against_the_simulator():
    from pymeasure.instruments.keithley.keithley4200 import Keithley4200

    inst = Keithley4200(K4200, visa_library=f"{BENCH}@memprog")
    try:
        assert inst.options == ["SMU1", "SMU2", "SMU3", "SMU4", "PMU1", "PMU2"]
        assert len(inst.smu) == 4
        # route one cell with the simulated 707B of the same bench (same resource manager)
        rm = inst.adapter.manager
        matrix = rm.open_resource(K707B, read_termination="\n", write_termination="\n")
        matrix.write(f'channel.exclusiveclose("{route(4, 2)}")')  # SMU1 -> WL4, SMU2 -> BL2
        inst.smu3.voltage_setpoint = (0, 0, 1e-3)  # SMU3 grounds every other line
        chip = rm.visalib.ensure_bench().chip
        inst.smu1.voltage_setpoint = (0, 0.2, 1e-3)
        inst.smu2.voltage_setpoint = (0, 0, 1e-3)
        assert inst.smu1.voltage == pytest.approx(0.2)
        i = inst.smu2.current
        assert -i / 0.2 * 1e6 == pytest.approx(chip.true_conductance_us(4, 2), rel=0.03)
        inst.smu4.current_setpoint = (0, 1e-6, 2)  # unconnected: runs to 2 V compliance
        assert inst.smu4.voltage == pytest.approx(2.0)
        assert inst.id == "KI4200A V1.13"
        inst.clear()
        inst.smu1.disable()
    finally:
        inst.adapter.close()
        # pymeasure closes its resource manager only for pyvisa-sim's own library: close ours,
        # or the simulated bench (switch states included) outlives the test
        inst.adapter.manager.close()
