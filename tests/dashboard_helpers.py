"""Helpers for the dashboard tests and benchmark: stores filled with real runs, a server in
a thread, and a headless Chromium from Debian's packages (never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from memprog.protocols.results import TuneResult

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
NO_BROWSER = (
    f"{CHROMIUM} or {CHROMEDRIVER} is absent: install Debian's chromium and chromium-driver "
    "packages (.ci/run does) to run the browser tests"
)
BROWSER_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1500,1050",
)  # fmt: skip


def have_browser() -> bool:
    """True when Debian's chromium and its driver are installed."""
    return os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)


ROOT = Path(__file__).resolve().parents[1]


def artifacts_dir() -> Path:
    """Where screenshots go: ``$MEMPROG_ARTIFACTS``, else ``tmp/artifacts`` in the checkout
    (``*.png`` is git-ignored there)."""
    p = Path(os.environ.get("MEMPROG_ARTIFACTS") or ROOT / "tmp" / "artifacts")
    p.mkdir(parents=True, exist_ok=True)
    return p


# ---------------------------------------------------------------------------- store content
def array_result(n: int = 256, seed: int = 0, protocol: str = "alibart") -> TuneResult:
    """A plausible n × n array result: 64 levels, ~1 % error, a few stuck/budget cells."""
    rng = np.random.default_rng(seed)
    rows, cols = np.divmod(np.arange(n * n), n)
    target = 100.0 + 4.0 * rng.integers(0, 64, n * n)
    final = target + rng.normal(0.0, 0.8, n * n)
    stuck = rng.random(n * n) < 0.01
    final[stuck] = rng.normal(12.0, 2.0, int(stuck.sum()))
    budget = (~stuck) & (rng.random(n * n) < 0.004)
    final[budget] += rng.choice([-1, 1], int(budget.sum())) * rng.uniform(3, 8, int(budget.sum()))
    flags = np.where(stuck, "stuck,at_voltage_cap", np.where(budget, "pulse_budget", ""))
    return TuneResult(
        protocol=protocol, rows=rows, cols=cols, target_us=target, final_us=final,
        pulses=rng.integers(2, 40, n * n), reads=rng.integers(12, 60, n * n),
        converged=~(stuck | budget), flags=flags.astype(object), tolerance_us=2.0,
    )  # fmt: skip


def add_array_run(store: Any, n: int = 256, *, chip_id: str = "chip-A", trace_cell=(3, 4),
                  bench: str = "sim_onchip", seed: int = 0) -> str:  # fmt: skip
    """A complete ``array`` run of n × n cells with one traced cell; returns its id."""
    rid = store.start_run(kind="array", bench=bench, chip_id=chip_id, technology="hfo2_1t1r",
                          protocol="alibart", params={"tolerance_us": 2.0}, cells_total=n * n)  # fmt: skip
    sink = store.sink(rid, trace=True, batch_cells=1 << 20)
    if trace_cell is not None:
        r, c = trace_cell
        g = 100.0
        for k in range(12):
            sink.record_event({"event": "pulse", "rows": np.array([r]), "cols": np.array([c]),
                               "amplitude_v": 0.9 + 0.05 * k, "width_s": 1e-6})  # fmt: skip
            g += 15.0 * np.exp(-k / 5)
            sink.record_event({"event": "read", "rows": np.array([r]), "cols": np.array([c]),
                               "g_us": np.array([g])})  # fmt: skip
    res = array_result(n, seed)
    sink.record_results(res)
    sink.record_event({"event": "array_end", "summary": res.summary()})
    sink.flush()
    store.finish_run(rid, "complete", res.summary())
    return rid


def add_ladder_run(store: Any, levels: int = 300, *, chip_id: str = "chip-A") -> str:
    """A complete ``levels`` run on one cell (the ladder's per-level rows)."""
    rid = store.start_run(kind="levels", bench="sim_onchip", chip_id=chip_id, technology="hfo2_1t1r",
                          protocol="denoise", params={"tolerance_us": 1.0}, cells_total=levels)  # fmt: skip
    sink = store.sink(rid, batch_cells=1 << 20)
    rng = np.random.default_rng(1)
    for k in range(levels):
        t = 50.0 + 2.0 * k
        err = rng.normal(0, 0.35) + (2.5 if k % 97 == 50 else 0.0)
        sink.record_result({"protocol": "denoise", "level": k, "row": 0, "col": 0, "target_us": t,
                            "final_us": t + err, "verify_max_err_us": abs(err) + abs(rng.normal(0, 0.2)),
                            "pulses": int(rng.integers(1, 9)), "reads": 12, "converged": True})  # fmt: skip
    sink.flush()
    store.finish_run(rid, "complete", {"tolerance_us": 1.0})
    return rid


