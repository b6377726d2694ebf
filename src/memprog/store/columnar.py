"""Arrow IPC streams for the store's bulk columns (cells, traces, samples).

Why Arrow: a batch of 65,536 finished cells becomes one compressed byte string in a few
milliseconds and comes back as a pandas frame without parsing; Parquet (for exports) is
one call away. LZ4 keeps it fast; the bytes are portable between SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

# no compression threads: a batch of a few hundred cells then costs microseconds, not the
# milliseconds of waking a thread pool on a busy 2-core machine
_OPTIONS = ipc.IpcWriteOptions(compression="lz4", use_threads=False)


def _array(v: Any) -> pa.Array:
    a = np.asarray(v)
    if a.dtype == object:
        try:
            return pa.array(a, type=pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.array(a.tolist())
    return pa.array(a)


def table_from_columns(columns: Mapping[str, Any]) -> pa.Table:
    """An Arrow table from equal-length columns (numpy arrays or lists)."""
    return pa.table({k: _array(v) for k, v in columns.items()})


def to_ipc(table: pa.Table) -> bytes:
    """One LZ4-compressed Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema, options=_OPTIONS) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc(blobs: Iterable[bytes]) -> pa.Table | None:
    """Concatenate IPC streams (missing columns become nulls); None when there are none."""
    tables = [ipc.open_stream(pa.py_buffer(b)).read_all() for b in blobs]
    if not tables:
        return None
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive")


__all__ = ["from_ipc", "table_from_columns", "to_ipc"]
