"""Hostile clients against ``memprog sim serve`` (issue 21, defects 1, 7 and 11).

Backend: a ``memprog sim serve`` subprocess on 127.0.0.1 (free ports), reached through
plain sockets, the way an attacker or a broken client reaches it; plus the in-process
:class:`SimWgfmuLibrary` (the same checks guard the in-process path).

What the red team did, and what must now happen:

* WGFMU calls with sizes beyond their buffers (``addVectors`` count 50,000,000 for one
  vector; ``getErrorSummary`` size 10,000,000 for a 10-byte buffer after 300 errors;
  ``getError`` with a 2e8-byte buffer) used to segfault the server (exit 139) or cost
  1.4 GB: each now gets one error reply line, the server stays up with bounded memory and
  serves a second client;
* an unknown function gets an error reply, and the server's stderr holds no traceback;
* a 100 MB line without a terminator is refused after the line cap (no +95 MB), while a
  legal 1 MiB ``VMM:INP`` block still passes;
* ``--port 65535`` with two instruments and ``--write-bench /nonexistent/x.yaml`` end in
  one line and exit 2 before anything is served.
"""

from __future__ import annotations

import ctypes
import json
import socket
import subprocess
import sys
import time
from ctypes import POINTER, byref, c_double, c_int, create_string_buffer
from pathlib import Path

import numpy as np
import pytest

from memprog.drivers.transport import make_block

SERVE = [sys.executable, "-c", "from memprog.cli import main; main()", "sim", "serve"]
LINUX = sys.platform.startswith("linux")
PARAMETER_OUT_OF_RANGE_ERROR = -1
FUNCTION_NOT_SUPPORTED_ERROR = -4