def add_characterize_run(store: Any, chip_id: str, seed: int = 0, scale: float = 1.0) -> str:
    """A ``characterize`` run with raw samples for every variability table."""
    rng = np.random.default_rng(seed)
    rid = store.start_run(kind="characterize", bench="sim_k4200_707b", chip_id=chip_id,
                          technology="tio2_passive", protocol="alibart")  # fmt: skip
    sink = store.sink(rid)
    levels = np.repeat(np.linspace(110, 390, 8), 30)
    n = levels.size
    g = levels * (1 + rng.normal(0.002 * scale, (0.004 + levels * 2e-5) * scale, n))
    sink.record_event({"event": "samples", "table": "imprecision", "columns": {
        "level_us": levels, "g_us": g, "device": (np.arange(n) // 10) % 3, "repeat": np.arange(n) // 30,
        "converged": np.ones(n, dtype=bool)}})  # fmt: skip
    lw = np.repeat([1, 5, 13, 29], 40)
    sink.record_event({"event": "samples", "table": "disturb", "columns": {
        "later_writes": lw, "delta_us": rng.normal(-0.06 * lw**0.88, 3.6 * lw**0.3 * scale)}})  # fmt: skip
    m = 500
    kind = rng.choice(["ok", "hrs", "lrs"], m, p=[1 - 0.015 * scale, 0.01 * scale, 0.005 * scale])
    sink.record_event({"event": "samples", "table": "stuck", "columns": {
        "kind": kind, "g_us": np.where(kind == "lrs", rng.normal(420, 15, m), rng.normal(95, 5, m)),
        "row": np.arange(m) // 25, "col": np.arange(m) % 25}})  # fmt: skip
    k = 120
    sink.record_event({"event": "samples", "table": "rtn", "columns": {
        "phase": np.repeat(["before", "after"], k), "spread_us": np.concatenate(
            [rng.lognormal(np.log(2.5 * scale), 0.4, k), rng.lognormal(np.log(0.4), 0.3, k)]),
        "row": np.tile(np.arange(k) // 12, 2), "col": np.tile(np.arange(k) % 12, 2)}})  # fmt: skip
    sink.record_event({"event": "samples", "table": "range", "columns": {
        "g_lo_us": [100.0], "g_hi_us": [400.0]}})  # fmt: skip
    sink.flush()
    store.finish_run(rid, "complete")
    return rid


# A run written slowly by another process: what the live-update test watches.
WRITER = r"""
import sys, time
import numpy as np
from memprog.store import open_store
from memprog.protocols.results import TuneResult
url, n_batches, per_batch, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
store = open_store(url)
total = n_batches * per_batch
rid = store.start_run(kind="array", bench="sim_onchip", chip_id="chip-live", protocol="alibart",
                      cells_total=total)
print(rid, flush=True)
sink = store.sink(rid, batch_cells=1 << 20)
for b in range(n_batches):
    idx = np.arange(b * per_batch, (b + 1) * per_batch)
    r, c = np.divmod(idx, 64)
    t = 100.0 + (idx % 50) * 5.0
    one = np.ones(idx.size)
    sink.record_results(TuneResult(protocol="alibart", rows=r, cols=c, target_us=t, final_us=t + 0.3,
                                   pulses=5 * one, reads=20 * one, converged=one > 0,
                                   flags=np.full(idx.size, "", object), tolerance_us=2.0))
    sink.flush()
    time.sleep(pause)
store.finish_run(rid, "complete")
"""


# ---------------------------------------------------------------------------- server
class ThreadServer:
    """The dashboard app under uvicorn in a thread of the test process (port chosen freely)."""

    def __init__(self, url: str, token: str | None = None, host: str = "127.0.0.1") -> None:
        # deferred: fastapi and uvicorn (~0.25 s) load only for the tests that serve the app
        import uvicorn

        from memprog.dashboard.app import create_app  # deferred: pulls in fastapi
        from memprog.dashboard.security import is_local  # deferred: the package pulls in fastapi
        from memprog.dashboard.server import prepare  # deferred: pulls in fastapi

        self.prep = prepare(url, host, 0, token)
        app = create_app(self.prep.store, token=token, local=is_local(host))
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.prep.sock]},
                                       daemon=True)  # fmt: skip
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        self.base = f"http://127.0.0.1:{self.prep.port}"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.prep.sock.close()
        self.prep.store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------- browser
class Browser:
    """One headless Chromium session (Selenium, Debian's chromedriver) with a fresh profile."""

    def __init__(self) -> None:
        # deferred: selenium is installed only where the browser tests run
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="memprog-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in BROWSER_FLAGS:
            opts.add_argument(a)
        opts.add_argument(f"--user-data-dir={self.profile}")
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        self.driver.set_page_load_timeout(30)

    def wait(self, js: str, timeout: float = 15.0, poll: float = 0.1) -> Any:
        """Evaluate ``return <js>`` until it is truthy; its value, or TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.driver.execute_script("return " + js)
            if v:
                return v
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for: {js}")
            time.sleep(poll)

    def drawn_ms(self, timeout: float = 20.0) -> float:
        """Milliseconds from navigation start to the page's ``memprog:drawn`` mark."""
        return float(self.wait("performance.getEntriesByName('memprog:drawn').map(e => e.startTime)[0]",
                               timeout))  # fmt: skip

    def errors(self) -> list[str]:
        """SEVERE console messages since the last call."""
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def shot(self, path: Path) -> None:
        self.driver.save_screenshot(str(path))

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
