"""Property-based fuzzing of the weight, map and test-set loaders (issue 21).

Random bytes, truncated and bit-flipped valid files, hostile ``.npy`` headers (huge, negative
or lying shapes; object, string, struct, complex, bool dtypes), hostile safetensors headers
and random CSV text must end in a typed memprog error (``memprog.core.errors``) or a valid
result — never another exception. Bounded memory follows from the loaders reading nothing
a header claims before checking it: a claim that slipped through would show here as a
MemoryError (the headers claim up to 10^15 elements).

Budget: ``MEMPROG_FUZZ_EXAMPLES`` examples per property (default 60: about 6 s on one core
for the whole file, no deadline; see tests/fuzz_support.py); a longer run, e.g.
``MEMPROG_FUZZ_EXAMPLES=2000 python -m pytest tests/core/test_fuzz_loaders.py``.
"""

from __future__ import annotations

import io
import json
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from memprog.core.errors import MemprogError
from memprog.jobs.weights import ConductanceMap, Network, load_program_input, load_test_set
from tests.fuzz_support import NUMBER_TEXT, TEXT, fuzz_settings

FUZZ = fuzz_settings()
DIR = Path(tempfile.mkdtemp(prefix="memprog-fuzz-"))


def _load(name: str, data: bytes) -> None:
    """Load ``data`` saved as ``name``: a valid result or a MemprogError, nothing else."""
    p = DIR / name
    p.write_bytes(data)
    try:
        out = load_program_input(p)
    except MemprogError:
        return
    assert isinstance(out, Network | ConductanceMap)
    if isinstance(out, ConductanceMap):
        assert out.map_us.ndim == 2 and out.map_us.dtype == float
    else:
        assert all(np.isfinite(w).all() for w in out.weights)


def _npy(arr: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.save(b, arr)
    return b.getvalue()


def _npz(**arrays: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.savez(b, **arrays)
    return b.getvalue()


def _pt() -> bytes:
    b = io.BytesIO()
    torch.save({"a.weight": torch.ones(3, 4), "a.bias": torch.zeros(3)}, b)
    return b.getvalue()


def _safetensors() -> bytes:
    from safetensors.torch import save

    return save({"a.weight": torch.ones(3, 4), "a.bias": torch.zeros(3, dtype=torch.bfloat16)})


VALID = {
    "m.npy": _npy(np.full((3, 4), 200.0)),
    "m.csv": b"c0,c1,c2\n200,300,nan\n100,150,250\n",
    "w.npz": _npz(W0=np.ones((4, 3)), b0=np.zeros(3), activation=np.array("relu")),
    "w.safetensors": _safetensors(),
    "w.pt": _pt(),
}


@FUZZ
@given(name=st.sampled_from(sorted(VALID)), data=st.binary(max_size=600))
def test_random_bytes(name, data):
    _load(name, data)


@FUZZ
@given(name=st.sampled_from(sorted(VALID)), cut=st.floats(0, 1), flips=st.lists(
    st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=4))
def test_truncated_and_mutated_valid_files(name, cut, flips):
    data = bytearray(VALID[name])
    for where, byte in flips:
        data[int(where * len(data))] = byte
    _load(name, bytes(data[: int(cut * len(data)) if cut < 1 else len(data)]))


DESCRS = ["<f8", "<f4", "<f2", "<i4", "|u1", "|b1", "<c16", "|O", "<U5", "|S3", "|V8", "[('a', '<f8')]"]
dims = st.one_of(st.integers(0, 6), st.integers(-3, 10**15))


@FUZZ
@given(
    descr=st.sampled_from(DESCRS), shape=st.lists(dims, max_size=3), fortran=st.booleans(),
    extra=st.integers(-16, 16), name=st.sampled_from(["m.npy", "w.npz"]),
)  # fmt: skip
def test_hostile_npy_headers(descr, shape, fortran, extra, name):
    header = "{{'descr': {}, 'fortran_order': {}, 'shape': {}, }}".format(
        descr if descr.startswith("[") else repr(descr), fortran, tuple(shape),
    )
    header = header.ljust(118) + "\n"
    body = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1")
    n = max(0, min(8 * int(np.prod([max(d, 0) for d in shape], dtype=object) or 0), 4096) + extra)
    blob = body + bytes(n)
    if name.endswith(".npz"):
        b = io.BytesIO()
        with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("W0.npy", blob)
        blob = b.getvalue()
    _load(name, blob)


ST_DTYPES = ["F64", "F32", "F16", "BF16", "I64", "U8", "BOOL", "C64", "F8_E4M3", "X"]


@FUZZ
@given(entries=st.lists(st.tuples(
    st.sampled_from(["a.weight", "a.bias", "b.weight", "__metadata__"]), st.sampled_from(ST_DTYPES),
    st.lists(dims, max_size=3), st.lists(st.integers(-5, 10**12), min_size=0, max_size=3)), max_size=3),
    data_len=st.integers(0, 256))  # fmt: skip
def test_hostile_safetensors_headers(entries, data_len):
    header = {name: {"dtype": dt, "shape": shape, "data_offsets": off} for name, dt, shape, off in entries}
    raw = json.dumps(header).encode()
    _load("w.safetensors", struct.pack("<Q", len(raw)) + raw + bytes(data_len))


@FUZZ
@given(text=st.text(alphabet="0123456789.,-+e nanifNA\n#\t\r\x00é", max_size=300))
def test_random_csv_text(text):
    _load("m.csv", text.encode("utf-8"))
    p = DIR / "t.csv"
    p.write_text(text, encoding="utf-8")
    try:
        x, y = load_test_set(p, None, 10)
    except MemprogError:
        return
    assert x.shape[0] == y.shape[0] and ((y >= 0) & (y < 10)).all()


CELL = st.one_of(NUMBER_TEXT, TEXT.filter(lambda t: "\n" not in t and "\r" not in t))


@FUZZ
@given(rows=st.lists(st.lists(CELL, min_size=1, max_size=4), min_size=1, max_size=5))
def test_csv_of_hostile_cells(rows):
    """Cells float() half-accepts (``1_0``, ``²``, ``1e999``) or not at all, in a CSV map."""
    _load("m.csv", "\n".join(",".join(r) for r in rows).encode("utf-8"))


@pytest.mark.parametrize("name", sorted(VALID))
def test_the_fuzzed_valid_files_do_load(name):
    """The seeds of the mutation fuzzer are real files (else the fuzzer only tests refusals)."""
    (DIR / name).write_bytes(VALID[name])
    assert isinstance(load_program_input(DIR / name), Network | ConductanceMap)
