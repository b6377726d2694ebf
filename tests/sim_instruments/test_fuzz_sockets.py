"""Property-based fuzzing of what a served socket hands to the simulator (issue 21).

Backend: the simulated instruments of the shipped ``sim_*`` benches, called directly
(``handle(message)``, the WGFMU service's ``handle_line``, the server's message framer),
and one in-process :class:`SimServer` on 127.0.0.1 for the socket itself.

Property: any message a client can send, random or a mutation of a real command
(truncated, spliced, renumbered with NaN/inf/huge values), gets a reply or no reply, or a
typed memprog error; never another exception (a thread traceback on the server), a
crash, or a reply without bound. The WGFMU call handler never raises at all: every bad
call line gets a JSON reply line with a ``wgfmu.h`` error code.
"""

from __future__ import annotations

import json
import math
import socket

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from memprog.core.bench_config import load_bench_config
from memprog.core.errors import MemprogError
from memprog.drivers import flex_commands as flex
from memprog.drivers import kxci_commands as kxci
from memprog.drivers import onchip_commands as oc
from memprog.drivers import tsp_commands as tsp
from memprog.drivers.transport import make_block
from memprog.sim_instruments.sim_bench import SimBench
from memprog.sim_instruments.visa_backend import message_end
from memprog.sim_instruments.wgfmu_library import _FUNCTIONS
from memprog.sim_instruments.wgfmu_remote import WgfmuLibraryService
from tests.fuzz_support import TEXT, fuzz_settings, message_text

# hostile values (inf, NaN, 1e308) make numpy warn about overflow on the way to an answer
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

REPLY_MAX_BYTES = 16 << 20  # no reply may grow past this (a 256 x 256 float32 block is 256 KiB)


def _lat(b: bytes) -> str:
    return b.decode("latin-1")


_COLS = np.array([0, 1, 5])
ONCHIP = [
    "*IDN?", "*OPT?", "*RST", "*CLS", "SYST:ERR?", "ARR:SIZE?", "ARR:LIM?", "ARR:COND?",
    oc.read_cell(0, 0), oc.read_cell(3, 7, 0.2), oc.read_row(1), oc.read_array(), oc.read_selection(),
    oc.pulse_one(0, 0, 1e-7, 1.0, math.nan), oc.pulse_row(2, 1e-7, _COLS, np.full(3, 1.2), np.full(3, 1.0)),
    oc.pulse_read(0, 3, 1e-5, np.array([1e-7]), _COLS, np.full(3, 1.0), np.full((3, 1), 1.1)),
    oc.read_burst(0, 5, 1e-5, _COLS), oc.wait_query(0.001),
    oc.pulse_rows_header(1e-7) + _lat(make_block(oc.pulse_rows_records(_COLS, _COLS, np.full(3, 1.1), np.full(3, 1.0)), "f")),
    "READ:SEL " + _lat(make_block(oc.selection_records(_COLS, _COLS), "H")),
    "VMM:INP " + _lat(make_block(np.full(256, 0.1), "f")), "VMM?",
    oc.program_range(10, 100), "PROG:MAP " + _lat(make_block(np.full(256 * 256, 5, dtype=np.uint8), "B")),
    "PROG:STAR", "PROG:STAT?", "PROG:RES?", "PROG:DATA?", "ABOR", "PULS:WIDT 1E-07", "READ:VOLT 0.2",
]
K4200 = [
    "*IDN?", "*OPT?", "ID", "BC", "US", kxci.dv(1, 0, 0.1, 1e-3), kxci.tv(1), kxci.ti(1),
    "DE", kxci.ch(1, "V1", "I1", 1, 3), "SS", kxci.vr(0, 0.2, 0.1, 1e-3), "SM", "MD",
    kxci.hold_time(0.0), kxci.delay_time(0.0), "ME1", "SP", kxci.data_output("I1"), kxci.read_data("I1", 1),
    "UL", kxci.ex("memprog_sim", "smu_read", (1, 0.1, 3, "", 3)), kxci.gn("I", 3), kxci.gp(4, 3),
    kxci.pmu_init(0), kxci.pmu_pulse_train(1, 0.0, 1.0), kxci.pmu_pulse_times(1, 1e-6, 5e-7, 2e-8, 2e-8),
    kxci.pmu_burst_count(1), kxci.pmu_output_state(1, True), kxci.pmu_execute(), kxci.pmu_test_status(),
    "US;DV1,0,0.1,1e-3;TI1",
    # whole sequences, so that renumbered counts reach the code that loops over them
    "UL;EX memprog_sim smu_read(1,0.1,3,,3)",
    "US;:PMU:INIT 0;:PMU:PULSE:BURST:COUNT 2;:PMU:OUTPUT:STATE 1,1;:PMU:EXECUTE",
    "DE;CH1,'V1','I1',1,1;SS;VR1,0,0.2,0.1,1E-3;SM;MD;ME1;DO 'I1'",
]
K707B = [
    "*IDN?", tsp.close("1A01"), tsp.open_("allslots"), tsp.exclusive_close("1A01:1A03,1B05"),
    tsp.exclusive_slot_close("1C02"), tsp.get_closed(), tsp.set_connect_rule("break_before_make"),
    tsp.get_connect_rule(), tsp.delay(0.001), tsp.error_count(), tsp.error_next(), tsp.error_clear(),
    "reset()", 'channel.close("1A01") channel.open("1A01")',
]
B1500 = [
    "*IDN?", "UNT?", "ERRX?", "*RST", flex.cn([1, 2]), flex.dv(1, 0, 0.1, 1e-3), flex.ti(1), flex.tv(1),
    flex.mm(1, [1]), "XE", flex.fmt(1, 0), flex.av(1), flex.az(False),
    flex.wv(1, 1, 0, 0.0, 0.2, 3, 1e-3), flex.wt(0.0, 0.0), flex.pa(0.01), flex.lrn(0), "CL", "DZ",
    "CN 1;DV 1,0,0.1,1E-3;TI 1",
    "CN 1;MM 2,1;WV 1,1,0,0,0.2,3,1E-3;XE",
    "CN 1;AV 10;MM 1,1;XE",
]

