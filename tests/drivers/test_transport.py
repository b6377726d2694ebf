"""VisaTransport against a scripted VISA resource that behaves like real VISA (exact bytes).

Backend: a fake pyvisa resource (no simulator): ``read_raw`` stops at the read
termination like real VISA does, ``read_bytes`` reads an exact count, a timeout raises
``VisaIOError(VI_ERROR_TMO)``.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from pyvisa import constants
from pyvisa.errors import VisaIOError

from memprog.drivers.transport import LinkError, LinkTimeout, VisaTransport, make_block


class RealisticResource:
    """Bytes arrive as a stream; read_raw() stops at the termination byte."""

    def __init__(self) -> None:
        self.read_termination = "\n"
        self.write_termination = "\n"
        self.timeout = 1000
        self.chunk_size = 20480
        self.stream = bytearray()
        self.writes: list[str] = []
        self.replies: deque[bytes | None] = deque()  # one per write; None: no reply (yet)
        self.late: list[bytes] = []

    def write(self, message: str) -> None:
        self.writes.append(message)
        self.stream += b"".join(self.late)
        self.late.clear()
        reply = self.replies.popleft() if self.replies else None
        if reply is not None:
            self.stream += reply

    def read_raw(self) -> bytes:
        if not self.stream:
            raise VisaIOError(constants.VI_ERROR_TMO)
        end = self.stream.find(b"\n")
        n = len(self.stream) if end < 0 else end + 1
        out = bytes(self.stream[:n])
        del self.stream[:n]
        return out

    def read_bytes(self, count: int, break_on_termchar: bool = False) -> bytes:
        if len(self.stream) < count:
            raise VisaIOError(constants.VI_ERROR_TMO)
        out = bytes(self.stream[:count])
        del self.stream[:count]
        return out

    def write_binary_values(self, *args) -> None:  # pragma: no cover - unused here
        raise NotImplementedError

    def close(self) -> None:
        pass


def test_block_with_termination_bytes_is_read_by_its_length():
    res = RealisticResource()
    values = np.array([1.0, 2.0, np.frombuffer(b"\n\n\n\n", "<f4")[0], 4.0], dtype="<f4")
    block = make_block(values, "f")
    assert b"\n" in block[2:]  # the data hold the termination byte
    res.replies.append(block + b"\n")
    t = VisaTransport(res, "ctrl")
    got = t.query_binary("READ:ROW? 0", "f")
    np.testing.assert_array_equal(got, values.astype(np.float32))
    assert res.stream == bytearray()  # the trailing LF was consumed too


def test_late_reply_after_a_timeout_is_discarded_before_the_next_query():
    res = RealisticResource()
    t = VisaTransport(res, "ctrl")
    t.set_marker("*IDN?", "MEMPROG,ONCHIP-256X256,SN1,1.0")
    res.replies.append(None)  # READ:CELL? answers late
    with pytest.raises(LinkTimeout):
        t.query("READ:CELL? 0,0")
    res.late.append(b"1.2345678E-04\n")  # ... and arrives before the next reply
    res.replies.extend([b"MEMPROG,ONCHIP-256X256,SN1,1.0\n", b"0.2\n"])
    assert t.query("READ:VOLT?") == "0.2"
    assert res.writes == ["READ:CELL? 0,0", "*IDN?", "READ:VOLT?"]
    assert t.stats["discarded"] == 1 and t.stats["resyncs"] == 1


def test_lost_connection_is_reopened_with_the_same_settings():
    res = RealisticResource()
    res.read_termination = "\0"
    fresh = RealisticResource()
    t = VisaTransport(res, "k4200", reopen=lambda: fresh)
    t.lost = True
    fresh.replies.append(b"ACK\0")
    t.set_marker("*OPT?", "SMU1")
    fresh.replies.appendleft(b"SMU1\0")
    fresh.read_termination = "\n"
    fresh.stream.clear()
    t.write("BC")
    assert t.resource is fresh and fresh.read_termination == "\0"
    assert fresh.writes == ["*OPT?", "BC"]
    assert t.stats["reconnects"] == 1


def test_no_way_to_reopen_is_a_link_error():
    t = VisaTransport(RealisticResource(), "ctrl")
    t.lost = True
    with pytest.raises(LinkError, match="connection lost"):
        t.write("*CLS")
