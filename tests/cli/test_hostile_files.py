"""Hostile input files (issue 21): each red-team reproduction through the CLI ends in one
line on stderr naming the file or field, exit 2, no traceback — and the bombs within a
memory cap (a subprocess under RLIMIT_AS, POSIX only), never by allocating what a header
or an alias claims.

Backend: the simulated benches (``sim_onchip``, ``sim_b1500_wgfmu``); nothing here pulses a
cell — every refusal happens before the bench is opened or before the chip is touched.
"""

from __future__ import annotations

import importlib.resources
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from memprog.cli import app
from memprog.core.strict_yaml import load_yaml_text
from memprog.jobs.weights import load_conductance_map, load_program_input, load_test_set

CLI = [sys.executable, "-c", "from memprog.cli import main; main()"]
MEM_CAP_BYTES = 2 * 2**30  # the bombs claim 7.45 GiB and 745 GiB; the CLI itself needs < 1 GiB


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


def _npy_bytes(shape: tuple[int, ...], descr: str = "<f8", data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


def _assert_one_line_exit_2(exit_code: int, stderr: str, *names: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if not ln.startswith("memprog: run ")]
    assert exit_code == 2, stderr
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for n in names:
        assert n in lines[0], lines[0]
    return lines[0]


def _capped_cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """The CLI in a subprocess whose address space is capped (bounded memory, not time)."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEM_CAP_BYTES, MEM_CAP_BYTES))

    env = {**os.environ, "MEMPROG_DB": f"sqlite:///{tmp_path / 'db.sqlite'}", "MPLBACKEND": "Agg"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, preexec_fn=cap, timeout=300)


posix_only = pytest.mark.skipif(os.name != "posix", reason="RLIMIT_AS is POSIX-only")


# --------------------------------------------------------------------------- bombs
@pytest.mark.slow
@posix_only
def test_npz_decompression_bomb_is_refused_from_its_header(tmp_path):
    """A .npz member whose header claims 10^9 float64 (7.45 GiB): refused before allocating."""
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("W0.npy", _npy_bytes((10**9,), data=b"\0" * 4096))
    r = _capped_cli(["program", str(bomb), "--bench", "sim_onchip", "--json"], tmp_path)
    _assert_one_line_exit_2(r.returncode, r.stderr, "bomb.npz", "W0", "1000000000")


@pytest.mark.slow
@posix_only
def test_npy_header_claiming_1e11_elements_is_refused(tmp_path):
    big = tmp_path / "big.npy"
    big.write_bytes(_npy_bytes((10**11,)))
    r = _capped_cli(["program", str(big), "--bench", "sim_onchip", "--json"], tmp_path)
    _assert_one_line_exit_2(r.returncode, r.stderr, "big.npy", "100000000000")


def test_real_deflate_bomb_larger_than_any_chip_is_refused_without_inflating(tmp_path):
    """A real bomb (80 MB of zeros in ~80 KB): more weights than the largest chip has cells."""
    bomb = tmp_path / "zeros.npz"
    shape = (5000, 4000)  # 2e7 weights > 4096 x 4096 cells
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z, z.open("W0.npy", "w") as f:
        f.write(_npy_bytes(shape, "<f4"))
        left = 4 * shape[0] * shape[1]
        while left:
            f.write(bytes(min(left, 2**22)))
            left -= min(left, 2**22)
    assert bomb.stat().st_size < 200_000
    r = _runner().invoke(app, ["program", str(bomb), "--bench", "sim_onchip", "--json"])
    _assert_one_line_exit_2(r.exit_code, r.stderr, "zeros.npz", "W0", "16777216")


def test_torch_zip_stating_more_than_any_network_is_refused_before_torch_reads_it(tmp_path):
    """torch's reader allocates what a zip member states; the stated size is checked first."""
    path = tmp_path / "w.pt"
    torch.save({"a.weight": torch.ones(2, 3)}, path)
    raw = bytearray(path.read_bytes())
    cd = raw.index(b"PK\x01\x02")  # first central-directory record: its uncompressed size
    raw[cd + 24 : cd + 28] = (2**31).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    r = _runner().invoke(app, ["program", str(path), "--bench", "sim_onchip", "--json"])
    _assert_one_line_exit_2(r.exit_code, r.stderr, "w.pt", "uncompressed")


# --------------------------------------------------------------------------- bad arrays
def _object_npy(p: Path) -> None:
    np.save(p / "w.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)


def _struct_npy(p: Path) -> None:
    np.save(p / "w.npy", np.zeros((2, 2), dtype=[("a", "<f8"), ("b", "<i4")]))


def _lying_npy(p: Path) -> None:
    (p / "w.npy").write_bytes(_npy_bytes((100, 100), data=b"\0" * 64))


BAD_FILES = [
    ("object npy", _object_npy, "w.npy", "object"),
    ("string npy", lambda p: np.save(p / "w.npy", np.array([["a", "b"]])), "w.npy", "<U1"),
    ("struct npy", _struct_npy, "w.npy", "dtype"),
    ("complex map", lambda p: np.save(p / "w.npy", np.array([[100 + 5j, 200]])), "w.npy", "complex128"),
    ("empty npy", lambda p: (p / "w.npy").write_bytes(b""), "w.npy", ".npy"),
    ("junk npy", lambda p: (p / "w.npy").write_bytes(b"\x93NUMPY\x01\x00\x20\x00{'descr': junk"), "w.npy", ".npy"),
    ("lying npy header", _lying_npy, "w.npy", "80000"),
    ("binary csv", lambda p: (p / "w.csv").write_bytes(bytes(range(256)) * 4), "w.csv", "line 1"),
    ("complex pt", lambda p: torch.save({"a.weight": torch.ones(2, 3, dtype=torch.complex64)}, p / "w.pt"),
     "w.pt", "complex64"),
    ("bool pt", lambda p: torch.save({"a.weight": torch.ones(2, 3, dtype=torch.bool)}, p / "w.pt"), "w.pt", "bool"),
    ("complex npz", lambda p: np.savez(p / "w.npz", W0=np.ones((3, 2), complex)), "w.npz", "complex128"),
    ("bool npz", lambda p: np.savez(p / "w.npz", W0=np.ones((3, 2), bool)), "w.npz", "bool"),
]  # fmt: skip


@pytest.mark.parametrize("make,name,word", [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_bad_array_files_are_one_line_exit_2(tmp_path, make, name, word):
    make(tmp_path)
    r = _runner().invoke(app, ["program", str(tmp_path / name), "--bench", "sim_onchip", "--json"])
    _assert_one_line_exit_2(r.exit_code, r.stderr, name, word)


def test_tune_map_refuses_complex_and_bool_maps(tmp_path):
    """tune --map used to take any dtype (the imaginary part dropped with a warning)."""
    for arr, word in ((np.array([[100 + 5j, 200]]), "complex128"), (np.ones((2, 2), bool), "bool")):
        np.save(tmp_path / "m.npy", arr)
        r = _runner().invoke(app, ["tune", "--bench", "sim_onchip", "--map", str(tmp_path / "m.npy"), "--json"])
        _assert_one_line_exit_2(r.exit_code, r.stderr, "m.npy", word)


def _bf16_file(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(3)
    sd = {
        "a.weight": torch.randn(5, 4, generator=g).to(torch.bfloat16),
        "a.bias": torch.randn(5, generator=g).to(torch.bfloat16),
        "b.weight": torch.randn(3, 5, generator=g).to(torch.bfloat16),
    }
    save_file(sd, str(path))
    return sd


def test_bf16_safetensors_are_converted_exactly(tmp_path):
    """bf16 used to be a traceback; now each weight is the bf16 value, to the bit."""
    sd = _bf16_file(tmp_path / "w.safetensors")
    net = load_program_input(tmp_path / "w.safetensors")
    assert net.sizes == [4, 5, 3]
    np.testing.assert_array_equal(net.weights[0], sd["a.weight"].to(torch.float64).numpy())
    np.testing.assert_array_equal(net.biases[0], sd["a.bias"].to(torch.float64).numpy())
    np.testing.assert_array_equal(net.weights[1], sd["b.weight"].to(torch.float64).numpy())


def test_bool_safetensors_are_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"a.weight": torch.ones(2, 3, dtype=torch.bool)}, str(tmp_path / "w.safetensors"))
    r = _runner().invoke(app, ["program", str(tmp_path / "w.safetensors"), "--bench", "sim_onchip"])
    _assert_one_line_exit_2(r.exit_code, r.stderr, "w.safetensors", "BOOL")


def test_test_set_labels_outside_the_classes_are_refused(tmp_path):
    torch.save({"a.weight": torch.ones(4, 6), "a.bias": torch.zeros(4)}, tmp_path / "w.pt")
    y = np.array([0, 1, 3, 4, 2])  # label 4 on a 4-class network
    np.savez(tmp_path / "t.npz", x=np.zeros((5, 6)), y=y)
    r = _runner().invoke(
        app, ["program", str(tmp_path / "w.pt"), "--test-set", str(tmp_path / "t.npz"), "--bench", "sim_onchip"]
    )
    _assert_one_line_exit_2(r.exit_code, r.stderr, "t.npz", "y[3]", "0..3")
    with pytest.raises(Exception, match="0..1"):  # one sigmoid output: classes 0 and 1
        load_test_set(tmp_path / "t.npz", 6, 2)
    x, y2 = load_test_set(tmp_path / "t.npz", 6, 5)
    assert y2.tolist() == y.tolist()


# --------------------------------------------------------------------------- CSV maps
def test_csv_first_row_with_a_number_is_data_not_a_header(tmp_path):
    """`200,abc` used to be taken for a header by tune (one row dropped, exit 0)."""
    m = tmp_path / "m.csv"
    m.write_text("200,abc\n200,200\n")
    for cmd in (["tune", "--bench", "sim_onchip", "--map", str(m)], ["program", str(m), "--bench", "sim_onchip"]):
        r = _runner().invoke(app, [*cmd, "--json"])
        _assert_one_line_exit_2(r.exit_code, r.stderr, "m.csv", "line 1, column 2", "'abc'")


def test_csv_header_rule_is_the_same_for_tune_and_program(tmp_path):
    from memprog.cli.tune import load_map

    m = tmp_path / "m.csv"
    m.write_text("c0,c1\n200,300\nnan,250\n")
    expected = np.array([[200.0, 300.0], [np.nan, 250.0]])
    np.testing.assert_array_equal(load_map(m), expected)
    np.testing.assert_array_equal(load_conductance_map(m), expected)
    m.write_text("200,300\nc0,c1\n")  # a header only as the first row
    for load in (load_map, load_conductance_map):
        with pytest.raises(Exception, match="line 2, column 1"):
            load(m)


# --------------------------------------------------------------------------- bench files
def _shipped(name: str) -> str:
    return importlib.resources.files("memprog.benches").joinpath(name).read_text()


def _alias_bomb(indent: str) -> str:
    lines = [f'{indent}a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for k in range(1, 10):
        lines.append(f"{indent}a{k}: &a{k} [" + ",".join([f"*a{k - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


ONCHIP = "sim_onchip.yaml"
BOMB_PLACES = {
    "instrument options": "      link_bytes_per_s: 1.0e+7   # simulator only: 100 Mbit/s Ethernet\n",
    "programmer options": "    instrument: controller\n",
}


@pytest.mark.slow
@posix_only
@pytest.mark.parametrize("where", [*BOMB_PLACES, "wiring"])
def test_yaml_alias_bomb_is_refused_at_its_first_anchor(tmp_path, where):
    text = _shipped(ONCHIP)
    if where == "wiring":
        text += "wiring:\n  bomb:\n" + _alias_bomb("    ")
    else:
        anchor = BOMB_PLACES[where]
        assert anchor in text
        indent = anchor[: len(anchor) - len(anchor.lstrip())]
        text = text.replace(anchor, anchor + f"{indent}bomb:\n" + _alias_bomb(indent + "  "))
    bench = tmp_path / "bomb.yaml"
    bench.write_text(text)
    r = _capped_cli(["tune", "--bench", str(bench), "--rows", "0", "--cols", "0", "--target-us", "200"], tmp_path)
    line = _assert_one_line_exit_2(r.returncode, r.stderr, "bomb.yaml", "anchor &a0")
    first = next(i for i, ln in enumerate(text.splitlines(), 1) if "&a0" in ln)
    assert f"line {first}:" in line


def test_shipped_benches_use_no_anchors():
    names = [p.name for p in importlib.resources.files("memprog.benches").iterdir() if p.name.endswith(".yaml")]
    assert len(names) >= 7
    for n in names:
        assert isinstance(load_yaml_text(_shipped(n), n), dict)


@pytest.mark.parametrize(
    "old,new,field,allowed",
    [
        ("width_s_max: 1.0e-4", "width_s_max: 1.0e+300", "width_s_max", "<= 1.0"),
        ("read_v_max: 0.3", "conductance_max_us: 1.0e+300\n    read_v_max: 0.3", "conductance_max_us", "<= 1000000.0"),
        ("read_v_max: 0.3", "conductance_max_us: 20000\n    read_v_max: 0.3", "conductance_max_us", "<= 10000.0 µS"),
        ("read_v_max: 0.3", "conductance_min_us: .nan\n    read_v_max: 0.3", "conductance_min_us", "finite"),
    ],
)
def test_bench_limits_beyond_physics_are_refused(tmp_path, old, new, field, allowed):
    text = _shipped(ONCHIP)
    assert old in text
    bench = tmp_path / "lim.yaml"
    bench.write_text(text.replace(old, new))
    r = _runner().invoke(app, ["tune", "--bench", str(bench), "--rows", "0", "--cols", "0", "--target-us", "200"])
    _assert_one_line_exit_2(r.exit_code, r.stderr, "lim.yaml", field, allowed)


@pytest.mark.skipif(sys.platform != "linux" or shutil.which("gcc") is None, reason="needs gcc on Linux")
def test_wgfmu_library_is_not_loaded_for_a_bench_that_is_wrong_anyway(tmp_path, monkeypatch):
    """A shared library runs code when loaded: a bench refused by a check that needs no
    instrument (here a force range that cannot reach the SET limit) must not load it."""
    mark = tmp_path / "loaded"
    src = tmp_path / "lib.c"
    src.write_text(
        '#include <stdio.h>\n#include <stdlib.h>\n'
        "__attribute__((constructor)) static void init(void) {\n"
        '  const char *p = getenv("MEMPROG_TEST_LIB_MARK"); if (p) { FILE *f = fopen(p, "w"); if (f) fclose(f); }\n'
        "}\n"
    )
    lib = tmp_path / "libfakewgfmu.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    monkeypatch.setenv("MEMPROG_TEST_LIB_MARK", str(mark))
    text = _shipped("sim_b1500_wgfmu.yaml")
    text = text.replace('library: "@memprog"', f'library: "{lib}"')
    text = text.replace("force_range: 3V ", "force_range: 10V_negative ")
    bench = tmp_path / "b.yaml"
    bench.write_text(text)
    r = _runner().invoke(app, ["tune", "--bench", str(bench), "--rows", "0", "--cols", "0", "--target-us", "200"])
    _assert_one_line_exit_2(r.exit_code, r.stderr, "b.yaml", "force_range")
    assert not mark.exists()
