"""Exact-traffic fake transport for driver protocol tests (PyMeasure ``expected_protocol`` style).

A test lists every (message, reply) pair the driver must produce, in order. Any message that
differs, any extra message and any pair left unused fails the test. Replies may be an exception (raised on the read: a
timeout), ``str``
(a text reply), ``bytes`` (a raw IEEE block for ``query_binary``) or ``None`` (a write with
no reply). No simulator is involved.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from memprog.drivers.transport import parse_block


class ExpectedProtocol:
    """A Transport that checks traffic against a script; use as a context manager."""

    def __init__(self, pairs: Iterable[tuple[str, str | bytes | None]], name: str = "fake") -> None:
        self.pairs = list(pairs)
        self.pos = 0
        self.name = name
        self.pending: str | bytes | None = None
        self.binary_writes: list[np.ndarray] = []
        self.closed = False

    def _next(self, message: str) -> str | bytes | None:
        assert self.pos < len(self.pairs), f"unexpected extra message {message!r}"
        expected, reply = self.pairs[self.pos]
        assert message == expected, f"message {self.pos}: expected {expected!r}, got {message!r}"
        self.pos += 1
        return reply

    def write(self, message: str) -> None:
        reply = self._next(message)
        if reply is not None:
            assert self.pending is None, "reply of a previous message was never read"
            self.pending = reply

    def read(self) -> str:
        assert self.pending is not None, "read() with nothing to read"
        reply, self.pending = self.pending, None
        if isinstance(reply, BaseException):  # a scripted link failure (e.g. LinkTimeout)
            raise reply
        return reply.decode("latin-1") if isinstance(reply, bytes) else reply

    def query(self, message: str) -> str:
        self.write(message)
        return self.read()

    def query_binary(self, message: str, datatype: str = "f", big_endian: bool = False) -> np.ndarray:
        self.write(message)
        assert isinstance(self.pending, bytes), f"expected a binary reply scripted for {message!r}"
        raw, self.pending = self.pending, None
        return parse_block(raw, datatype, big_endian, self.name)

    def write_binary(self, message: str, values: np.ndarray, datatype: str = "f", big_endian: bool = False) -> None:
        self._next(message)
        self.binary_writes.append(np.asarray(values))

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> ExpectedProtocol:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            assert self.pos == len(self.pairs), f"unused pairs: {self.pairs[self.pos:]}"
            assert self.pending is None, f"unread reply {self.pending!r}"
