"""``memprog sim serve``: the simulated instruments of a bench on loopback TCP sockets.

The in-process ``@memprog`` backend hands whole replies to pyvisa and ignores read
terminations, timeouts and partial reads, so it forgives driver bugs a real VISA link
exposes (a binary block cut at its first LF byte, a late reply answering the next query).
This server removes that excuse: each simulated instrument of a bench listens on
127.0.0.1 and speaks exactly what the real instrument's LAN interface speaks, on one
simulated chip, and a lab bench file (``visa_library: "@py"``) pointed at the printed
``TCPIP0::127.0.0.1::PORT::SOCKET`` resources drives it through pyvisa-py's real TCP
transport:

* 4200A-SCS: the KXCI socket, NUL-terminated both ways, ``ACK`` for commands;
* 707B: a raw TSP socket, LF-terminated;
* on-chip controller: protocol v1 on a raw socket, LF-terminated, binary blocks whole;
* B1500A: FLEX text, CR LF (as a LAN/GPIB gateway passes it on);
* B1530A WGFMU: Keysight's instrument library has no LAN protocol of its own, so its
  *calls* are served (``tcp://127.0.0.1:PORT``, one JSON line per call, see
  :mod:`.wgfmu_remote`) on the same chip.

Messages are framed like the firmware frames them: by the write termination, except that
an IEEE 488.2 definite-length block is read by its length field. Every socket has a line
cap (:func:`line_cap_bytes`: the largest legal message of the served chip, a 256 x 256
``PULS:ROWS`` or ``VMM:INP`` block of 1 MiB, plus 64 KiB; :data:`.wgfmu_remote.LINE_CAP_BYTES`
for WGFMU calls): a message that grows past it is refused before more of it is buffered
(the WGFMU socket answers an error line), the connection is closed and every other client
is still served. A message the simulator cannot handle costs its connection, never the
server, and prints one line, no traceback. Every instrument shares
one lock (one chip), so concurrent clients see a consistent bench. Faults
(:mod:`.faults`) are applied on the real sockets: a lost reply is never sent, a late one
is sent after ``late_s``, a dropped link sends part of the reply and closes the socket, a
reboot closes it without a reply.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memprog.core.bench_config import load_bench_config
from memprog.core.errors import ConfigError
from memprog.sim_instruments.base import SimulatedInstrument, fault_salt
from memprog.sim_instruments.faults import FaultInjector, FaultPlan
from memprog.sim_instruments.remote_clock import ClockService
from memprog.sim_instruments.sim_bench import SimBench
from memprog.sim_instruments.visa_backend import message_end
from memprog.sim_instruments.wgfmu_remote import LINE_CAP_BYTES, WgfmuLibraryService

HOST = "127.0.0.1"
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux
SERVED_KINDS = ("onchip", "k4200", "k707b", "b1500")
LINE_CAP_MIN_BYTES = 1 << 20  # 1 MiB: a 256 x 256 PULS:ROWS block (65,536 x 16 B)
_LINE_CAP_SLACK_BYTES = 64 << 10  # headers, parameters and terminations around a block


def line_cap_bytes(inst: Any) -> int:
    """Longest message a served instrument reads (bytes): its chip's largest legal message.

    The biggest messages a driver sends are binary blocks sized by the chip: ``PULS:ROWS``
    (one 16-byte record per cell), ``VMM:INP`` (up to 1,024 vectors of one float32 per
    row), ``PROG:MAP`` (one byte per cell). The cap covers the largest of them (at least
    :data:`LINE_CAP_MIN_BYTES`) plus :data:`_LINE_CAP_SLACK_BYTES`; without one, a client
    that never sends the terminator makes the server buffer without bound.
    """
    chip = getattr(inst, "chip", None)
    rows, cols = int(getattr(chip, "rows", 0)), int(getattr(chip, "cols", 0))
    return max(LINE_CAP_MIN_BYTES, 16 * rows * cols, 4 * 1024 * rows) + _LINE_CAP_SLACK_BYTES


def _note(text: str) -> None:
    """One line on the server's stderr (never a traceback: a client's bad message is no crash)."""
    try:
        print(f"memprog: {text}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


@dataclass
class Served:  # noqa: D101 - documented below
    """One served instrument: its name, kind, port and resource string."""

    name: str
    kind: str
    port: int
    instrument: Any
    listener: socket.socket
    connections: list[socket.socket] = field(default_factory=list)

    @property
    def resource(self) -> str:
        if self.kind == "wgfmu":
            return f"tcp://{HOST}:{self.port}"
        return f"TCPIP0::{HOST}::{self.port}::SOCKET"


class SimServer:
    """Serve every VISA instrument of a bench file on loopback sockets.

    Args:
        bench_path: bench file (path or shipped name); its chip and instruments are built
            once and shared by every connection.
        port: first port (the others follow it); 0 lets the OS pick a free one each.
        faults: a fault plan for every served instrument (None: the bench file's own
            ``options.sim_faults``, if any).
    """

    def __init__(self, bench_path: str | Path, port: int = 0, faults: FaultPlan | None = None) -> None:
        if not 0 <= port <= 65535:
            raise ConfigError("port", port, "0 (free ports) or 1-65535")
        self.config, self.path = load_bench_config(bench_path)
        n_served = sum(
            1 for c in self.config.instruments.values() if c.simulated and c.kind in (*SERVED_KINDS, "wgfmu")
        )
        if port and port + n_served - 1 > 65535:
            # consecutive ports from --port: refused before the bench is built or anything listens
            raise ConfigError(
                "port",
                port,
                f"0 (free ports) or 1-{65536 - n_served}: {n_served} instruments are served "
                "on consecutive ports",
            )
        self.bench = SimBench(self.config)
        self.lock = threading.Lock()
        self.first_port = port
        self.served: list[Served] = []
        #: the chip's clock on its own socket (see :mod:`.remote_clock`), set by start()
        self.clock: Served | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        for name, sim in self.bench.instruments.items():
            if faults is not None:
                sim.faults = FaultInjector(faults, salt=fault_salt(name))
        if not self.bench.instruments:
            raise ConfigError("bench file", str(self.path), "at least one simulated VISA instrument")

    def start(self) -> dict[str, str]:
        """Open every listening socket and start serving; instrument name -> resource string."""
        next_port = self.first_port
        targets: list[tuple[str, str, Any]] = [
            (name, sim.kind, sim) for name, sim in self.bench.instruments.items() if sim.kind in SERVED_KINDS
        ]
        for name, inst_cfg in self.config.instruments.items():
            if inst_cfg.kind == "wgfmu" and inst_cfg.simulated:
                targets.append((name, "wgfmu", WgfmuLibraryService(self.bench, self.lock, inst_cfg.resource)))
        for name, kind, sim in targets:
            lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                lst.bind((HOST, next_port))
            except OSError as exc:
                lst.close()
                self.stop()
                raise ConfigError("port", next_port, "a free TCP port on 127.0.0.1", str(exc)) from exc
            lst.listen(4)
            port = lst.getsockname()[1]
            if self.first_port:
                next_port = port + 1
            if hasattr(sim, "gpib"):
                sim.gpib = False  # a socket is the LAN interface (KXCI answers ACK)
            served = Served(name, kind, port, sim, lst)
            self.served.append(served)
            t = threading.Thread(target=self._accept, args=(served,), daemon=True, name=f"serve-{name}")
            t.start()
            self._threads.append(t)
        self._serve_clock()
        return {s.name: s.resource for s in self.served}

    @property
    def clock_address(self) -> str | None:
        """``tcp://127.0.0.1:PORT`` of the served chip's clock (None before start())."""
        return None if self.clock is None else self.clock.resource

    def _serve_clock(self) -> None:
        """Serve the chip's simulated clock, so a client reports the bench time it spent."""
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            lst.bind((HOST, 0))
        except OSError as exc:
            lst.close()
            self.stop()
            raise ConfigError("port", 0, "a free TCP port on 127.0.0.1", str(exc)) from exc
        lst.listen(4)
        # kind "wgfmu": served like the library, one line per call, tcp:// address
        self.clock = Served("clock", "wgfmu", lst.getsockname()[1], ClockService(self.bench, self.lock), lst)
        t = threading.Thread(target=self._accept, args=(self.clock,), daemon=True, name="serve-clock")
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        """Close every socket (listeners and clients), then let go of the simulated chip (its
        state stays in its file; another process may open it now)."""
        self._stop.set()
        for s in [*self.served, *([self.clock] if self.clock is not None else [])]:
            for c in list(s.connections):
                _close(c)
            _close(s.listener)
        self.bench.close()

    def fault_summary(self) -> dict[str, dict[str, int]]:
        """Faults injected so far, per served instrument."""
        return {s.name: s.instrument.faults.summary() for s in self.served if s.kind != "wgfmu"}

    # ------------------------------------------------------------------ serving
    def _accept(self, served: Served) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = served.listener.accept()
            except OSError:
                return
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # the client has already gone: the listener keeps accepting
                _close(conn)
                continue
            served.connections.append(conn)
            t = threading.Thread(target=self._serve, args=(served, conn), daemon=True)
            t.start()

    def _serve_library(self, served: Served, conn: socket.socket) -> None:
        f = conn.makefile("rwb")
        try:
            while not self._stop.is_set():
                line = f.readline(LINE_CAP_BYTES + 1)  # never buffers more than the cap
                if not line:
                    return
                if len(line) > LINE_CAP_BYTES:
                    refuse = getattr(served.instrument, "line_too_long", None)
                    if refuse is not None:
                        f.write(refuse(LINE_CAP_BYTES))
                        f.flush()
                    _note(f"{served.name}: a call line over {LINE_CAP_BYTES} bytes; connection closed")
                    return
                f.write(served.instrument.handle_line(line))
                f.flush()
        except (OSError, ValueError):
            return
        except Exception as exc:  # noqa: BLE001 - one client's call never stops the server
            _note(f"{served.name}: call failed ({type(exc).__name__}: {exc}); connection closed")
            return
        finally:
            _close(conn)
            if conn in served.connections:
                served.connections.remove(conn)

    def _serve(self, served: Served, conn: socket.socket) -> None:
        if served.kind == "wgfmu":
            self._serve_library(served, conn)
            return
        inst = served.instrument
        term_in = inst.write_termination.encode()
        cap = line_cap_bytes(inst)
        buf = bytearray()
        try:
            while not self._stop.is_set():
                data = conn.recv(1 << 16)
                if not data:
                    return
                if _QUICKACK is not None:  # ACK at once: no 40 ms delayed-ACK/Nagle stall
                    conn.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)  # when a client writes twice
                buf.extend(data)
                while True:
                    end, block_tail = message_end(buf, term_in)
                    if end < 0:
                        break
                    raw = bytes(buf[:end])
                    del buf[: end + len(term_in)]
                    if not self._message(inst, conn, raw, block_tail):
                        return
                if len(buf) > cap:  # no terminator within the cap: refuse, buffer no more
                    _note(f"{served.name}: a message over {cap} bytes; connection closed")
                    return
        except OSError:
            return
        except Exception as exc:  # noqa: BLE001 - one client's message never stops the server
            _note(f"{served.name}: message failed ({type(exc).__name__}: {exc}); connection closed")
            return
        finally:
            _close(conn)
            if conn in served.connections:
                served.connections.remove(conn)

    def _message(self, inst: SimulatedInstrument, conn: socket.socket, raw: bytes, block_tail: bool) -> bool:
        """Handle one message; False when the connection must close (fault injection)."""
        text = raw.decode("latin-1")
        message = text.lstrip("\r\n\0 ") if block_tail else text.strip("\r\n\0 ")
        if not message:
            return True
        faults = inst.faults
        with self.lock:
            inst.chip.advance(inst.latency_s)
            pre, pending = faults.before(inst.can_refuse(message)) if faults.active else (None, None)
            if pre == "reset":
                inst.power_cycle()
                return False
            reply: Any = inst.transient_error(message) if pre == "error" else inst.handle(message)
            kind = faults.after(pending, reply is not None)
        if reply is None:
            return kind != "link"
        body = reply if isinstance(reply, bytes) else reply.encode("latin-1")
        out = body + inst.read_termination.encode()
        if kind is None:
            conn.sendall(out)
        elif kind == "garbage":
            conn.sendall(faults.garble(body) + inst.read_termination.encode())
        elif kind == "timeout":
            time.sleep(faults.plan.late_s)
            conn.sendall(out)
        elif kind == "link":
            conn.sendall(faults.cut(out))
            return False
        return True  # "drop": nothing sent


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


__all__ = ["SimServer", "Served", "SERVED_KINDS", "line_cap_bytes", "LINE_CAP_MIN_BYTES"]