BENCHES = {
    "onchip": ("sim_onchip", ONCHIP),
    "k4200": ("sim_k4200_707b", K4200),
    "k707b": ("sim_k4200_707b", K707B),
    "b1500": ("sim_b1500_wgfmu", B1500),
}


@pytest.fixture(scope="module")
def benches():
    built: dict[str, SimBench] = {}
    for bench, _ in BENCHES.values():
        if bench not in built:
            built[bench] = SimBench(load_bench_config(bench)[0])
    yield built
    for b in built.values():  # let go of the chips (a served bench of a later test opens them)
        b.close()


@pytest.mark.parametrize("kind", sorted(BENCHES))
def test_served_handlers_answer_or_raise_typed_errors(benches, kind):
    bench_name, corpus = BENCHES[kind]
    inst = benches[bench_name].instrument(kind)

    @fuzz_settings(80)
    @given(message_text(corpus))
    def run(message):
        try:
            reply = inst.handle(message)
        except MemprogError:
            return
        assert reply is None or isinstance(reply, str | bytes), (message, reply)
        if reply is not None:
            assert len(reply) <= REPLY_MAX_BYTES, (message[:80], len(reply))

    run()


# ------------------------------------------------------------------------- WGFMU calls
def _wire_value() -> st.SearchStrategy:
    num = st.one_of(st.integers(-(2**40), 2**40), st.floats(allow_nan=True, allow_infinity=True))
    return st.one_of(
        num,
        st.none(),
        st.booleans(),
        TEXT,
        st.builds(lambda s: {"b": s}, TEXT),
        st.builds(lambda c: {"c": c}, st.one_of(st.integers(-5, 300), st.integers(-(2**40), 2**40))),
        st.builds(lambda p: {"p": p}, st.lists(num, max_size=5)),
        st.builds(lambda s: {"s": s}, st.lists(st.one_of(TEXT, st.none()), max_size=4)),
        st.builds(lambda k, v: {k: v}, TEXT, num),
    )


_NAMES = st.one_of(st.sampled_from(sorted(_FUNCTIONS)), TEXT)
CALLS = st.builds(lambda f, a: json.dumps({"f": f, "a": a}).encode(), _NAMES, st.lists(_wire_value(), max_size=8))
VALID = [
    b'{"f": "WGFMU_createPattern", "a": [{"b": "p1"}, 0.0]}',
    b'{"f": "WGFMU_addVectors", "a": [{"b": "p1"}, {"p": [1e-08, 2e-08]}, {"p": [0.5, 0.0]}, 2]}',
    b'{"f": "WGFMU_getErrorSummary", "a": [{"c": 64}, {"p": [64]}]}',
    b'{"f": "WGFMU_getError", "a": [{"c": 8}, {"p": [8]}]}',
    b'{"f": "WGFMU_getChannelIds", "a": [{"p": [0, 0]}, {"p": [2]}]}',
    b'{"f": "WGFMU_addSequences", "a": [101, {"s": ["p1"]}, {"p": [1.0]}, 1]}',
    b'{"f": "WGFMU_getMeasureValues", "a": [101, 0, {"p": [2]}, {"p": [0.0, 0.0]}, {"p": [0.0, 0.0]}]}',
]
LINES = st.one_of(
    CALLS,
    st.binary(max_size=60),
    st.sampled_from(VALID).flatmap(lambda v: st.integers(0, len(v)).map(lambda k: v[:k])),
    message_text([v.decode() for v in VALID]).map(lambda s: s.encode("utf-8")),
)


