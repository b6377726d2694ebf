"""The dashboard reads at a glance (issue 27), in a real headless browser: usable before
Plotly loads (maps and histogram on canvases), integer row/column ticks, the runs table
within a 1,280 px screen, honest small samples (n shown, no "±" for n = 1), empty states
that say why. Screenshots go to ``$MEMPROG_ARTIFACTS`` (default ``tmp/artifacts``).

Backend: the real run store on SQLite, the app under uvicorn in a thread, Debian's
chromium through Selenium (as tests/dashboard/test_dashboard_browser.py).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from memprog.store import open_store
from tests.dashboard_helpers import (
    NO_BROWSER,
    Browser,
    ThreadServer,
    add_array_run,
    add_characterize_run,
    artifacts_dir,
    have_browser,
)

pytestmark = pytest.mark.skipif(not have_browser(), reason=NO_BROWSER)


def _tiny_characterize_run(store) -> str:
    """One disturb sample per point, a stuck census that found none, one tune per level."""
    rid = store.start_run(kind="characterize", bench="sim_k4200_707b", chip_id="chip-tiny",
                          technology="tio2_passive", protocol="alibart")  # fmt: skip
    s = store.sink(rid)
    s.record_event({"event": "samples", "table": "disturb", "columns": {
        "later_writes": np.array([1, 5]), "delta_us": np.array([29.62, -3.1])}})  # fmt: skip
    s.record_event({"event": "samples", "table": "stuck", "columns": {
        "kind": np.array(["ok"] * 40), "g_us": np.full(40, 200.0),
        "row": np.arange(40) // 8, "col": np.arange(40) % 8}})  # fmt: skip
    s.record_event({"event": "samples", "table": "imprecision", "columns": {
        "level_us": np.array([200.0, 300.0]), "g_us": np.array([201.0, 299.0]),
        "device": np.array([0, 0]), "repeat": np.array([0, 0]), "converged": np.array([True, True])}})  # fmt: skip
    s.flush()
    store.finish_run(rid, "complete")
    return rid


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("dash-readable")
    url = f"sqlite:///{base / 'store.sqlite'}"
    w = open_store(url)
    ids = {"array": add_array_run(w, 64, trace_cell=None), "small": add_array_run(w, 3, trace_cell=None), "char": add_characterize_run(w, "chip-A", 0),
           "tiny": _tiny_characterize_run(w)}  # fmt: skip
    for k in range(12):  # long bench and chip names: the table must still fit 1,280 px
        r = w.start_run(kind="tune", bench="sim_k4200_707b_with_a_long_bench_name",
                        chip_id=f"TIO2-XBAR-SIM-LONG-CHIP-0{k}", protocol="feedforward", cells_total=4096)  # fmt: skip
        w.finish_run(r, "complete")
    srv = ThreadServer(url)
    b = Browser()
    b.driver.set_window_size(1280, 1000)
    try:
        yield {"b": b, "srv": srv, "ids": ids, "art": artifacts_dir()}
    finally:
        b.close()
        srv.close()
        w.close()


@pytest.mark.slow
def test_run_page_is_readable_before_plotly_loads(env):
    """With plotly.min.js blocked, the maps and the histogram are painted on canvases, with
    the histogram's axis labels (before: bare boxes and an empty histogram)."""
    b, srv = env["b"], env["srv"]
    b.driver.execute_cdp_cmd("Network.enable", {})
    b.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*plotly.min.js*"]})
    try:
        b.driver.get(srv.base + f"/runs/{env['ids']['array']}")
        b.wait("performance.getEntriesByName('memprog:painted').length")
        b.wait("document.querySelector('#hist canvas.hist-preview')")
        n_maps = b.driver.execute_script(
            "return document.querySelectorAll('.plot.map canvas.preview').length"
        )
        assert n_maps == 3
        titles = b.driver.execute_script(
            "return [...document.querySelectorAll('.preview-title')].map(e => e.textContent)"
        )
        assert any("percentile" in t for t in titles), titles  # the clipped range is stated
        assert all("rows 0–63" in t for t in titles), titles
        # the canvas histogram is not blank: it has bars (blue pixels)
        blue = b.driver.execute_script(
            "const c = document.querySelector('#hist canvas'); const d = c.getContext('2d')"
            ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
            "for (let i = 0; i < d.length; i += 4) if (d[i] === 0x2b && d[i + 1] === 0x6c && d[i + 2] === 0xb0) n++;"
            "return n;"
        )
        assert blue > 100
        assert "cells." in b.driver.execute_script(
            "return document.getElementById('hist-note').textContent"
        )
        b.shot(env["art"] / "dashboard_run_before_plotly.png")
    finally:
        b.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})


@pytest.mark.slow
@pytest.mark.parametrize("which", ["small", "array"])
def test_heat_maps_have_integer_ticks(env, which):
    """Row and column ticks are whole cells (before: -0.5, 0.5, ... on a small array)."""
    b, srv = env["b"], env["srv"]
    b.driver.get(srv.base + f"/runs/{env['ids'][which]}")
    b.drawn_ms(timeout=60)
    for pid in ("map-final", "map-error", "map-target"):
        ticks = b.driver.execute_script(
            f"return [...document.querySelectorAll('#{pid} .xtick text, #{pid} .ytick text')].map(t => t.textContent)"
        )
        assert ticks, pid
        for t in ticks:
            assert re.fullmatch(r"[0-9]+", t.replace("\u2212", "-")), (pid, ticks)
        labels = b.driver.execute_script(
            f"const l = document.getElementById('{pid}').layout; return [l.xaxis.title.text, l.yaxis.title.text]"
        )
        assert labels == ["array column (physical)", "array row (physical)"]
    b.shot(env["art"] / f"dashboard_run_maps_{which}.png")
    assert b.errors() == []


def test_runs_table_fits_1280_px(env):
    b, srv = env["b"], env["srv"]
    b.driver.get(srv.base + "/")
    b.drawn_ms()
    w = b.driver.execute_script(
        "const t = document.getElementById('runs'); return [t.scrollWidth, t.parentElement.clientWidth,"
        " document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert w[0] <= w[1] and w[2] <= w[3], w
    # the last column (duration) is on screen
    right = b.driver.execute_script(
        "return document.querySelector('#runs thead th:last-child').getBoundingClientRect().right"
    )
    assert right <= 1280
    b.shot(env["art"] / "dashboard_runs_1280.png")


@pytest.mark.slow
def test_variability_small_samples_and_empty_states(env):
    """One disturb sample: "-3.10 (n = 1)", never "± —"; a census with no stuck device says
    so; a fit that cannot be made says why (before: a TypeError and blank charts)."""
    b, srv = env["b"], env["srv"]
    b.driver.get(srv.base + "/variability?chip_id=chip-tiny")
    b.drawn_ms()
    table = b.wait("document.getElementById('compare').innerText")
    assert "± —" not in table and "(n = 1)" in table, table
    assert "too few levels" in table
    stuck = b.wait("document.getElementById('stuck').innerText")
    assert "found no stuck devices" in stuck and "40 cells" in stuck
    imp = b.driver.execute_script("return document.getElementById('imprecision').innerText")
    assert "single tune" in imp
    b.shot(env["art"] / "dashboard_variability_small.png")
    # a chip with full tables: n shown beside every mean ± std
    b.driver.get(srv.base + "/variability?chip_id=chip-A")
    b.drawn_ms()
    table = b.wait("document.getElementById('compare').innerText")
    assert re.search(r"± [0-9.]+ \(n = [0-9,]+\)", table), table
    assert b.errors() == []
