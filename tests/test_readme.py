"""The README's Python examples run as written (from the checkout root, as a user would) and
what they print is what the README says they do: tuned cells within tolerance, retention
lines that count every cell, a fraction that is a fraction."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_has_examples():
    assert BLOCKS, "the README shows a lab script"


def _check_tuned(ns: dict, out: str) -> None:
    """A block that tunes cells: every cell it tuned ends within its tolerance."""
    res = ns["res"]
    err = np.abs(np.asarray(res.final_us) - np.asarray(res.target_us))
    assert (err <= np.asarray(res.tolerance_us)).all(), (res.final_us, res.target_us)
    assert np.asarray(res.within_tolerance).all()


def _check_retention(out: str) -> None:
    """Retention lines: 'after T s: k/n within tolerance', one per delay, every cell kept."""
    counts = re.findall(r"after (\S+) s: (\d+)/(\d+) within tolerance", out)
    assert len(counts) >= 2, out
    for _delay, k, n in counts:
        assert int(n) > 0 and int(k) == int(n), out


def _check_fraction(out: str) -> None:
    """The hardware-aware example prints the fraction of points in the >= 95 % bins."""
    value = float(out.strip().splitlines()[-1])
    assert 0.0 < value <= 1.0, out


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    ns = {"__name__": "__readme__"}
    exec(compile(code, "README.md", "exec"), ns)
    out = capsys.readouterr().out
    assert out.strip(), "the example prints what it measured"
    checked = False
    if "tune_alibart" in code:
        _check_tuned(ns, out)
        checked = True
    if "retention_check" in code:
        _check_retention(out)
        checked = True
    if "fraction_correct_in_at_least_95pct" in code:
        _check_fraction(out)
        checked = True
    assert checked, "a README example this test does not know how to check: add its check here"