class Server:
    def __init__(self, bench: str) -> None:
        self.proc = subprocess.Popen(
            [*SERVE, bench, "--port", "0", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            self.proc.kill()
            raise RuntimeError(f"memprog sim serve did not start: {self.proc.communicate()[1]}")
        self.resources: dict[str, str] = json.loads(line)["resources"]

    def port(self, name: str) -> int:
        res = self.resources[name]
        return int(res.rsplit(":", 1)[1]) if res.startswith("tcp://") else int(res.split("::")[2])

    def memory_mb(self, field: str = "VmRSS") -> float | None:
        """The server's resident memory (VmHWM: its peak) in MiB; None off Linux."""
        if not LINUX:
            return None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return None

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        _, err = self.proc.communicate(timeout=20)
        return err


class WgfmuClient:
    """One JSON line per call, as :class:`RemoteWgfmuLibrary` sends them."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.f = self.sock.makefile("rwb")

    def call(self, name: str, *args: object) -> dict:
        self.f.write(json.dumps({"f": name, "a": list(args)}).encode() + b"\n")
        self.f.flush()
        line = self.f.readline()
        assert line, f"the server closed the connection on {name}"
        return json.loads(line)

    def close(self) -> None:
        self.f.close()
        self.sock.close()


@pytest.fixture(scope="module")
def wgfmu_server():
    s = Server("sim_b1500_wgfmu")
    yield s
    err = s.stop()
    assert "Traceback" not in err, err  # no client's call ever prints a traceback


def _second_client_is_served(server: Server) -> None:
    c = WgfmuClient(server.port("wgfmu"))
    try:
        assert c.call("WGFMU_getChannelIdSize", {"p": [0]})["rc"] in (0, -3)  # -3: no session yet
        assert c.call("WGFMU_clear")["rc"] == 0
    finally:
        c.close()


@pytest.mark.slow
def test_add_vectors_with_a_count_beyond_its_arrays_is_refused(wgfmu_server):
    c = WgfmuClient(wgfmu_server.port("wgfmu"))
    assert c.call("WGFMU_clear")["rc"] == 0
    assert c.call("WGFMU_createPattern", {"b": "p1"}, 0.0)["rc"] == 0
    reply = c.call("WGFMU_addVectors", {"b": "p1"}, {"p": [1e-8]}, {"p": [0.0]}, 50_000_000)
    assert reply["rc"] == PARAMETER_OUT_OF_RANGE_ERROR
    assert "50000000" in reply["error"] and "0-1" in reply["error"]
    # the same connection keeps working, and a valid call with the same arrays succeeds
    assert c.call("WGFMU_addVectors", {"b": "p1"}, {"p": [1e-8]}, {"p": [0.0]}, 1)["rc"] == 0
    size = c.call("WGFMU_getPatternForceValueSize", {"b": "p1"}, {"p": [0]})
    assert size == {"rc": 0, "out": {"1": [2]}}  # the pattern holds v0 and one vector
    c.close()
    assert wgfmu_server.proc.poll() is None
    _second_client_is_served(wgfmu_server)


def test_error_summary_size_beyond_its_buffer_is_refused_and_truncation_still_works(wgfmu_server):
    c = WgfmuClient(wgfmu_server.port("wgfmu"))
    assert c.call("WGFMU_clear")["rc"] == 0
    for _ in range(300):
        assert c.call("WGFMU_createPattern", {"b": ""}, 0.0)["rc"] == -2  # ILLEGAL_STRING
    reply = c.call("WGFMU_getErrorSummary", {"c": 10}, {"p": [10_000_000]})
    assert reply["rc"] == PARAMETER_OUT_OF_RANGE_ERROR and "10000000" in reply["error"]
    assert wgfmu_server.proc.poll() is None
    # the real library's behaviour for a buffer smaller than the text: truncated, NUL
    # terminated, and the size argument says how much the whole text needs
    ok = c.call("WGFMU_getErrorSummary", {"c": 10}, {"p": [10]})
    assert ok["rc"] == 0
    assert ok["out"]["0"] == "WGFMU_cre\0"
    assert ok["out"]["1"][0] > 300 * 20
    c.close()
    _second_client_is_served(wgfmu_server)


def test_get_error_with_a_huge_buffer_is_refused_with_bounded_memory(wgfmu_server):
    before = wgfmu_server.memory_mb()
    c = WgfmuClient(wgfmu_server.port("wgfmu"))
    assert c.call("WGFMU_createPattern", {"b": ""}, 0.0)["rc"] == -2
    reply = c.call("WGFMU_getError", {"c": 200_000_000}, {"p": [200_000_000]})
    assert reply["rc"] == PARAMETER_OUT_OF_RANGE_ERROR and "1048576" in reply["error"]
    c.close()
    assert wgfmu_server.proc.poll() is None
    if before is not None:  # was +1.4 GB at the peak
        assert wgfmu_server.memory_mb("VmHWM") - before < 150
    _second_client_is_served(wgfmu_server)


def test_an_unknown_function_gets_an_error_reply(wgfmu_server):
    c = WgfmuClient(wgfmu_server.port("wgfmu"))
    reply = c.call("WGFMU_nope")
    assert reply["rc"] == FUNCTION_NOT_SUPPORTED_ERROR and "WGFMU_nope" in reply["error"]
    bad = c.call("WGFMU_createPattern", "p1", 0.0)  # a name not in its {"b": ...} form
    assert bad["rc"] == PARAMETER_OUT_OF_RANGE_ERROR and bad["type"] == "ConfigError"
    c.f.write(b"not json\n")
    c.f.flush()
    assert json.loads(c.f.readline())["type"] == "ProtocolError"
    # the library's error queue holds the refusal, for WGFMU_getError like any other
    size = c.call("WGFMU_getErrorSize", {"p": [0]})["out"]["0"][0]
    assert size > 0
    c.close()
    _second_client_is_served(wgfmu_server)


def test_a_wgfmu_call_line_over_the_cap_is_refused(wgfmu_server):
    from memprog.sim_instruments.wgfmu_remote import LINE_CAP_BYTES

    before = wgfmu_server.memory_mb()
    c = WgfmuClient(wgfmu_server.port("wgfmu"))
    try:
        c.sock.sendall(b"[" + b"1," * (LINE_CAP_BYTES // 2 + 1024))
    except OSError:
        pass  # the server may close before all of it is sent
    line = c.f.readline()
    assert json.loads(line)["rc"] == PARAMETER_OUT_OF_RANGE_ERROR
    c.close()
    if before is not None:
        assert wgfmu_server.memory_mb() - before < 3 * LINE_CAP_BYTES / 2**20
    _second_client_is_served(wgfmu_server)


# --------------------------------------------------------------------- instrument sockets
@pytest.fixture(scope="module")
def onchip_server():
    s = Server("sim_onchip")
    yield s
    err = s.stop()
    assert "Traceback" not in err, err


def _query(port: int, message: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(message)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(1 << 16)
            assert chunk, "connection closed without a reply"
            data += chunk
        return data


@pytest.mark.slow
def test_a_100_mb_line_is_refused_without_buffering_it(onchip_server):
    port = onchip_server.port("controller")
    before = onchip_server.memory_mb()
    sent = 0
    chunk = b"A" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        try:
            for _ in range(100):
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # refused: the server closed the connection
    assert sent < 100 * len(chunk)  # the server stopped reading long before 100 MB
    after = onchip_server.memory_mb()
    if before is not None:  # was +95 MB
        assert after - before < 16
    assert _query(port, b"*IDN?\n").startswith(b"MEMPROG,")


def test_the_largest_legal_message_still_passes(onchip_server):
    """VMM:INP with 1,024 vectors x 256 rows of float32: a 1 MiB block, under the cap."""
    port = onchip_server.port("controller")
    block = make_block(np.full(1024 * 256, 0.05, dtype=np.float32), "f")
    assert len(block) >= 1 << 20
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(b"VMM:INP " + block + b"\nSYST:ERR?\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(1 << 16)
            assert chunk
            data += chunk
    assert data.strip() == b'0,"No error"'


# --------------------------------------------------------------------------- the CLI
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SERVE, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_port_overflow_is_one_line_and_exit_2():
    r = _cli("sim_b1500_wgfmu", "--port", "65535")  # two served instruments: 65535, 65536
    assert r.returncode == 2, r
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "port=65535" in r.stderr and "1-65534" in r.stderr
    assert r.stdout == ""  # nothing was served


@pytest.mark.slow
def test_write_bench_into_a_missing_directory_is_refused_before_serving(tmp_path):
    target = tmp_path / "missing" / "x.yaml"
    r = _cli("sim_onchip", "--port", "0", "--write-bench", str(target))
    assert r.returncode == 2, r
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "--write-bench" in r.stderr and str(target) in r.stderr
    assert r.stdout == "" and not target.exists()


# ------------------------------------------------------------ the in-process library
@pytest.fixture
def library():
    from memprog.core.bench_config import load_bench_config
    from memprog.sim_instruments.sim_bench import SimBench
    from memprog.sim_instruments.wgfmu_library import SimWgfmuLibrary

    bench = SimBench(load_bench_config("sim_b1500_wgfmu")[0])
    yield SimWgfmuLibrary(bench)
    bench.close()


def _last_error(lib) -> str:
    size = c_int(0)
    lib.WGFMU_getErrorSize(byref(size))
    buf = create_string_buffer(size.value)
    n = c_int(size.value)
    assert lib.WGFMU_getError(buf, byref(n)) == 0
    return buf.value.decode()


def test_in_process_counts_are_checked_against_numpy_and_ctypes_buffers(library):
    pd = POINTER(c_double)
    dts, vs = np.array([1e-8]), np.array([0.5])
    assert library.WGFMU_createPattern(b"p1", 0.0) == 0
    rc = library.WGFMU_addVectors(b"p1", dts.ctypes.data_as(pd), vs.ctypes.data_as(pd), 50_000_000)
    assert rc == PARAMETER_OUT_OF_RANGE_ERROR
    assert "size=50000000" in _last_error(library)
    arr = (c_double * 2)(1e-8, 1e-8)
    assert library.WGFMU_addVectors(b"p1", arr, arr, 3) == PARAMETER_OUT_OF_RANGE_ERROR
    assert "0-2" in _last_error(library)
    assert library.WGFMU_addVectors(b"p1", arr, arr, 2) == 0
    n = c_int(0)
    assert library.WGFMU_getPatternForceValueSize(b"p1", byref(n)) == 0 and n.value == 3


def test_in_process_string_sizes_are_checked_and_small_buffers_truncate(library):
    for _ in range(300):
        library.WGFMU_createPattern(b"", 0.0)
    buf = create_string_buffer(10)
    assert library.WGFMU_getErrorSummary(buf, byref(c_int(10_000_000))) == PARAMETER_OUT_OF_RANGE_ERROR
    assert buf.raw == b"\0" * 10  # nothing written past (or into) the buffer
    n = c_int(10)
    assert library.WGFMU_getErrorSummary(buf, byref(n)) == 0
    assert buf.raw == b"WGFMU_cre\0" and n.value > 300 * 20
    # the error queue is bounded however many calls fail
    for _ in range(3000):
        library.WGFMU_createPattern(b"", 0.0)
    assert len(library.errors) <= 1000 and len(library.summary) <= 1000


def test_in_process_valid_calls_keep_working(library):
    """The checks must not refuse what the real library accepts (byref, pointer, arrays)."""
    size = c_int(0)
    assert library.WGFMU_getErrorSize(ctypes.pointer(size)) == 0
    assert library.WGFMU_createPattern(b"p", 0.0) == 0
    t = np.array([1e-8, 2e-8, 3e-8])
    assert library.WGFMU_addVectors(b"p", t.ctypes.data_as(POINTER(c_double)), t.ctypes.data_as(POINTER(c_double)), 3) == 0
    time.sleep(0)  # nothing asynchronous: every call above completed synchronously


def test_a_long_add_vectors_is_sent_in_chunks_under_the_line_cap(monkeypatch):
    """The client splits an addVectors too long for one line; the pattern is the same."""
    from memprog.sim_instruments import wgfmu_remote
    from memprog.sim_instruments.tcp_server import SimServer

    monkeypatch.setattr(wgfmu_remote, "ADD_VECTORS_CHUNK", 3)
    server = SimServer("sim_b1500_wgfmu", port=0)
    lib = wgfmu_remote.RemoteWgfmuLibrary(server.start()["wgfmu"])
    try:
        dts = np.full(10, 1e-8)
        vs = np.linspace(0.0, 0.9, 10)
        pd = POINTER(c_double)
        assert lib.WGFMU_createPattern(b"long", 0.0) == 0
        assert lib.WGFMU_addVectors(b"long", dts.ctypes.data_as(pd), vs.ctypes.data_as(pd), 10) == 0
        n = c_int(0)
        assert lib.WGFMU_getPatternForceValueSize(b"long", byref(n)) == 0
        assert n.value == 11
        served_lib = next(s for s in server.served if s.kind == "wgfmu").instrument.lib
        assert list(served_lib.calls).count("WGFMU_addVectors") == 4  # 3 + 3 + 3 + 1
        assert served_lib.patterns["long"].volts == [0.0, *vs.tolist()]  # every chunk, in order
    finally:
        lib.close()
        server.stop()
        server.bench.close()


def test_the_remote_client_does_not_read_past_its_callers_arrays(wgfmu_server):
    """RemoteWgfmuLibrary marshals arrays by reading them: a count beyond the caller's
    array is refused before that read (it would otherwise read, and send, foreign memory)."""
    from memprog.sim_instruments.wgfmu_remote import RemoteWgfmuLibrary

    lib = RemoteWgfmuLibrary(wgfmu_server.resources["wgfmu"])
    try:
        one = np.array([1e-8])
        pd = POINTER(c_double)
        assert lib.WGFMU_createPattern(b"remote", 0.0) == 0
        rc = lib.WGFMU_addVectors(b"remote", one.ctypes.data_as(pd), one.ctypes.data_as(pd), 50_000_000)
        assert rc == PARAMETER_OUT_OF_RANGE_ERROR
        assert "size=50000000" in lib.refused[-1]
        n = c_int(0)
        assert lib.WGFMU_getPatternForceValueSize(b"remote", byref(n)) == 0 and n.value == 1
    finally:
        lib.close()


def test_a_refused_vector_leaves_its_pattern_whole(library, tmp_path):
    """addVector with a voltage out of range used to append its time but not its voltage."""
    assert library.WGFMU_createPattern(b"p", 0.0) == 0
    assert library.WGFMU_addVector(b"p", 1e-8, 100.0) == PARAMETER_OUT_OF_RANGE_ERROR
    p = library.patterns["p"]
    assert len(p.times) == len(p.volts) == 1
    out = tmp_path / "patterns.csv"
    assert library.WGFMU_exportAscii(str(out).encode()) == 0  # walks times and volts together
    assert "p,0,0" in out.read_text()
