"""The protocol registry, the shared re-verify loop and the declared VMM capability (issue 22).

Backend: the simulated chip (DirectChipProgrammer over SimChip) and the simulated benches.
"""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import memprog
from memprog.bench.direct import DirectChipProgrammer
from memprog.bench.robustness import run_row
from memprog.cli import app
from memprog.core.errors import ConfigError
from memprog.jobs.program import PROTOCOLS as PROGRAM_PROTOCOLS
from memprog.jobs.program import ProgramParams
from memprog.jobs.program_inference import chip_inference
from memprog.protocols import registry
from memprog.protocols.array import ArrayJob, ArrayParams
from memprog.protocols.events import MemorySink
from memprog.protocols.ladder import run_ladder
from memprog.protocols.programmer import CellProgrammer, ProgrammerInfo
from memprog.protocols.results import FLAG_DISTURBED, FLAG_DRIFTED, TuneResult
from memprog.protocols.settle import reverify
from memprog.sim_instruments import SimChip

# ------------------------------------------------------------------ lookup by name


def test_an_unknown_name_is_refused_listing_every_known_one():
    with pytest.raises(ConfigError) as exc:
        registry.get("alibrat")
    msg = str(exc.value)
    assert "alibrat" in msg
    for name in ("alibart", "denoise", "feedforward", "predictive"):
        assert name in msg


def test_capabilities_narrow_what_each_caller_accepts():
    assert set(registry.names(maps=True)) == {"alibart", "denoise", "predictive"}
    assert set(registry.names(ladder=True)) == {"alibart", "denoise", "feedforward"}
    with pytest.raises(ConfigError, match="for a --map"):
        registry.get("feedforward", maps=True)
    # the callers ask the registry: the ladder and the robustness table refuse the same way
    prog = DirectChipProgrammer(SimChip(2, 2, "hfo2_1t1r", seed=1))
    with pytest.raises(ConfigError, match="protocol"):
        run_ladder(prog, 0, 0, [500.0], protocol="predictive")
    with pytest.raises(ConfigError, match="alibart"):
        run_row("nonsense", "preset", 2)


def test_tune_map_with_a_protocol_that_takes_no_map_is_one_line_and_exit_2(tmp_path):
    m = tmp_path / "m.npy"
    np.save(m, np.full((2, 2), 300.0))
    res = CliRunner().invoke(
        app, ["tune", "--bench", "sim_onchip", "--map", str(m), "--protocol", "feedforward", "--json"]
    )
    assert res.exit_code == 2 and res.stdout == ""
    assert "alibart" in res.stderr and "predictive" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_overrides_are_validated_and_unknown_fields_named():
    spec = registry.get("predictive")
    with pytest.raises(ConfigError, match="max_pulses"):
        spec.with_user(spec.settings(), max_pulses=1)  # below the protocol's own bound
    with pytest.raises(ConfigError, match="tolerance_pct"):
        spec.override(spec.settings(), tolerance_pct=2)
    # what a protocol does not take from the command line is left to its own settings
    d = registry.get("denoise")
    p = d.with_user(d.settings(), tolerance_rel=0.5, max_pulses=7, settle_s=0.5)
    assert p.settle_s == 0.5 and p.max_pulses == 7 and not hasattr(p, "tolerance_rel")


@pytest.mark.parametrize("name", registry.names(maps=True))
def test_every_map_protocol_puts_the_chip_in_band_through_the_array_job(name):
    """The array job picks each protocol by name from the registry: what the chip holds is
    the map (converged cells' true conductance within 2 bands of their target)."""
    chip = SimChip(4, 4, "hfo2_1t1r", seed=3)
    prog = DirectChipProgrammer(chip)
    m = np.linspace(200.0, 800.0, 4).reshape(2, 2)
    res = ArrayJob(prog, m, ArrayParams(protocol=name, settle_s=0.0)).run()
    true = chip.true_conductance_us()[res.rows, res.cols]
    ok = res.converged
    assert ok.sum() >= 3
    assert np.all(np.abs(true[ok] - res.target_us[ok]) <= 2 * res.tolerance_us[ok])


