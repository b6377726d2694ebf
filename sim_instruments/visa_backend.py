"""The ``@memprog`` VISA backend: pyvisa talks to simulated instruments on a simulated chip.

pyvisa loads a backend named ``X`` from a top-level module ``pyvisa_X`` exposing
``WRAPPER_CLASS``; ``ResourceManager("bench.yaml@memprog")`` therefore reaches
:class:`MemprogVisaLibrary` with the bench file as its library path. The library builds one
:class:`~memprog.sim_instruments.sim_bench.SimBench` when the first resource manager of a bench
file opens (instruments at power-on; the chip non-volatile, reopened from its state file,
see ``chip_state``), releases it when the last one closes, and routes every resource
string of the bench file to its simulated instrument.

Reads return whole replies in one call (up to the requested count), so a 65,536-value
binary block crosses the VISA seam in a few chunks rather than byte by byte.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from pyvisa import constants, errors, rname
from pyvisa_sim.highlevel import SimVisaLibrary
from pyvisa_sim.sessions.session import Session

from memprog.core.bench_config import load_bench_config
from memprog.core.errors import ConfigError
from memprog.sim_instruments.base import SimulatedInstrument
from memprog.sim_instruments.sim_bench import SimBench

_MESSAGE_ENDS_WITH_CALL = {"GPIB", "USB", "VXI", "GPIB-VXI", "PXI"}


def message_end(buf: bytearray, term: bytes) -> tuple[int, bool]:
    """Where the first complete message in ``buf`` ends: (index of its terminator, or -1).

    IEEE 488.2 definite-length blocks (``#<n><length><data>``) are skipped whole, so binary
    data that happens to contain the termination byte does not cut a message in two. The
    flag says whether the message ends with such a block. ``#`` not followed by a valid
    block header is ordinary text.
    """
    pos, after_block = 0, -1
    while True:
        t = buf.find(term, pos)
        h = buf.find(b"#", pos, len(buf) if t < 0 else t)
        if h < 0:
            return t, t >= 0 and t == after_block
        ndig = buf[h + 1 : h + 2]
        if ndig.isdigit() and ndig != b"0":
            n = int(ndig)
            field = bytes(buf[h + 2 : h + 2 + n])
            if field.isdigit():
                if len(field) < n:
                    return -1, False  # the block header has not fully arrived
                pos = after_block = h + 2 + n + int(field)
                if pos > len(buf):
                    return -1, False  # the block data has not fully arrived
                continue
        pos = h + 1


class _Connection:
    """Per-session byte buffers between a pyvisa client and one simulated instrument.

    Faults drawn by the instrument's :class:`~.faults.FaultInjector` are applied here
    (the socket server applies the same decisions on real sockets): a lost reply leaves
    the client to time out, a late one is delivered before the reply to the next message,
    a dropped link delivers part of the reply and then refuses every call until the
    resource is reopened.
    """

    def __init__(self, instrument: SimulatedInstrument, interface: str) -> None:
        self.instrument = instrument
        self.eom_per_call = interface.upper() in _MESSAGE_ENDS_WITH_CALL
        self.inbuf = bytearray()
        self.out: deque[tuple[bytes, bool]] = deque()  # (bytes, link drops after them)
        self.late: list[bytes] = []
        self.lost = False

    def write(self, data: bytes) -> None:
        if self.lost:
            raise errors.VisaIOError(constants.VI_ERROR_CONN_LOST)
        term = self.instrument.write_termination.encode()
        self.inbuf.extend(data)
        while term:
            end, block_tail = message_end(self.inbuf, term)
            if end < 0:
                break
            msg = bytes(self.inbuf[:end])
            del self.inbuf[: end + len(term)]
            self._dispatch(msg, block_tail)
        if self.eom_per_call and self.inbuf:
            msg = bytes(self.inbuf)
            self.inbuf = bytearray()
            self._dispatch(msg.rstrip(b"\r\n\0"))

    def _dispatch(self, raw: bytes, block_tail: bool = False) -> None:
        text = raw.decode("latin-1")
        # a message ending in a binary block keeps its last bytes (they are data, not padding)
        message = text.lstrip("\r\n\0 ") if block_tail else text.strip("\r\n\0 ")
        if not message or self.lost:
            return
        inst = self.instrument
        inst.chip.advance(inst.latency_s)
        for late in self.late:  # a late reply arrives before anything newer
            self.out.append((late, False))
        self.late.clear()
        faults = inst.faults
        pre, pending = faults.before(inst.can_refuse(message)) if faults.active else (None, None)
        if pre == "reset":
            inst.power_cycle()
            self.lost = True
            return
        reply = inst.transient_error(message) if pre == "error" else inst.handle(message)
        kind = faults.after(pending, reply is not None)
        term = inst.read_termination.encode()
        if reply is None:
            if kind == "link":
                self.lost = True
            return
        body = reply if isinstance(reply, bytes) else reply.encode("latin-1")
        if kind is None:
            self.out.append((body + term, False))
        elif kind == "garbage":
            self.out.append((faults.garble(body) + term, False))
        elif kind == "timeout":
            self.late.append(body + term)
        elif kind == "link":
            self.out.append((faults.cut(body + term), True))
        # "drop": the reply is lost

    def read(self, count: int) -> tuple[bytes, constants.StatusCode]:
        if not self.out:
            if self.lost:
                raise errors.VisaIOError(constants.VI_ERROR_CONN_LOST)
            raise errors.VisaIOError(constants.VI_ERROR_TMO)
        head, drops = self.out[0]
        if len(head) <= count:
            self.out.popleft()
            if drops:  # pyvisa keeps reading; the next read finds the link gone
                self.lost = True
                return head, constants.StatusCode.success_max_count_read
            return head, constants.StatusCode.success
        self.out[0] = (head[count:], drops)
        return head[:count], constants.StatusCode.success_max_count_read

    def clear(self) -> None:
        self.inbuf.clear()
        self.out.clear()
        self.late.clear()


class _SharedBench:
    """The simulated bench of one bench file, shared by every library instance naming it.

    pyvisa keeps one library instance per library string, so ``benches/x.yaml@memprog``
    and ``/abs/benches/x.yaml@memprog`` would otherwise build two benches (two chips) for
    one file; keyed by the resolved path they share one, as two clients share a lab.
    """

    def __init__(self) -> None:
        self.bench: SimBench | None = None
        self.managers = 0  # open resource managers, over every library instance


_SHARED: dict[str, _SharedBench] = {}


class MemprogVisaLibrary(SimVisaLibrary):
    """pyvisa backend serving the simulated instruments of a memprog bench file."""

    @staticmethod
    def get_debug_info() -> dict[str, str]:
        return {"backend": "memprog simulated bench"}

    def _init(self) -> None:
        self.sessions: dict[int, Any] = {}
        if self.library_path in ("unset", ""):
            raise ConfigError("visa_library", "@memprog", "PATH/TO/BENCH.yaml@memprog", "no bench file named")
        self.bench_config, self.bench_path = load_bench_config(str(self.library_path))
        self._shared = _SHARED.setdefault(str(self.bench_path), _SharedBench())
        self._connections: dict[int, _Connection] = {}
        self._rm_sessions: set[int] = set()

    # ----------------------------------------------------------- bench lifetime
    @property
    def sim_bench(self) -> SimBench | None:
        """The bench file's live simulated bench (None until first used)."""
        return self._shared.bench

    def ensure_bench(self) -> SimBench:
        """The live simulated bench (built on first use)."""
        if self._shared.bench is None:
            self._shared.bench = SimBench(self.bench_config)
        return self._shared.bench

    def sim_clock_s(self) -> float:
        """Simulated bench time since the bench was built."""
        return self.ensure_bench().chip.clock_s

    def open_default_resource_manager(self):  # type: ignore[override]
        session, status = super().open_default_resource_manager()
        if self._shared.managers == 0:
            # instruments at power-on; the chip reopens with the state it holds
            if self._shared.bench is not None:
                self._shared.bench.close()
                self._shared.bench = None
            self._shared.bench = SimBench(self.bench_config)
        self._shared.managers += 1
        self._rm_sessions.add(session)
        return session, status

    def list_resources(self, session, query: str = "?*::INSTR"):  # type: ignore[override]
        names = tuple(
            inst.resource for inst in self.bench_config.instruments.values() if inst.simulated and inst.kind != "wgfmu"
        )
        # pyvisa's ResourceManager.list_resources() returns an empty tuple when nothing
        # matches (it swallows VI_ERROR_RSRC_NFOUND from a backend), so hand back a tuple
        return tuple(rname.filter(names, query))

    # ----------------------------------------------------------- sessions
    def open(self, session, resource_name, access_mode=constants.AccessModes.no_lock, open_timeout=0):  # type: ignore[override]
        # raise (VisaIOError) on a bad name instead of handing back a dead session silently
        try:
            parsed = rname.parse_resource_name(resource_name)
        except rname.InvalidResourceName:
            return 0, self.handle_return_value(None, constants.StatusCode.error_invalid_resource_name)
        instrument = self.ensure_bench().find(resource_name)
        if instrument is None:
            return 0, self.handle_return_value(None, constants.StatusCode.error_resource_not_found)
        cls = Session.get_session_class(parsed.interface_type_const, parsed.resource_class)
        sess = cls(session, resource_name, parsed)
        handle = self._register(sess)
        iface = str(parsed.interface_type_const.name)
        self._connections[handle] = _Connection(instrument, iface)
        return handle, constants.StatusCode.success

    def close(self, session):  # type: ignore[override]
        self._connections.pop(session, None)
        if session in self._rm_sessions:
            self._rm_sessions.discard(session)
            self._shared.managers = max(self._shared.managers - 1, 0)
            if self._shared.managers == 0 and self._shared.bench is not None:
                self._shared.bench.close()
                self._shared.bench = None
        return super().close(session)

    def read(self, session, count):  # type: ignore[override]
        conn = self._connections.get(session)
        if conn is None:
            return b"", constants.StatusCode.error_invalid_object
        return conn.read(count)

    def write(self, session, data):  # type: ignore[override]
        conn = self._connections.get(session)
        if conn is None:
            return 0, constants.StatusCode.error_invalid_object
        conn.write(bytes(data))
        return len(data), constants.StatusCode.success

    def clear(self, session):  # type: ignore[override]
        conn = self._connections.get(session)
        if conn is not None:
            conn.clear()
        return constants.StatusCode.success

    def flush(self, session, mask):  # type: ignore[override]
        return constants.StatusCode.success

    def read_stb(self, session):  # type: ignore[override]
        conn = self._connections.get(session)
        if conn is None:
            return 0, constants.StatusCode.error_invalid_object
        stb = getattr(conn.instrument, "status_byte", None)
        return (int(stb()) if callable(stb) else 0), constants.StatusCode.success

    def assert_trigger(self, session, protocol):  # type: ignore[override]
        return constants.StatusCode.success

    def gpib_control_ren(self, session, mode):  # type: ignore[override]
        return constants.StatusCode.success

    def lock(self, session, lock_type, timeout, requested_key=None):  # type: ignore[override]
        return "", constants.StatusCode.success

    def unlock(self, session):  # type: ignore[override]
        return constants.StatusCode.success

    def connection(self, session: int) -> SimulatedInstrument | None:
        """The simulated instrument behind an open session (for tests and diagnostics)."""
        conn = self._connections.get(session)
        return None if conn is None else conn.instrument


WRAPPER_CLASS = MemprogVisaLibrary