@pytest.fixture(scope="module")
def wgfmu_service(benches):
    import threading

    bench = benches["sim_b1500_wgfmu"]
    b1500 = bench.instrument("b1500")
    return WgfmuLibraryService(bench, threading.Lock(), b1500.config.resource)


@fuzz_settings(150)
@given(LINES)
def test_wgfmu_call_lines_always_get_one_reply_line(wgfmu_service, line):
    out = wgfmu_service.handle_line(line)
    assert out.endswith(b"\n") and out.count(b"\n") == 1
    reply = json.loads(out)
    assert isinstance(reply["rc"], int) and reply["rc"] <= 0
    assert len(out) <= 4 * (1 << 20) + 1024  # a string buffer is capped at 1 MiB
    if reply["rc"] < 0 and "error" in reply:
        assert reply["type"] in {"ConfigError", "ProtocolError"}


# ------------------------------------------------------------------------- framing
@fuzz_settings(200)
@given(
    st.one_of(
        st.binary(max_size=80),
        st.builds(lambda a, d, b: a + b"#" + d + b, st.binary(max_size=10), st.binary(min_size=1, max_size=12), st.binary(max_size=30)),
    ),
    st.sampled_from([b"\n", b"\r\n", b"\0"]),
)
def test_message_framer_finds_an_end_or_waits(buf, term):
    end, block_tail = message_end(bytearray(buf), term)
    assert -1 <= end < max(len(buf), 1) and isinstance(block_tail, bool)
    if end >= 0:
        assert buf[end : end + len(term)] == term


# ------------------------------------------------------------------------- a real socket
@pytest.fixture(scope="module")
def onchip_server():
    from memprog.sim_instruments.tcp_server import SimServer

    server = SimServer("sim_onchip", port=0)
    resources = server.start()
    port = int(resources["controller"].split("::")[2])
    yield port
    server.stop()
    server.bench.close()


def _ask(port: int, message: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(message)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
        return data


@fuzz_settings(25)
@given(st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=4))
def test_garbage_on_a_socket_leaves_the_server_serving(onchip_server, chunks):
    with socket.create_connection(("127.0.0.1", onchip_server), timeout=10) as s:
        for c in chunks:
            s.sendall(c)
    assert _ask(onchip_server, b"*IDN?\n").startswith(b"MEMPROG,")


# ---------------------------------------------------------- what the fuzzers found (issue 21)
def test_a_block_length_in_non_ascii_digits_is_a_block_error(benches):
    """``#²...``: "²".isdigit() is true but int("²") raised ValueError in the controller."""
    inst = benches["sim_onchip"].instrument("onchip")
    inst.handle("*CLS")
    assert inst.handle("PULS:ROWS 1E-07,#²\0\0") is None
    assert inst.handle("SYST:ERR?").startswith("-160,")
    assert inst.handle("READ:SEL #2²³\0") is None
    assert inst.handle("SYST:ERR?").startswith("-160,")


def test_an_integer_beyond_64_bits_is_out_of_range(benches):
    """Found by the 10,000-example run: a column 2**63 overflowed numpy's int64 (OverflowError)."""
    inst = benches["sim_onchip"].instrument("onchip")
    reply = inst.handle("READ:BURS? 0,1,0,9223372036854775808")
    assert reply.startswith('ERR -222,"Data out of range; column')


@pytest.mark.parametrize(
    "message",
    [
        "UL;EX memprog_sim smu_read(1,0.1,1000000000,,1000000000)",  # hung: 1e9 readings
        "US;:PMU:INIT 0;:PMU:PULSE:BURST:COUNT 1000000000",  # then :PMU:EXECUTE hung
    ],
)
def test_4200_counts_that_hung_the_simulator_are_refused(benches, message):
    inst = benches["sim_k4200_707b"].instrument("k4200")
    reply = inst.handle(message)
    assert reply.startswith("ERROR -102:")
    assert "10000]" in reply or "65536" in reply  # the message names the allowed range
