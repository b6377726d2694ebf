"""Bounded readers for the array files users hand to memprog: ``.npy``, ``.npz``, CSV,
safetensors, and the zip container of a torch ``.pt``.

Why a module of its own: a weight file, a conductance map or a test set comes from
elsewhere, and numpy, safetensors and torch all trust a file's header — a 7.8 MB ``.npz``
whose member says "10⁹ float64" makes ``numpy.load`` allocate 8 GB before anything can
say no; a ``.npy`` header claiming 10¹¹ elements is a MemoryError. Here every header is
read *first* (``numpy.lib.format.read_magic`` + ``read_array_header_*``; for ``.npz``
members through :mod:`zipfile`, which decompresses only the few hundred header bytes), and
its shape, dtype and byte count are checked against limits derived from what the file
may be, before a single data byte is allocated. Everything wrong is a
:class:`~memprog.core.errors.ConfigError` naming the file, the member and the allowed range.

The limits (documented in docs/program.md):

- a conductance map cannot be larger than the largest chip a bench may describe,
  ``MAX_CHIP_SIDE`` x ``MAX_CHIP_SIDE`` (``chip.rows``/``chip.cols`` in a bench file);
- a network's tensor is at most 2-D and holds at most ``MAX_CHIP_SIDE²`` numbers (a layer
  may be cut into tiles, but each weight needs two cells of one chip), a whole weight file
  at most ``MAX_WEIGHT_NUMBERS``;
- a test set holds at most ``MAX_TEST_NUMBERS`` numbers;
- only real numbers are data: float16/32/64 and (unsigned) integers. Objects (pickles),
  strings, structs, complex numbers (whose imaginary part would have to be dropped) and
  bools (a mask is not a weight) are refused with the file, the member and the dtypes
  allowed.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib import format as npformat

from memprog.core.bench_config import MAX_CHIP_SIDE
from memprog.core.errors import ConfigError

MAX_MAP_CELLS = MAX_CHIP_SIDE * MAX_CHIP_SIDE
# [choice] a weight file may hold twice the largest chip's cells in numbers: every layer
# fits that chip (differential pairs need two cells per weight), plus biases and buffers
MAX_WEIGHT_NUMBERS = 2 * MAX_MAP_CELLS
# [choice] 2**25 numbers (256 MiB as float64): forty times MNIST's 10,000 x 784 test set
MAX_TEST_NUMBERS = 2**25
# [choice] a CSV line of MAX_CHIP_SIDE cells of up to 40 characters each
MAX_CSV_LINE_CHARS = 40 * (MAX_CHIP_SIDE + 1)
# [choice] npz/zip members: a network of 512 layers with weight, bias and metadata
MAX_ZIP_MEMBERS = 2048
MAX_NPY_HEADER_BYTES = 10_000  # numpy's own default cap on a header
MAX_TEXT_ITEMSIZE = 4 * 256  # a metadata string (activation name) of up to 256 characters
NUMERIC_KINDS = "fiu"
NUMERIC_WORDS = (
    "float16/32/64 or (unsigned) integer numbers (no pickled objects, strings, structs, "
    "complex or bool)"
)


def _where(path: Path, member: str | None) -> str:
    return f"{path.name}: {member}" if member else path.name


def check_header(
    path: Path,
    member: str | None,
    shape: tuple[Any, ...],
    dtype: np.dtype,
    *,
    max_numbers: int,
    max_side: int | None = None,
    max_ndim: int = 2,
    kinds: str = NUMERIC_KINDS,
) -> int:
    """Check an array's header (shape, dtype) against the limits; return its data bytes.

    Raises ConfigError naming the file and member, before anything is allocated.
    """
    where = _where(path, member)
    if dtype.kind not in kinds or dtype.hasobject or dtype.subdtype is not None:
        allowed = NUMERIC_WORDS if kinds == NUMERIC_KINDS else f"dtype kinds {list(kinds)}"
        raise ConfigError(f"{where} dtype", str(dtype), allowed)
    if dtype.kind == "U" and dtype.itemsize > MAX_TEXT_ITEMSIZE:
        raise ConfigError(f"{where} dtype", str(dtype), "a string of at most 256 characters")
    dims = [d for d in shape]
    if len(dims) > max_ndim or not all(isinstance(d, int) and d >= 0 for d in dims):
        raise ConfigError(f"{where} shape", tuple(shape), f"at most {max_ndim} non-negative dimensions")
    if max_side is not None and any(d > max_side for d in dims):
        raise ConfigError(
            f"{where} shape", tuple(dims), f"each side <= {max_side} (the largest chip a bench may describe)"
        )
    count = math.prod(dims)
    if count > max_numbers:
        raise ConfigError(f"{where} shape", tuple(dims), f"at most {max_numbers} numbers", f"it claims {count}")
    return count * dtype.itemsize


def read_npy_stream(
    fp: IO[bytes], size_bytes: int, path: Path, member: str | None = None, **limits: Any
) -> np.ndarray:
    """Read one ``.npy`` image of ``size_bytes`` from ``fp`` (positioned at its start).

    The header is checked (:func:`check_header`) and the data size must be exactly what the
    header describes (a lying header is refused) before the data buffer is allocated.
    """
    where = _where(path, member)
    try:
        version = npformat.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(fp, max_header_size=MAX_NPY_HEADER_BYTES)
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(fp, max_header_size=MAX_NPY_HEADER_BYTES)
        else:
            raise ConfigError(f"{where} format", f"npy {version[0]}.{version[1]}", "npy format 1.0 or 2.0")
    except ConfigError:
        raise
    except Exception as exc:  # junk, truncated or malformed header: numpy raises several kinds
        raise ConfigError(
            where, "not a .npy array", "a numeric .npy array written by numpy.save (no pickled objects)",
            " ".join(str(exc).split())[:200],
        ) from None
    nbytes = check_header(path, member, tuple(shape), dtype, **limits)
    left = size_bytes - fp.tell()
    if left != nbytes:
        raise ConfigError(
            f"{where} size", left, f"{nbytes} data bytes (what its header describes: {tuple(shape)} {dtype})",
            "the header does not match the data",
        )
    buf = bytearray(nbytes)
    got = fp.readinto(buf) if nbytes else 0  # type: ignore[attr-defined]
    if got != nbytes:
        raise ConfigError(f"{where} size", got, f"{nbytes} data bytes", "the file ends early")
    arr = np.frombuffer(buf, dtype=dtype)
    return arr.reshape(shape, order="F" if fortran else "C")


def load_npy(path: Path, **limits: Any) -> np.ndarray:
    """A bounded ``np.load(path, allow_pickle=False)`` (see :func:`read_npy_stream`)."""
    try:
        with path.open("rb") as f:
            return read_npy_stream(f, path.stat().st_size, path, None, **limits)
    except OSError as exc:
        raise ConfigError("file", str(path), "a readable file", str(exc)) from exc


def _open_zip(path: Path, what: str) -> zipfile.ZipFile:
    if not zipfile.is_zipfile(path):
        raise ConfigError("weights", str(path), what, "not a zip archive")
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise ConfigError("weights", str(path), what, f"a broken zip archive: {exc}") from exc
    if len(z.infolist()) > MAX_ZIP_MEMBERS:
        z.close()
        raise ConfigError(f"{path.name} members", len(z.infolist()), f"at most {MAX_ZIP_MEMBERS}")
    return z


def load_npz(
    path: Path,
    limits_for: Callable[[str], dict[str, Any] | None],
    *,
    max_total_numbers: int,
    what: str = "a .npz archive written by numpy.savez",
) -> dict[str, np.ndarray]:
    """The members of a ``.npz`` (without pickles), each header checked before its data.

    Args:
        limits_for: per member name (without ``.npy``), the :func:`check_header` limits, or
            None to skip the member (never decompressed).
        max_total_numbers: the members' numbers together.
    """
    out: dict[str, np.ndarray] = {}
    total = 0
    with _open_zip(path, what) as z:
        for info in z.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            limits = limits_for(name)
            if limits is None:
                continue
            try:
                with z.open(info) as f:
                    arr = read_npy_stream(f, info.file_size, path, name, **limits)
            except ConfigError:
                raise
            except Exception as exc:  # bad CRC, unsupported compression, truncated member
                raise ConfigError(
                    f"{path.name}: {name}", "unreadable member", what, " ".join(str(exc).split())[:200]
                ) from None
            total += arr.size
            if total > max_total_numbers:
                raise ConfigError(f"{path.name} numbers", total, f"at most {max_total_numbers} in all")
            out[name] = arr
    return out


def check_zip_budget(path: Path, max_bytes: int, what: str) -> None:
    """Refuse a zip (a torch ``.pt``) whose members would decompress to more than ``max_bytes``.

    The central directory states every member's size; torch's reader allocates what it states.
    """
    with _open_zip(path, what) as z:
        total = sum(i.file_size for i in z.infolist())
    if total > max_bytes:
        raise ConfigError(
            f"{path.name} size", f"{total} bytes uncompressed", f"at most {max_bytes} bytes",
            "more than the largest network memprog can place",
        )


# --------------------------------------------------------------------------- safetensors
SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "bf16",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
}  # fmt: skip
MAX_SAFETENSORS_HEADER = 16 * 2**20  # [choice] 16 MiB of JSON: ~100,000 tensor entries


def load_safetensors(
    path: Path, *, max_numbers: int, max_total_numbers: int, max_side: int | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Tensors (as numpy) and metadata of a safetensors file, every entry checked first.

    bfloat16 is converted exactly to float32 (its 16 bits are float32's upper half), so a
    bf16 checkpoint loads without torch; bool and other dtypes are refused.
    """
    bad = "a safetensors file"
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n <= 1 or n > min(MAX_SAFETENSORS_HEADER, size - 8):
                raise ConfigError("weights", str(path), bad, "no valid header")
            header = json.loads(f.read(n))
            if not isinstance(header, dict):
                raise ConfigError("weights", str(path), bad, "its header is not a JSON object")
            meta = header.pop("__metadata__", None) or {}
            if not isinstance(meta, dict):
                raise ConfigError(f"{path.name}: __metadata__", type(meta).__name__, "a dict of strings")
            base = 8 + n
            specs = []
            total = 0
            for name, spec in header.items():
                where = f"{path.name}: {name}"
                if not isinstance(spec, dict):
                    raise ConfigError(where, type(spec).__name__, "a tensor entry {dtype, shape, data_offsets}")
                dt = spec.get("dtype")
                if dt not in SAFETENSORS_DTYPES:
                    raise ConfigError(f"{where} dtype", dt, f"one of {sorted(SAFETENSORS_DTYPES)}")
                np_dt = np.dtype("<u2" if dt == "BF16" else SAFETENSORS_DTYPES[dt])
                shape = spec.get("shape")
                if not isinstance(shape, list):
                    raise ConfigError(f"{where} shape", shape, "a list of sizes")
                nbytes = check_header(path, name, tuple(shape), np_dt, max_numbers=max_numbers, max_side=max_side)
                total += math.prod(shape)
                if total > max_total_numbers:
                    raise ConfigError(f"{path.name} numbers", total, f"at most {max_total_numbers} in all")
                off = spec.get("data_offsets")
                if (
                    not isinstance(off, list) or len(off) != 2
                    or not all(isinstance(o, int) and not isinstance(o, bool) for o in off)
                    or not 0 <= off[0] <= off[1] or off[1] - off[0] != nbytes or base + off[1] > size
                ):  # fmt: skip
                    raise ConfigError(
                        f"{where} data_offsets", off, f"{nbytes} bytes inside the file's {size - base} data bytes"
                    )
                specs.append((name, dt, np_dt, tuple(shape), off))
            tensors: dict[str, np.ndarray] = {}
            for name, dt, np_dt, shape, (a, b) in specs:
                f.seek(base + a)
                buf = bytearray(b - a)
                if f.readinto(buf) != b - a:
                    raise ConfigError(f"{path.name}: {name}", "truncated", f"{b - a} data bytes")
                arr = np.frombuffer(buf, dtype=np_dt)
                if dt == "BF16":
                    arr = (arr.astype("<u4") << 16).view("<f4")
                tensors[name] = arr.reshape(shape)
    except ConfigError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ConfigError("weights", str(path), bad, f"cannot read its header: {exc}") from None
    except OSError as exc:
        raise ConfigError("weights", str(path), "a readable file", str(exc)) from exc
    return tensors, meta


