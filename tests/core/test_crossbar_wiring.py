"""The wiring section of a k4200_707b bench file is validated with field-naming errors."""

from __future__ import annotations

import copy

import pytest

from memprog.core.crossbar_wiring import (
    CrossbarWiring,
    TerminalRule,
    pmu_channel_number,
    wiring_from_bench,
)
from memprog.core.errors import ConfigError

WIRING = {
    "rows": {
        "A": "PMU1-1",
        "B": "PMU1-2",
        "C": "PMU2-1",
        "D": "GNDU",
        "E": "SMU1",
        "F": "SMU2",
        "G": "SMU3",
    },
    "word_lines": {"slot": 1, "columns": [1, 2, 3, 4]},
    "bit_lines": [{"slot": 1, "columns": [9, 10]}, {"slot": 2, "columns": [1, 2]}],
    "roles": {
        "pulse_row": "PMU1-1",
        "bias_rows": "PMU1-2",
        "bias_cols": "PMU2-1",
        "pulse_col": "GNDU",
        "read_force": "SMU1",
        "read_sense": "SMU2",
        "read_ground": "SMU3",
    },
}


def _with(path: str, value):
    w = copy.deepcopy(WIRING)
    node = w
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return w


def test_valid_wiring_geometry_and_rules():
    w = wiring_from_bench(WIRING, 4, 4)
    assert (w.n_word_lines, w.n_bit_lines) == (4, 4)
    assert w.line_columns("bit") == [(1, 9), (1, 10), (2, 1), (2, 2)]
    assert w.column_lines()[(2, 2)] == ("bit", 3)
    assert w.channel("SMU2", "bit", 2) == "2F01" and w.channel("PMU1-1", "word", 3) == "1A04"
    rules = w.terminal_rules()
    assert rules["PMU1-1"] == TerminalRule(frozenset({"word"}), 1)
    assert rules["PMU2-1"] == TerminalRule(frozenset({"bit"}), 3)
    assert rules["SMU3"] == TerminalRule(frozenset({"word", "bit"}), 6)
    assert [pmu_channel_number(t) for t in ("PMU1-1", "PMU1-2", "PMU2-1", "PMU2-2")] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "path, value, match",
    [
        ("rows.I", "SMU4", r"rows.*'I'.*row letter"),
        ("rows.H", "SMU1", r"rows.*SMU1.*one matrix row"),
        ("rows.H", "SMU0", r"rows\.H.*SMU1\.\.SMU9"),
        ("rows.H", "PMU5-1", r"rows\.H"),
        ("word_lines.columns", [1, 2, 3, 13], r"columns.*13.*\[1, 12\]"),
        ("word_lines.columns", [1, 1, 2, 3], r"columns.*distinct"),
        ("word_lines.columns", [1, 2, 3, 9], r"word_lines|bit_lines.*one line"),
        ("word_lines.slot", 7, r"slot.*<= 6"),
        ("roles.pulse_row", "SMU4", r"roles\.pulse_row.*SMU4.*matrix row"),
        ("roles.pulse_row", "SMU1", r"roles.*SMU1.*different terminal"),
        ("roles.bias_rows", "GNDU", r"roles.*GNDU.*different terminal"),
        ("roles.read_sense", "PMU1-2", r"roles.*PMU1-2.*different terminal"),
        ("roles.read_ground", "PMU1-1", r"roles.*PMU1-1"),
    ],
)
def test_bad_wiring_names_the_field(path, value, match):
    with pytest.raises(ConfigError, match=match) as err:
        wiring_from_bench(_with(path, value), 4, 4)
    assert str(err.value).startswith("wiring.")


def test_pulsed_lines_need_pmu_channels_and_reads_need_smus():
    w = _with("rows.H", "SMU4")
    w["roles"]["bias_cols"] = "SMU4"
    w["rows"]["C"] = "PMU2-2"
    with pytest.raises(ConfigError, match=r"roles\.bias_cols.*PMU channel"):
        CrossbarWiring(**w)
    w = _with("roles.read_force", "GNDU")
    w["roles"]["pulse_col"] = "SMU1"
    with pytest.raises(ConfigError, match=r"roles\.read_force.*SMU"):
        CrossbarWiring(**w)


def test_wiring_must_match_the_chip():
    with pytest.raises(ConfigError, match=r"wiring\.bit_lines.*chip\.cols"):
        wiring_from_bench(WIRING, 4, 5)
    with pytest.raises(ConfigError, match="wiring"):
        wiring_from_bench({}, 4, 4)


def test_shipped_bench_files_validate(tmp_path):
    from memprog.core.bench_config import load_bench_config
    from memprog.drivers.crossbar_programmer import CrossbarOptions
    from tests.lab_template_helpers import edited_template

    lab_path = edited_template("lab_k4200_707b", tmp_path)  # its placeholders filled in
    for name in ("sim_k4200_707b", lab_path):
        cfg, _ = load_bench_config(name)  # found among the benches shipped with memprog
        assert cfg.programmer.stack == "k4200_707b"
        w = wiring_from_bench(cfg.wiring, cfg.chip.rows, cfg.chip.cols)
        assert w.roles.read_ground is not None and cfg.chip.bias_scheme == "v3"
        CrossbarOptions(**cfg.programmer.options)
        assert cfg.chip.limits.set_v_max < 3.0 and cfg.chip.limits.reset_v_max < 3.0  # breakdown
    lab, _ = load_bench_config(lab_path)
    assert not any(i.simulated for i in lab.instruments.values())
    assert lab.instruments["k4200"].resource.endswith("::1225::SOCKET")
