"""Bench files are validated at load time, with one-line errors naming the file and field."""

from __future__ import annotations

import textwrap

import pytest

from memprog.core.bench_config import load_bench_config
from memprog.core.errors import ConfigError
from memprog.core.limits import SafetyLimits

BENCH = textwrap.dedent(
    """
    name: test bench
    chip:
      id: T1
      technology: hfo2_1t1r
      rows: 4
      cols: 4
      limits: {set_v_max: 2.5, reset_v_max: 2.5}
    instruments:
      ctrl: {kind: onchip, resource: "TCPIP0::127.0.0.1::5025::SOCKET"}
    programmer: {stack: onchip}
    """
)


def _write(tmp_path, text):
    p = tmp_path / "bench.yaml"
    p.write_text(text)
    return p


def test_a_valid_bench_loads(tmp_path):
    cfg, path = load_bench_config(_write(tmp_path, BENCH))
    assert cfg.chip.rows == 4 and cfg.instruments["ctrl"].simulated
    assert path.name == "bench.yaml"


def test_missing_bench_file_names_the_file():
    with pytest.raises(ConfigError, match="no_such_bench.yaml"):
        load_bench_config("no_such_bench.yaml")


def test_limits_beyond_breakdown_are_refused_at_load(tmp_path):
    text = BENCH.replace("set_v_max: 2.5", "set_v_max: 3.5")
    with pytest.raises(ConfigError) as err:
        load_bench_config(_write(tmp_path, text))
    msg = str(err.value)
    assert "bench.yaml" in msg and "set_v_max" in msg and "3.5" in msg and "breakdown" in msg
    assert "\n" not in msg


def test_unknown_field_and_bad_kind_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="instruments.ctrl.kind"):
        load_bench_config(_write(tmp_path, BENCH.replace("kind: onchip", "kind: scope")))
    with pytest.raises(ConfigError, match="chip.rows"):
        load_bench_config(_write(tmp_path, BENCH.replace("rows: 4", "rows: 0")))
    with pytest.raises(ConfigError, match="valid YAML"):
        load_bench_config(_write(tmp_path, "name: [unclosed"))


def test_safety_limits_refuse_before_sending():
    from memprog.core.errors import SafetyError

    lim = SafetyLimits(set_v_max=2.0, reset_v_max=2.4, width_s_max=1e-6)
    lim.check_pulse([1.0, -2.4], 200e-9)
    with pytest.raises(SafetyError, match=r"amplitude_v=2\.1.*-2\.4, 2\.0"):
        lim.check_pulse([1.0, 2.1], 200e-9)
    with pytest.raises(SafetyError, match="width_s"):
        lim.check_pulse(1.0, 2e-6)
    with pytest.raises(SafetyError, match="amplitude_v=nan"):
        lim.check_pulse(float("nan"), 200e-9)
    with pytest.raises(SafetyError, match="read_v"):
        lim.check_read(0.5)
    with pytest.raises(ConfigError, match="width_s_min"):
        SafetyLimits(set_v_max=2, reset_v_max=2, width_s_min=1e-3, width_s_max=1e-6)


@pytest.mark.parametrize("name", ["lab_onchip", "lab_k4200_707b", "lab_b1500_wgfmu"])
def test_lab_templates_validate_and_fail_with_one_line_without_a_lab(name, monkeypatch, tmp_path):
    """The lab templates, once edited, are valid bench files; with no lab VISA installed,
    opening one says which file and which instrument's library is missing, on one line."""
    import pyvisa

    from memprog import open_bench
    from tests.lab_template_helpers import edited_template

    edited = edited_template(name, tmp_path)  # unedited, they are refused (test_lab_templates)
    config, path = load_bench_config(edited)
    assert path.name == f"{name}.yaml"
    assert all(not inst.simulated for inst in config.instruments.values())

    def no_visa(*args, **kwargs):
        raise OSError("Could not open VISA library:\n  (no library installed here)")

    monkeypatch.setattr(pyvisa, "ResourceManager", no_visa)
    with pytest.raises(ConfigError) as e:
        open_bench(edited)
    text = str(e.value)
    assert "\n" not in text
    assert text.startswith(f"{name}.yaml: instruments.") and ".visa_library=" in text