# ------------------------------------------------------------------ one re-verify loop
class _Drifting(CellProgrammer):
    """Cells that read what ``g`` says; a pulse-free re-tune puts them on target."""

    def __init__(self, g):
        self.g = np.asarray(g, float)
        self.info = ProgrammerInfo(1, self.g.size, "row", True, (10.0, 1000.0), 0.2, "fake")
        self.reads = 0

    def pulse(self, rows, cols, amplitude_v, width_s, gate_v=None):
        raise AssertionError("the loop itself never pulses")

    def read(self, rows, cols, read_v=None):
        self.reads += 1
        return self.g[np.asarray(cols)]


def _result(targets):
    n = len(targets)
    t = np.asarray(targets, float)
    return TuneResult("x", np.zeros(n, int), np.arange(n), t, t.copy(), np.ones(n), np.ones(n),
                      np.ones(n, bool), np.full(n, "", dtype=object), np.full(n, 5.0))


def test_reverify_retunes_only_cells_out_of_band_and_says_so():
    prog = _Drifting([100.0, 130.0, 300.0])  # the second cell drifted 30 µS (band 5)
    res = _result([100.0, 100.0, 300.0])

    def retune(idx):
        prog.g[idx] = res.target_us[idx]  # the re-tune brings them back on the chip
        r = _result(res.target_us[idx])
        return r

    sink = MemorySink()
    retuned = reverify(prog, res, retune, sink, passes=2, final_check=True)
    assert retuned.tolist() == [False, True, False]
    assert FLAG_DISTURBED in res.flags[1] and res.flags[0] == ""
    assert res.extra["drift_us"][1] == pytest.approx(30.0)
    assert [e["out_of_band"] for e in sink.events_of("reverify")] == [1, 0]


def test_reverify_reports_a_cell_still_out_after_the_last_pass_as_drifted():
    prog = _Drifting([100.0, 150.0])
    res = _result([100.0, 100.0])
    reverify(prog, res, lambda idx: _result(res.target_us[idx]), MemorySink(), passes=1, final_check=True)
    # the re-tune claimed success but the chip still reads 150: the result says the chip's
    assert res.final_us[1] == 150.0 and FLAG_DRIFTED in res.flags[1]


def test_reverify_adopting_reads_reports_what_the_chip_holds():
    prog = _Drifting([103.0, 101.0])
    res = _result([100.0, 100.0])
    reverify(prog, res, lambda idx: pytest.fail("nothing is out of band"), MemorySink(), adopt_reads=True)
    assert res.final_us.tolist() == [103.0, 101.0] and prog.reads == 1


# ------------------------------------------------------------------ the VMM capability
def test_stacks_declare_vmm_and_a_stack_without_one_refuses_naming_it():
    with memprog.open_bench("sim_onchip") as b:
        assert b.programmer.supports_vmm
        i = b.programmer.vmm(np.full(b.programmer.info.rows, 0.05))
        assert i.shape == (b.programmer.info.cols,) and np.all(np.isfinite(i))
    for bench in ("sim_k4200_707b", "sim_b1500_wgfmu"):
        with memprog.open_bench(bench) as b:
            assert b.programmer.supports_vmm is False
            with pytest.raises(ConfigError, match="VMM"):
                b.programmer.vmm(np.zeros(b.programmer.info.rows))


def test_the_program_job_asks_the_capability_not_the_attributes():
    """A stack with a ``controller.vmm`` attribute that does not declare the capability
    runs inference from read-out (the old duck typing would have called it)."""

    class _Ctrl:
        def vmm(self, v):
            raise AssertionError("an undeclared VMM is never used")

    class _Quiet(DirectChipProgrammer):
        controller = _Ctrl()

    prog = _Quiet(SimChip(4, 4, "hfo2_1t1r", seed=1))
    x = np.zeros((3, 2))
    y = np.zeros(3, int)

    class _Net:
        output = "softmax"

        def predict(self, xx, mats=None):
            return np.zeros(len(xx), int)

    sw, chip, readout, how = chip_inference(_Net(), None, (x, y), [], prog, None, False, MemorySink())
    assert how == "readout" and chip == readout == 1.0


def test_the_jobs_settings_accept_exactly_the_registered_protocols():
    """ProgramParams and ArrayParams name their protocols as pydantic literals: a protocol
    added to the registry but not to them (or the reverse) fails here, not in a user's run."""
    for name in registry.names():
        assert ProgramParams(protocol=name).protocol == name
    for name in registry.names(maps=True):
        assert ArrayParams(protocol=name).protocol == name
    with pytest.raises(ConfigError):
        ArrayParams(protocol="feedforward")
    assert set(PROGRAM_PROTOCOLS) == set(registry.names())
