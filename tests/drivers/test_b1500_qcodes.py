"""QCoDeS's KeysightB1500 driver, used as its documentation shows, on the simulated B1500A.

Backend: @memprog simulator (visalib="<bench>@memprog"); QCoDeS sends its own FLEX (UNT? 0
discovery, *IDN?, CN, DV, TI, TV and an ERRX? after every write) and parses the replies with
its own parsers. Nothing of memprog's drivers is involved.
"""

from __future__ import annotations

from pathlib import Path

import pytest

qcodes_b1500 = pytest.importorskip("qcodes.instrument_drivers.Keysight")

BENCH = Path(__file__).resolve().parents[2] / "benches" / "sim_b1500_wgfmu.yaml"


@pytest.fixture()
def spa():
    from qcodes.instrument_drivers.Keysight import KeysightB1500

    inst = KeysightB1500("spa_memprog", "GPIB0::17::INSTR", visalib=f"{BENCH}@memprog")
    yield inst
    rm = inst.resource_manager
    inst.close()
    rm.close()  # QCoDeS keeps the manager of a non-"sim" backend open; a fresh chip next time


def test_qcodes_discovers_modules_and_measures_the_probed_device(spa):
    from qcodes.instrument_drivers.Keysight.keysightb1500 import constants

    assert sorted(k.value for k in spa.by_kind) == ["CMU", "SMU", "WGFMU"]
    assert [m.channels for m in spa.by_kind[constants.ModuleKind.SMU]] == [(2,), (3,)]
    assert spa.wgfmu1.slot_nr == 1
    spa.smu1.enable_outputs()
    spa.smu2.enable_outputs()
    assert spa.smu1.is_enabled()
    spa.smu1.voltage(0.2)
    spa.smu2.voltage(0.0)
    current = spa.smu1.current()
    assert spa.smu1.current.measurement_status == constants.MeasurementStatus.N
    chip = spa.visa_handle.visalib.ensure_bench().chip
    g_true = chip.true_conductance_us(0, 0)[0]
    assert current == pytest.approx(0.2 * g_true * 1e-6, rel=0.01)  # ~16 uA through the device
    assert spa.smu2.current() == pytest.approx(-current, rel=0.02)
    assert spa.smu1.voltage() == pytest.approx(0.2)
    assert spa.error_message() == '+0,"No Error."'
    fmt = spa.get_response_format_and_mode()
    assert int(fmt["format"]) == 1 and int(fmt["mode"]) == 0
    spa.autozero_enabled(True)
    spa.smu1.disable_outputs()
    assert not spa.smu1.is_enabled()


def test_qcodes_sees_a_rejected_command_as_the_real_b1500_reports_it(spa):
    with pytest.raises(RuntimeError, match=r'\+100,"Undefined GPIB command\."'):
        spa.write("*CLS")


def test_qcodes_staircase_sweep_runs_on_the_simulator(spa):
    from qcodes.instrument_drivers.Keysight.keysightb1500 import constants

    spa.smu1.enable_outputs()
    spa.smu2.enable_outputs()
    spa.smu2.voltage(0.0)
    spa.smu1.setup_staircase_sweep(v_start=0, v_end=0.2, n_steps=5, i_comp=1e-3)
    spa.set_measurement_mode(
        mode=constants.MM.Mode.STAIRCASE_SWEEP,
        channels=(spa.smu1.channels[0], spa.smu2.channels[0]),
    )
    spa.run_iv_staircase_sweep.set_names_labels_and_units()
    i_top, i_bottom = spa.run_iv_staircase_sweep()
    source = spa.run_iv_staircase_sweep.source_voltage
    assert source.value == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    assert source.status == ["W", "W", "W", "W", "E"]
    g_true = spa.visa_handle.visalib.ensure_bench().chip.true_conductance_us(0, 0)[0]
    assert i_top[-1] == pytest.approx(0.2 * g_true * 1e-6, rel=0.02)
    assert i_bottom[-1] == pytest.approx(-i_top[-1], rel=0.02)
    assert spa.run_iv_staircase_sweep.status_summary() == {
        "param1": "No status error occurred.",
        "param2": "No status error occurred.",
    }