# --------------------------------------------------------------------------- CSV
def _is_number(text: str) -> bool:
    """Whether numpy reads ``text`` as a float (the same test for headers and cells)."""
    try:
        np.array(text, dtype=float)
    except ValueError:
        return False
    return True


def read_csv_numbers(
    path: Path,
    parameter: str,
    *,
    max_rows: int,
    max_cols: int,
    max_numbers: int,
    allowed: str = "comma-separated numbers (NaN to skip a cell), at most one header row",
) -> np.ndarray:
    """A 2-D float array from a CSV file; one reader for every CSV memprog accepts.

    The rule for a header: the first non-blank line is a header only if *none* of its cells
    is a number (``c0,c1``); a first line with any numeric cell is data, so ``200,abc`` is a
    bad cell (refused with its line and column), never a header that silently drops a row.
    Blank lines and lines starting with ``#`` are skipped (as ``numpy.loadtxt`` does). Every
    other cell must be a number (``nan`` allowed); every row must have the first row's width.
    Lines, columns and the number of rows are bounded before anything grows.
    """

    def refuse(line_no: int, col: int | None, value: Any, detail: str = "") -> ConfigError:
        at = f"{path} line {line_no}" + ("" if col is None else f", column {col}")
        return ConfigError(parameter, f"{at}: {value}", allowed, detail)

    rows: list[np.ndarray] = []
    width = None
    first = True
    try:
        with path.open("rb") as f:
            for line_no, raw in enumerate(iter(lambda: f.readline(MAX_CSV_LINE_CHARS + 1), b""), 1):
                if len(raw) > MAX_CSV_LINE_CHARS:
                    raise refuse(line_no, None, "a line too long", f"at most {MAX_CSV_LINE_CHARS} characters")
                if b"\0" in raw:
                    raise refuse(line_no, None, "binary data", "a text file")
                try:
                    text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8").strip()
                except UnicodeDecodeError:
                    raise refuse(line_no, None, "binary data", "UTF-8 text") from None
                if not text or text.startswith("#"):
                    continue
                cells = text.split(",")
                if len(cells) > max_cols:
                    raise refuse(line_no, None, f"{len(cells)} columns", f"at most {max_cols} columns")
                if first:
                    first = False
                    if not any(_is_number(c) for c in cells):
                        continue  # a header: no numeric cell at all
                if width is None:
                    width = len(cells)
                elif len(cells) != width:
                    raise refuse(line_no, None, f"{len(cells)} columns", f"{width} columns like the first row")
                if len(rows) >= max_rows or (len(rows) + 1) * width > max_numbers:
                    raise refuse(line_no, None, "too many rows", f"at most {min(max_rows, max_numbers // width)} rows")
                try:
                    rows.append(np.array(cells, dtype=float))
                except ValueError:
                    col = next((k for k, c in enumerate(cells, 1) if not _is_number(c)), 1)
                    raise refuse(line_no, col, repr(cells[col - 1].strip()[:40])) from None
    except OSError as exc:
        raise ConfigError(parameter, str(path), "a readable file", str(exc)) from exc
    if not rows:
        raise ConfigError(parameter, str(path), allowed, "no data rows")
    return np.vstack(rows)


__all__ = [
    "MAX_MAP_CELLS",
    "MAX_WEIGHT_NUMBERS",
    "MAX_TEST_NUMBERS",
    "NUMERIC_WORDS",
    "check_header",
    "check_zip_budget",
    "load_npy",
    "load_npz",
    "load_safetensors",
    "read_csv_numbers",
    "read_npy_stream",
]
