"""The program job file (issue 28): validated whole before anything is fetched."""

from __future__ import annotations

import pytest

from memprog.core.errors import ConfigError
from memprog.jobs.jobfile import load_job

PIN = "ab" * 32


def _write(tmp_path, text):
    p = tmp_path / "job.yaml"
    p.write_text(text)
    return p


def test_a_full_job_and_relative_paths(tmp_path):
    p = _write(
        tmp_path,
        f"weights: https://127.0.0.1:9/net.pt\nsha256: {PIN.upper()}\nbench: sim_onchip\n"
        "protocol: denoise\ntest_set: data/test.npz\naccuracy_tolerance: 0.05\n",
    )
    job = load_job(p)
    assert job.sha256 == PIN and job.protocol == "denoise" and job.accuracy_tolerance == 0.05
    assert job.weights == "https://127.0.0.1:9/net.pt"  # URLs are left alone
    assert job.test_set == str(tmp_path / "data" / "test.npz")  # paths follow the job file


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("sha256: abc\nweights: w.pt\n", "sha256"),
        ("weights: w.pt\nprotocol: magic\n", "protocol"),
        ("weights: w.pt\naccuracy_tolerance: 3\n", "accuracy_tolerance"),
        ("weights: w.pt\nsettle_s: .nan\n", "settle_s"),
        ("weights: w.pt\nwieghts: x\n", "wieghts"),
        ("bench: sim_onchip\n", "weights"),
        ("weights: w.pt\nmax_bytes: 1e15\n", "max_bytes"),
    ],
)
def test_bad_job_files_name_the_field(tmp_path, text, field):
    with pytest.raises(ConfigError) as exc:
        load_job(_write(tmp_path, text))
    assert field in str(exc.value) and "job.yaml" in str(exc.value)


def test_anchors_and_non_mappings_refused(tmp_path):
    with pytest.raises(ConfigError):
        load_job(_write(tmp_path, "a: &x [1]\nweights: *x\n"))
    with pytest.raises(ConfigError):
        load_job(_write(tmp_path, "- weights\n"))
    with pytest.raises(ConfigError, match="existing job file"):
        load_job(tmp_path / "nope.yaml")
