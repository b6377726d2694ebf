"""End to end: tune devices on probes through the B1500A + B1530A WGFMU stack.

Backend: @memprog simulator through open_bench: the real drivers (FLEX for the B1500A, the
WGFMU driver calling the simulated instrument library exactly as it calls wgfmu.dll) on the
simulated 1x4 TiO2 chip. Settings as Drolet (seed 001): SET 0.8 -> 2 V, RESET -1.1 ->
-2.4 V, 0.02 V steps, 200 ns pulses, 0.2 V 10 us reads, 1 % tolerance, 10 reads in band.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from memprog.bench.assembly import open_bench
from memprog.core.bench_config import load_bench_config
from memprog.core.errors import ConfigError, SafetyError
from memprog.core.probe_wiring import ProbeWiring
from memprog.core.strict_yaml import dump_yaml
from memprog.drivers.b1500_programmer import OpenCircuitError
from memprog.protocols import alibart
from tests.lab_template_helpers import edited_template

BENCH = Path(__file__).resolve().parents[2] / "benches" / "sim_b1500_wgfmu.yaml"
LAB = BENCH.with_name("lab_b1500_wgfmu.yaml")
DROLET = dict(
    set_start_v=0.8, set_step_v=0.02, set_max_v=2.0,
    reset_start_v=1.1, reset_step_v=0.02, reset_max_v=2.4,
    width_s=200e-9, read_v=0.2, tolerance_rel=0.01, reads_in_band=10,
)  # fmt: skip


def _library(bench):
    return bench.instruments["wgfmu"].lib


@pytest.mark.slow
def test_alibart_tunes_the_probed_device_to_three_targets():
    params = alibart.AlibartParams(**DROLET)
    with open_bench(BENCH) as bench:
        assert bench.simulated
        chip = bench.sim_chip
        others = chip.true_conductance_us()[0, 1:].copy()
        for target in (250.0, 100.0, 400.0):
            t0 = bench.bench_time_s
            res = alibart.tune_alibart(bench.programmer, [0], [0], [target], params=params)
            assert bool(res.converged[0])
            assert abs(res.final_us[0] - target) / target <= 0.01 + 1e-12
            assert 1 <= int(res.pulses[0]) <= 400
            # the device really is there (truth of the simulator), within the read noise
            assert chip.true_conductance_us(0, 0)[0] == pytest.approx(target, rel=0.02)
            # every pulse and read costs real bench time (execute overhead + sequences)
            assert bench.bench_time_s - t0 > 0.05
        # the devices whose pads carry no probe were never touched
        np.testing.assert_allclose(chip.true_conductance_us()[0, 1:], others, atol=1e-9)
        lib = _library(bench)
        assert lib.executions > 100 and lib.mainframe is not None
    assert lib.mainframe is None  # the bench closed the library session


def test_programmer_addresses_only_probed_devices_and_checks_limits_first():
    with open_bench(BENCH) as bench:
        p = bench.programmer
        lib = _library(bench)
        assert p.info.parallel == "cell" and (p.info.rows, p.info.cols) == (1, 4)
        n = lib.executions
        with pytest.raises(ConfigError, match=r"under the probes \[\(0, 0\)\]"):
            p.read(0, 2)
        with pytest.raises(SafetyError):
            p.pulse(0, 0, 2.2, 200e-9)  # beyond set_v_max = 2.1 V
        with pytest.raises(SafetyError):
            p.pulse(0, 0, -1.5, 2e-6)  # longer than width_s_max
        assert lib.executions == n  # nothing reached the library
        g = p.read_array()
        assert np.isnan(g[0, 1:]).all()
        assert g[0, 0] == pytest.approx(bench.sim_chip.true_conductance_us(0, 0)[0], rel=0.01)


def test_pulse_read_train_is_one_execution_and_reads_after_each_pulse():
    with open_bench(BENCH) as bench:
        p = bench.programmer
        lib = _library(bench)
        chip = bench.sim_chip
        n = lib.executions
        g = p.pulse_read_train(0, 0, np.linspace(0.9, 1.3, 8), 200e-9)
        assert lib.executions == n + 1
        assert g.shape == (8,) and np.all(np.diff(g) > 0)  # potentiation under rising SET pulses
        assert g[-1] == pytest.approx(chip.true_conductance_us(0, 0)[0], rel=0.01)
        g2 = p.pulse_read_train(0, 0, [-1.4] * 3, 200e-9)
        assert np.all(np.diff(g2) < 0) and g2[0] < g[-1]


def test_a_lifted_probe_is_an_open_circuit_and_leaves_everything_safe():
    with open_bench(BENCH) as bench:
        sim = _library(bench).bench.instrument("b1500")  # the simulated mainframe
        p = bench.programmer
        g0 = p.read(0, 0)[0]
        assert g0 > 50
        # lift the bottom probe in the simulator only: the driver still believes it is down
        sim.wiring = ProbeWiring.model_construct(
            mainframe="b1500", wgfmu="wgfmu", pads={101: "top0"}, rsu={}
        )
        with pytest.raises(OpenCircuitError, match="open circuit"):
            p.read(0, 0)
        assert not any(hw.connected for hw in sim.wgfmu.values())  # WGFMU_initialize ran
        assert not any(s.enabled for s in sim.smus.values())
        # put the probe back: the next operation sets the channels up again
        sim.wiring = ProbeWiring(pads={101: "top0", 102: "bottom0"}, rsu={2: 101, 3: 102})
        assert p.read(0, 0)[0] == pytest.approx(g0, rel=0.01)


def _variant(tmp_path: Path, **changes) -> Path:
    cfg = yaml.safe_load(BENCH.read_text())
    for dotted, value in changes.items():
        node = cfg
        *path, last = dotted.split("__")
        for k in path:
            node = node[k]
        node[last] = value
    out = tmp_path / f"bench{len(list(tmp_path.iterdir()))}.yaml"  # pyvisa caches by path
    out.write_text(dump_yaml(cfg))
    return out


def test_three_devices_sharing_the_top_pad_with_two_wgfmus(tmp_path):
    path = _variant(
        tmp_path,
        instruments__b1500__options={"sim_modules": ["B1530A", "B1530A", "B1517A", "B1517A"]},
        wiring__pads={101: "top0", 102: "bottom0", 201: "bottom1", 202: "bottom2"},
        wiring__rsu={3: 101, 4: 102},
    )
    with open_bench(path) as bench:
        p = bench.programmer
        chip = bench.sim_chip
        assert p.devices == [(0, 0), (0, 1), (0, 2)]
        before = chip.true_conductance_us().copy()
        res = alibart.tune_alibart(p, [0], [1], [300.0], params=alibart.AlibartParams(**DROLET))
        assert bool(res.converged[0])
        after = chip.true_conductance_us()
        assert after[0, 1] == pytest.approx(300.0, rel=0.02)
        # the unselected devices followed the top pad's waveform: 0 V across, unchanged
        np.testing.assert_allclose(after[0, [0, 2, 3]], before[0, [0, 2, 3]], atol=1e-9)
        g = p.read_array()
        assert np.isnan(g[0, 3]) and np.all(np.isfinite(g[0, :3]))


def test_bench_wiring_errors_name_the_field(tmp_path):
    bad = _variant(tmp_path, wiring__pads={101: "top0", 102: "bottom7"})
    with pytest.raises(ConfigError, match="bottom0..bottom3"):
        open_bench(bad)
    bad = _variant(tmp_path, wiring__pads={101: "top0", 202: "bottom0"})
    with pytest.raises(ConfigError, match="WGFMU channel"):
        open_bench(bad)
    bad = _variant(tmp_path, instruments__wgfmu__resource="GPIB0::18::INSTR")
    with pytest.raises(ConfigError, match="B1500A's address"):
        open_bench(bad)
    bad = _variant(tmp_path, programmer__options={"force_range": "10V_positive"})
    with pytest.raises(ConfigError, match="force_range"):
        open_bench(bad)


def test_lab_template_validates_and_names_the_real_library(tmp_path):
    cfg, _ = load_bench_config(edited_template(LAB.stem, tmp_path))  # placeholders filled in
    assert cfg.instruments["wgfmu"].library == "C:/Windows/System32/wgfmu.dll"
    assert not cfg.instruments["b1500"].simulated
    assert cfg.instruments["wgfmu"].resource == cfg.instruments["b1500"].resource
    assert cfg.programmer.stack == "b1500_wgfmu"
    ProbeWiring(**cfg.wiring)
