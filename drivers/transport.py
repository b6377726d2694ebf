"""The message transport every VISA driver talks through.

Drivers never hold a pyvisa resource directly; they hold a :class:`Transport`. In the lab
and on the simulated bench it is :class:`VisaTransport` (the VISA library string decides
which); in protocol tests it is ``tests/protocol_fake.ExpectedProtocol``, which checks every
byte against a script. Keeping the seam this narrow is what lets a driver be tested to the
byte without an instrument and without the simulator.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from memprog.errors import InstrumentError, ProtocolError


class Transport(Protocol):
    """What a driver may do with its connection."""

    name: str

    def write(self, message: str) -> None: ...

    def read(self) -> str: ...

    def query(self, message: str) -> str: ...

    def query_binary(self, message: str, datatype: str = "f", big_endian: bool = False) -> np.ndarray: ...

    def write_binary(self, message: str, values: np.ndarray, datatype: str = "f", big_endian: bool = False) -> None: ...

    def close(self) -> None: ...


class VisaTransport:
    """A :class:`Transport` over an open pyvisa message-based resource."""

    def __init__(self, resource: Any, name: str = "") -> None:
        self.resource = resource
        self.name = name or str(getattr(resource, "resource_name", "instrument"))

    def write(self, message: str) -> None:
        self._io(self.resource.write, message)

    def read(self) -> str:
        return self._io(self.resource.read)

    def query(self, message: str) -> str:
        return self._io(self.resource.query, message)

    def query_binary(self, message: str, datatype: str = "f", big_endian: bool = False) -> np.ndarray:
        """Send ``message`` and parse an IEEE 488.2 definite-length block reply."""
        self.write(message)
        raw = self._io(self.resource.read_raw)
        return parse_block(raw, datatype, big_endian, self.name)

    def write_binary(self, message: str, values: np.ndarray, datatype: str = "f", big_endian: bool = False) -> None:
        # an ndarray (not a list) lets pyvisa pack the block with numpy instead of struct
        self._io(self.resource.write_binary_values, message, np.asarray(values).ravel(), datatype, big_endian)

    def close(self) -> None:
        self.resource.close()

    def _io(self, fn: Any, *args: Any) -> Any:
        import pyvisa

        try:
            return fn(*args)
        except pyvisa.errors.VisaIOError as exc:
            raise InstrumentError(self.name, int(exc.error_code), exc.description, str(args[0]) if args else "") from exc


def parse_block(raw: bytes, datatype: str, big_endian: bool, name: str = "") -> np.ndarray:
    """Parse an IEEE 488.2 definite-length block (``#<n><len><data>``) without a Python loop."""
    raw = bytes(raw)
    start = raw.find(b"#")
    if start < 0 or len(raw) < start + 2 or not raw[start + 1 : start + 2].isdigit() or raw[start + 1] == ord("0"):
        raise ProtocolError("an IEEE 488.2 definite-length block '#<n><length><data>'", raw[:40], name)
    ndig = raw[start + 1] - ord("0")
    len_field = raw[start + 2 : start + 2 + ndig]
    if len(len_field) != ndig or not len_field.isdigit():
        raise ProtocolError("a block length field of digits", raw[: start + 2 + ndig], name)
    length = int(len_field)
    data = raw[start + 2 + ndig : start + 2 + ndig + length]
    itemsize = np.dtype(datatype).itemsize
    if len(data) != length or length % itemsize:
        raise ProtocolError(f"{length} data bytes (a multiple of {itemsize})", f"{len(data)} bytes", name)
    dtype = np.dtype(datatype).newbyteorder(">" if big_endian else "<")
    return np.frombuffer(data, dtype=dtype).astype(np.dtype(datatype).newbyteorder("="))


def make_block(values: np.ndarray, datatype: str = "f", big_endian: bool = False) -> bytes:
    """Encode ``values`` as an IEEE 488.2 definite-length block (the inverse of parse_block)."""
    dtype = np.dtype(datatype).newbyteorder(">" if big_endian else "<")
    data = np.ascontiguousarray(np.asarray(values).ravel(), dtype=dtype).tobytes()
    n = str(len(data))
    return b"#" + str(len(n)).encode() + n.encode() + data


__all__ = ["Transport", "VisaTransport", "parse_block", "make_block"]
