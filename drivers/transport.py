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
import pyvisa

from memprog.core.errors import InstrumentError, ProtocolError

#: VISA status codes of a link that failed (as opposed to an instrument that said no)
_VI_TIMEOUT = -1073807339  # VI_ERROR_TMO
_VI_CONN_LOST = -1073807194  # VI_ERROR_CONN_LOST
_VI_IO = -1073807298  # VI_ERROR_IO


class LinkError(InstrumentError):
    """The link failed (timeout, lost connection, unreadable bytes), not the instrument.

    After a LinkError the transport is out of step with the instrument until
    :meth:`VisaTransport.recover` has run (the next call does it by itself).
    """


class LinkTimeout(LinkError):
    """No (complete) reply within the VISA timeout."""


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
    """A :class:`Transport` over an open pyvisa message-based resource.

    Real VISA links fail in ways the in-process simulator never did, so this class handles
    them once for every driver:

    * **binary blocks** are read by their length field, not up to the read termination: a
      block whose data contain the termination byte (a float32 block of 256 values does in
      most reads) is completed with ``read_bytes``;
    * **after a timeout or a lost connection** the link is resynchronised before the next
      message (:meth:`recover`): a late reply would otherwise answer the next query. The
      driver names a marker query with a unique reply (:meth:`set_marker`, ``*IDN?``); every
      reply that arrives before the marker's is discarded. A lost connection is reopened
      (``reopen``, given by ``open_bench``) with the same terminations and timeout;
    * counters (:attr:`stats`) say how often that happened, for run reports and the soak
      benchmark.

    Args:
        resource: an open pyvisa message-based resource.
        name: instrument name used in errors.
        reopen: returns a freshly opened resource to the same instrument (None: a lost
            connection cannot be reopened and stays a LinkError).
    """

    def __init__(self, resource: Any, name: str = "", reopen: Any = None) -> None:
        self.resource = resource
        self.name = name or str(getattr(resource, "resource_name", "instrument"))
        self._reopen = reopen
        self._marker: tuple[str, str] | None = None
        self.out_of_step = False
        self.lost = False
        self.stats = {"timeouts": 0, "link_lost": 0, "resyncs": 0, "reconnects": 0, "discarded": 0}

    # ------------------------------------------------------------------ messages
    def write(self, message: str) -> None:
        self._ensure_in_step()
        self._io(self.resource.write, message)

    def read(self) -> str:
        return self._io(self._read_text, "read")

    def query(self, message: str) -> str:
        self._ensure_in_step()
        self._io(self.resource.write, message)
        return self._io(self._read_text, message)

    def query_binary(self, message: str, datatype: str = "f", big_endian: bool = False) -> np.ndarray:
        """Send ``message`` and parse an IEEE 488.2 definite-length block reply.

        The block is read by its length field: ``read_raw`` stops at the first termination
        byte, which may lie inside the data, so the rest is read with ``read_bytes``.
        """
        self._ensure_in_step()
        self._io(self.resource.write, message)
        raw = self._io(self._read_block, message)
        return parse_block(raw, datatype, big_endian, self.name)

    def write_binary(self, message: str, values: np.ndarray, datatype: str = "f", big_endian: bool = False) -> None:
        # an ndarray (not a list) lets pyvisa pack the block with numpy instead of struct
        self._ensure_in_step()
        self._io(self.resource.write_binary_values, message, np.asarray(values).ravel(), datatype, big_endian)

    def read_stb(self) -> int:
        """The status byte by serial poll (GPIB) or its VISA equivalent."""
        return int(self._io(self.resource.read_stb, "serial poll"))

    def close(self) -> None:
        self.resource.close()

    # ------------------------------------------------------------------ reading
    def _read_text(self, command: str = "") -> str:
        raw = bytes(self.resource.read_raw())
        term = (self.resource.read_termination or "").encode()
        if term and raw.endswith(term):
            raw = raw[: -len(term)]
        return raw.decode("latin-1")

    def _read_block(self, command: str = "") -> bytes:
        res = self.resource
        raw = bytearray(res.read_raw())
        term = (res.read_termination or "").encode()
        start = raw.find(b"#")
        if start < 0 or len(raw) < start + 2 or not raw[start + 1 : start + 2].isdigit():
            return bytes(raw)  # not a block (an error line): the parser says what came back
        ndig = raw[start + 1] - ord("0")
        if ndig == 0:
            return bytes(raw)
        if len(raw) < start + 2 + ndig:
            raw += res.read_bytes(start + 2 + ndig - len(raw), break_on_termchar=False)
        field = bytes(raw[start + 2 : start + 2 + ndig])
        if not field.isdigit():
            return bytes(raw)
        total = start + 2 + ndig + int(field) + len(term)
        if len(raw) < total:
            raw += res.read_bytes(total - len(raw), break_on_termchar=False)
        return bytes(raw)

    # ------------------------------------------------------------------ recovery
    def set_marker(self, query: str, reply: str) -> None:
        """The query whose unique reply marks the end of stale replies (``*IDN?``)."""
        self._marker = (query, reply.strip())

    def _ensure_in_step(self) -> None:
        if self.out_of_step or self.lost:
            self.recover()

    def recover(self) -> None:
        """Bring the link back in step: reopen a lost connection, discard stale replies.

        Raises LinkError when the instrument cannot be reached or the marker's reply does
        not come back.
        """
        if self.lost:
            self._reconnect()
        self.out_of_step = False
        if self._marker is None:
            clear = getattr(self.resource, "clear", None)
            if callable(clear):
                try:
                    clear()
                except Exception:  # noqa: BLE001 - not every interface has a device clear
                    pass
            return
        query, expected = self._marker
        self.stats["resyncs"] += 1
        try:
            self.resource.write(query)
            for _ in range(16):
                got = self._read_text().strip()
                if got.endswith(expected):
                    return
                self.stats["discarded"] += 1
        except Exception as exc:  # noqa: BLE001 - any failure here leaves the link unusable
            self.out_of_step = True
            if _is_lost(exc):
                self.lost = True
            raise LinkError(self.name, _code(exc), f"could not resynchronise the link: {_describe(exc)}", query) from exc
        self.out_of_step = True
        raise LinkError(self.name, -1, f"no reply {expected!r} to {query!r} among 16 replies", query)

    def _reconnect(self) -> None:
        if self._reopen is None:
            raise LinkError(self.name, _VI_CONN_LOST, "connection lost and no way to reopen it", "")
        old = self.resource
        try:
            old.close()
        except Exception:  # noqa: BLE001 - the old session is dead anyway
            pass
        try:
            new = self._reopen()
        except Exception as exc:  # noqa: BLE001
            raise LinkError(self.name, _code(exc), f"could not reopen the connection: {_describe(exc)}", "") from exc
        for attr in ("read_termination", "write_termination", "timeout", "chunk_size"):
            try:
                setattr(new, attr, getattr(old, attr))
            except Exception:  # noqa: BLE001 - an attribute the old session no longer reports
                pass
        self.resource = new
        self.lost = False
        self.stats["reconnects"] += 1

    def _io(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except pyvisa.errors.VisaIOError as exc:
            code = int(exc.error_code)
            command = str(args[0]) if args else ""
            if code == _VI_TIMEOUT:
                self.out_of_step = True
                self.stats["timeouts"] += 1
                raise LinkTimeout(self.name, code, exc.description, command) from exc
            if code in (_VI_CONN_LOST, _VI_IO):
                self.lost = self.out_of_step = True
                self.stats["link_lost"] += 1
                raise LinkError(self.name, code, exc.description, command) from exc
            raise InstrumentError(self.name, code, exc.description, command) from exc
        except (OSError, EOFError) as exc:  # pyvisa-py: a socket closed by the far end
            self.lost = self.out_of_step = True
            self.stats["link_lost"] += 1
            raise LinkError(self.name, _VI_CONN_LOST, _describe(exc), str(args[0]) if args else "") from exc


def _is_lost(exc: BaseException) -> bool:
    code = getattr(exc, "error_code", None)
    return isinstance(exc, OSError | EOFError) or code in (_VI_CONN_LOST, _VI_IO)


def _code(exc: BaseException) -> int:
    code = getattr(exc, "error_code", None)
    return int(code) if code is not None else -1


def _describe(exc: BaseException) -> str:
    text = getattr(exc, "description", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


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


__all__ = ["LinkError", "LinkTimeout", "Transport", "VisaTransport", "parse_block", "make_block"]
