"""Every stack through pyvisa-py's real TCP transport, against ``memprog sim serve``.

(The WGFMU instrument library has no LAN protocol; its calls cross their own served socket.)

Backend of these tests: pyvisa-py (``@py``) over loopback sockets to a ``memprog sim serve``
subprocess (the simulator behind real sockets), never the in-process ``@memprog`` backend.
The fixture starts the server on free ports and writes the lab-style bench file
(``visa_library: "@py"``) that reaches them, so the drivers meet read terminations,
partial reads and timeouts as in the lab.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import memprog
from memprog.drivers.transport import VisaTransport, parse_block
from memprog.protocols.alibart import tune_alibart

SERVE = [sys.executable, "-c", "from memprog.cli import main; main()", "sim", "serve"]


class Served:
    def __init__(self, proc: subprocess.Popen, doc: dict) -> None:
        self.proc = proc
        self.resources: dict[str, str] = doc["resources"]
        self.bench_file = Path(doc["bench_file"])


def _serve(bench: str, tmp: Path, *extra: str) -> Served:
    out = tmp / f"served_{bench}.yaml"
    proc = subprocess.Popen(
        [*SERVE, bench, "--port", "0", "--json", "--write-bench", str(out), "--force", "--timeout-ms", "3000", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        proc.kill()
        raise RuntimeError(f"memprog sim serve did not start: {proc.communicate()[1]}")
    return Served(proc, json.loads(line))


def _stop(served: Served) -> str:
    served.proc.terminate()
    _, err = served.proc.communicate(timeout=10)
    assert served.proc.returncode == 0, err
    return err


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Start ``memprog sim serve`` for a shipped bench (subprocess, free ports); stopped at the end."""
    started: list[Served] = []
    tmp = tmp_path_factory.mktemp("served")

    def start(bench: str, *extra: str) -> Served:
        s = _serve(bench, tmp, *extra)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            _stop(s)


@pytest.mark.slow
def test_serve_prints_loopback_socket_resources(served):
    s = served("sim_k4200_707b")
    assert set(s.resources) == {"k4200", "k707b"}
    for res in s.resources.values():
        assert res.startswith("TCPIP0::127.0.0.1::") and res.endswith("::SOCKET")
    text = s.bench_file.read_text()
    assert '"@py"' in text or "'@py'" in text or "@py" in text


@pytest.mark.slow
def test_onchip_blocks_over_real_tcp(served):
    """A 1,024-byte READ:ROW? block holds LF bytes in most rows: read by its length field."""
    s = served("sim_onchip")
    with memprog.open_bench(s.bench_file) as b:
        t = b.programmer.controller.transport
        assert isinstance(t, VisaTransport)
        assert "pyvisa_py" in type(t.resource.visalib).__module__  # the real TCP transport
        lf_rows = 0
        for r in range(32):
            raw_g = b.programmer.controller.read_row(r)
            assert raw_g.shape == (256,) and np.all(np.isfinite(raw_g))
            lf_rows += b"\n" in raw_g.astype("<f4").tobytes()
        assert lf_rows > 16, "the test must exercise blocks containing the termination byte"
        g = b.programmer.read_array()
        assert g.shape == (256, 256)


@pytest.mark.slow
def test_single_read_raw_cuts_blocks_on_real_visa(served):
    """The bug the transport fixes: one read_raw() stops at the first LF inside the data."""
    s = served("sim_onchip")
    with memprog.open_bench(s.bench_file) as b:
        res = b.programmer.controller.transport.resource
        cut = 0
        for r in range(32):
            res.write(f"READ:ROW? {r}")
            raw = res.read_raw()
            try:
                parse_block(raw, "f", False)
            except memprog.core.errors.ProtocolError:
                cut += 1
            if len(raw) < 1031:
                res.read_bytes(1031 - len(raw))
        assert cut > 16


@pytest.mark.slow
def test_onchip_write_verify_over_tcp(served):
    s = served("sim_onchip")
    with memprog.open_bench(s.bench_file) as b:
        res = tune_alibart(b.programmer, rows=[0, 5, 9], cols=[1, 7, 200], targets_us=[300, 600, 900])
    # HfO2 1T1R: some devices are stuck (Li 2018); those must say so
    assert (res.converged | res.has_flag("stuck")).all(), res.to_frame()
    assert res.converged.sum() >= 2


@pytest.mark.slow
def test_onchip_pulse_read_and_bursts_over_tcp(served):
    """PULS:READ? / READ:BURS? replies are blocks too (LF bytes inside): a denoising ladder
    of a few levels and a burst of 64 reads over the real TCP transport."""
    from memprog.protocols.ladder import ladder_levels, run_ladder

    s = served("sim_onchip")
    with memprog.open_bench(s.bench_file) as b:
        prog = b.programmer
        g = prog.read_burst(0, 1, 64)
        assert g.shape == (64, 1) and np.all(np.isfinite(g))
        lad = run_ladder(prog, 0, 1, ladder_levels(80.0, 2.0, 4), protocol="denoise")
    assert lad.within.all(), lad.to_frame()


@pytest.mark.slow
def test_crossbar_write_verify_over_tcp(served):
    """4200A-SCS KXCI (NUL-terminated socket) + 707B (raw TSP socket) through pyvisa-py."""
    s = served("sim_k4200_707b")
    with memprog.open_bench(s.bench_file) as b:
        assert b.instruments["k4200"].transport.resource.read_termination == "\0"
        res = tune_alibart(b.programmer, rows=[0, 1], cols=[0, 2], targets_us=[150, 300])
    # every cell reached its band; on the passive crossbar the second cell's V/3 pulses may
    # have moved the first out again, which the result then reports as drifted_out
    assert (res.converged | res.has_flag("drifted_out")).all() and res.converged.any(), res.to_frame()


@pytest.mark.slow
def test_b1500_wgfmu_write_verify_over_tcp(served):
    """B1500A FLEX (CR LF socket, pyvisa-py) + the WGFMU library's calls over their socket."""
    s = served("sim_b1500_wgfmu")
    assert s.resources["wgfmu"].startswith("tcp://127.0.0.1:")
    with memprog.open_bench(s.bench_file) as b:
        assert "pyvisa_py" in type(b.instruments["b1500"].t.resource.visalib).__module__
        res = tune_alibart(b.programmer, rows=[0], cols=[0], targets_us=[200])
    assert res.converged.all(), res.to_frame()


@pytest.mark.slow
def test_b1500_flex_over_tcp(served):
    """The B1500A's FLEX driver alone on its served socket (CR LF)."""
    from memprog.drivers.b1500 import B1500

    s = served("sim_b1500_wgfmu")
    import pyvisa

    rm = pyvisa.ResourceManager("@py")
    try:
        res = rm.open_resource(s.resources["b1500"], timeout=3000)
        res.read_termination = res.write_termination = "\r\n"
        b = B1500(VisaTransport(res, "b1500"))
        b.connect()
        assert b.smu_channels
        ch = b.smu_channels[0]
        b.enable_channels([ch])
        b.force_voltage(ch, 0.0, 1e-3)
        assert np.isfinite(b.current(ch))
        b.safe_state()
    finally:
        rm.close()
