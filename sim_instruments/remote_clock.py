"""The served chip's simulated clock, read across a loopback socket (``memprog sim serve``).

Why: in-process, ``Bench.bench_time_s`` reads the simulated chip's clock directly (every
pulse, read, link transfer and ``SYST:WAIT?`` advances it), so a settle of 1 s counts 1 s.
Over ``memprog sim serve`` the client holds no chip, and wall time is not bench time: the
served instruments do not sleep through a wait, so a 20 s tune took 0.17 s of wall time.
The server therefore serves its chip's clock too, on its own socket (never inside an
instrument's protocol, which stays exactly what the lab instrument speaks); the served
bench file names it in each instrument's ``options.sim_clock`` (``sim_`` keys never reach a
driver), and the bench reports the clock of the chip that did the work on both paths.

Wire format: the client sends one line (any content), the server answers the clock in
seconds as one ``repr(float)`` line.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from memprog.core.errors import ConfigError, InstrumentError

#: bench-file option (on each served instrument) naming the clock's address
CLOCK_OPTION = "sim_clock"


class ClockService:
    """Server side: answers each line with the served chip's clock (under the bench lock)."""

    def __init__(self, bench: Any, lock: threading.Lock) -> None:
        self.bench = bench
        self.lock = lock

    def handle_line(self, line: bytes) -> bytes:
        with self.lock:
            clock = float(self.bench.chip.clock_s)
        return repr(clock).encode() + b"\n"


class RemoteClock:
    """Client side: the served chip's clock (s) from ``tcp://127.0.0.1:PORT``.

    Only loopback addresses are accepted: the clock belongs to a simulator on this machine.
    """

    def __init__(self, address: str, timeout_s: float = 10.0) -> None:
        host, _, port = address.removeprefix("tcp://").rpartition(":")
        loopback = host in ("127.0.0.1", "localhost")
        if not address.startswith("tcp://") or not loopback or not port.isdigit():
            raise ConfigError(
                CLOCK_OPTION, address, "tcp://127.0.0.1:PORT (memprog sim serve writes it)"
            )
        try:
            self._sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        except OSError as exc:
            raise ConfigError(
                CLOCK_OPTION, address, "the clock socket of a running memprog sim serve", str(exc)
            ) from exc
        self._file = self._sock.makefile("rwb")
        self._lock = threading.Lock()
        self.address = address

    def clock_s(self) -> float:
        try:
            with self._lock:
                self._file.write(b"?\n")
                self._file.flush()
                return float(self._file.readline(64))
        except (OSError, ValueError) as exc:  # the server stopped: say so, in one line
            raise InstrumentError(
                CLOCK_OPTION, -1, f"the served chip's clock at {self.address} stopped answering ({exc})"
            ) from exc

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            self._sock.close()


__all__ = ["CLOCK_OPTION", "ClockService", "RemoteClock"]
