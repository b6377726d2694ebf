"""The dashboard in a real headless browser: Debian's chromium driven by Selenium through
Debian's chromedriver (no browser is ever downloaded). One browser and one server for the
module. Screenshots of every page go to ``$MEMPROG_ARTIFACTS`` (default: ``tmp/artifacts``).

Backend: the real run store on SQLite, the app under uvicorn in a thread; the token test
runs the ``memprog dashboard`` command itself in a subprocess bound to 0.0.0.0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from memprog.store import open_store
from tests.dashboard_helpers import (
    NO_BROWSER,
    WRITER,
    Browser,
    ThreadServer,
    add_array_run,
    add_characterize_run,
    add_ladder_run,
    artifacts_dir,
    have_browser,
)

pytestmark = pytest.mark.skipif(not have_browser(), reason=NO_BROWSER)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("dash-browser")
    url = f"sqlite:///{base / 'store.sqlite'}"
    w = open_store(url)
    ids = {
        "big": add_array_run(w, 256, trace_cell=(3, 4)),
        "ladder": add_ladder_run(w, 120),
        "charA": add_characterize_run(w, "chip-A", 0),
        "charB": add_characterize_run(w, "chip-B", 1, 1.5),
    }
    srv = ThreadServer(url)
    browser = Browser()
    art = artifacts_dir()
    try:
        yield {"url": url, "store": w, "ids": ids, "srv": srv, "b": browser, "art": art}
    finally:
        browser.close()
        srv.close()
        w.close()


@pytest.mark.slow
def test_runs_page_lists_a_run_created_in_the_test(env):
    b, srv = env["b"], env["srv"]
    rid = add_array_run(
        env["store"], 8, chip_id="chip-new", bench="sim_k4200_707b", trace_cell=None
    )
    b.driver.get(srv.base + "/")
    b.drawn_ms()
    row = b.wait(f"document.querySelector('tr[data-run=\"{rid}\"]')?.innerText")
    assert "chip-new" in row and "sim_k4200_707b" in row and "complete" in row and "64 / 64" in row
    # the chip filter narrows the table to that run
    b.driver.execute_script(
        "const s = document.getElementById('f-chip_id'); s.value = 'chip-new';"
        "s.dispatchEvent(new Event('change'));"
    )
    b.wait("document.querySelectorAll('#runs-body tr[data-run]').length === 1")
    assert "chip_id=chip-new" in b.driver.current_url
    b.driver.get(srv.base + "/")
    b.wait(f"document.querySelector('tr[data-run=\"{env['ids']['big']}\"]')")
    b.shot(env["art"] / "dashboard_runs.png")
    assert b.errors() == []


@pytest.mark.slow
def test_a_run_written_by_another_process_advances_in_the_page(env):
    b, srv = env["b"], env["srv"]
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, env["url"], "16", "64", "0.4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        rid = proc.stdout.readline().strip()
        assert len(rid) == 12, proc.stderr.read()
        b.driver.get(srv.base + "/")
        seen: list[int] = []
        lags: list[float] = []
        deadline = time.monotonic() + 30
        reader = open_store(env["url"], read_only=True)
        while time.monotonic() < deadline:
            assert proc.poll() in (None, 0), proc.stderr.read()
            v = b.driver.execute_script(
                f"const e = document.querySelector('tr[data-run=\"{rid}\"] [role=progressbar]');"
                "return e ? Number(e.getAttribute('aria-valuenow')) : null;"
            )
            if v is not None and (not seen or v != seen[-1]):
                seen.append(v)
            if len(seen) == 3:  # mid-run: how far behind the store is the page?
                truth = int(reader.get_run(rid)["cells_done"])
                t0 = time.monotonic()
                b.wait(f"Number(document.querySelector('tr[data-run=\"{rid}\"] [role=progressbar]')"
                       f".getAttribute('aria-valuenow')) >= {truth}", timeout=10, poll=0.05)  # fmt: skip
                lags.append(time.monotonic() - t0)
                b.driver.get(srv.base + f"/runs/{rid}")
                b.wait("document.querySelector('#status .badge.running')")
                b.shot(env["art"] / "dashboard_run_live.png")
                b.driver.get(srv.base + "/")
                seen.append(-1)  # keep the count moving past 3
            if v == 16 * 64:
                break
            time.sleep(0.1)
        reader.close()
        seen = [s for s in seen if s >= 0]
        assert seen == sorted(seen) and len(set(seen)) >= 3, seen
        assert seen[-1] == 16 * 64, seen
        rate = b.driver.execute_script(
            f"return document.querySelector('tr[data-run=\"{rid}\"] .rate').innerText"
        )
        assert rate != "—"
        assert lags and lags[0] < 5.0, lags  # polled every second: seconds, not minutes
    finally:
        proc.wait(30)
    assert proc.returncode == 0


@pytest.mark.slow
def test_a_256x256_heat_map_renders_and_drills_down(env):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    b, srv = env["b"], env["srv"]
    rid = env["ids"]["big"]
    # the maps are painted on canvases first, before (and without) the chart library
    b.driver.execute_cdp_cmd("Network.enable", {})
    b.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*plotly.min.js"]})
    b.driver.get(srv.base + f"/runs/{rid}")
    for div in ("map-final", "map-error", "map-target"):
        px = b.wait(
            f"(() => {{ const c = document.querySelector('#{div} canvas.preview'); if (!c) return null;"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
            "for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return [c.width, c.height, n]; })()"
        )
        assert px == [256, 256, 65536], (div, px)
    b.shot(env["art"] / "dashboard_run_256_canvas.png")
    b.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
    b.errors()  # the blocked request's own error
    b.driver.get(srv.base + f"/runs/{rid}")
    drawn = b.drawn_ms(timeout=30)
    painted = b.wait("performance.getEntriesByName('memprog:painted').map(e => e.startTime)[0]")
    assert painted <= drawn
    for div in ("map-final", "map-error", "map-target"):
        # Plotly rasterises a heat map on a canvas and places the bitmap in the plot
        sizes = b.wait(
            f"(() => {{ const im = document.querySelector('#{div} .hm image');"
            "if (!im) return null; const src = im.getAttribute('href') || im.getAttribute('xlink:href');"
            "if (!src || !src.startsWith('data:image/png')) return null;"
            "const r = im.getBoundingClientRect(); return [r.width, r.height]; })()"
        )
        assert sizes[0] > 200 and sizes[1] > 200, (div, sizes)
    raster = b.driver.execute_async_script(
        "const done = arguments[0]; const im = new Image();"
        "im.onload = () => done([im.naturalWidth, im.naturalHeight]);"
        "im.src = document.querySelector('#map-final .hm image').getAttribute('href');"
    )
    assert raster[0] >= 256 and raster[1] >= 256  # at least one pixel per cell
    n_flag_layers = b.driver.execute_script(
        "return document.getElementById('map-final').data.filter(t => t.name && t.name.startsWith('stuck')).length"
    )
    assert n_flag_layers == 1
    # a real mouse click on cell (row 3, col 4) opens its pulse/read trace
    el = b.driver.find_element(By.CSS_SELECTOR, "#map-final .nsewdrag")
    off = b.driver.execute_script(
        "const gd = document.getElementById('map-final'), fl = gd._fullLayout;"
        "const d = arguments[0].getBoundingClientRect();"
        "return [fl.xaxis.l2p(4) - d.width / 2, fl.yaxis.l2p(3) - d.height / 2];",
        el,
    )
    ActionChains(b.driver).move_to_element_with_offset(
        el, round(off[0]), round(off[1])
    ).click().perform()
    b.wait("document.getElementById('cell-title').textContent === '(3, 4)'")
    b.wait("document.querySelector('#cell-trace .scatterlayer .trace')")
    info = b.driver.execute_script("return document.getElementById('cell-info').innerText")
    assert "target_us" in info
    b.shot(env["art"] / "dashboard_run_256.png")
    assert b.errors() == []


@pytest.mark.slow
def test_ladder_and_variability_pages(env):
    b, srv = env["b"], env["srv"]
    b.errors()
    b.driver.get(srv.base + f"/runs/{env['ids']['ladder']}")
    b.drawn_ms()
    title = b.wait("document.querySelector('#ladder .gtitle')?.textContent")
    assert title.endswith("of 120 levels within tolerance")
    assert b.driver.execute_script(
        "return document.getElementById('ladder').data.some(t => t.fill === 'tonexty')"
    )
    b.shot(env["art"] / "dashboard_ladder.png")
    b.driver.get(srv.base + "/variability")
    b.drawn_ms()
    names = b.wait("document.getElementById('imprecision').data?.map(t => t.name)")
    assert any(n.startswith("chip-A fit") for n in names) and any(
        n.startswith("chip-B fit") for n in names
    )
    for div in ("disturb", "stuck", "rtn"):
        assert b.driver.execute_script(f"return document.getElementById('{div}').data.length") >= 2
    b.shot(env["art"] / "dashboard_variability.png")
    assert b.errors() == []


def test_unknown_run_is_a_404_page_linking_back(env):
    b, srv = env["b"], env["srv"]
    b.driver.get(srv.base + "/runs/0123456789ab")
    assert "404" in b.driver.find_element("css selector", "h1").text
    b.shot(env["art"] / "dashboard_404.png")
    b.driver.find_element("id", "back").click()
    b.wait("document.querySelector('#runs-body tr[data-run]')")
    assert b.driver.current_url.rstrip("/") == srv.base


@pytest.mark.slow
def test_the_command_on_a_non_local_bind_refuses_requests_without_the_token(env):
    b = env["b"]
    token = "t0k3n-for-the-test"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from memprog.cli import main; main()", "dashboard", "--db", env["url"], "--host", "0.0.0.0",
         "--port", "0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "MEMPROG_DASHBOARD_TOKEN": token},
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        info = json.loads(line)
        assert info["token_required"] and token not in line
        base = f"http://127.0.0.1:{info['port']}"
        for path in ("/", "/api/runs", "/static/plotly.min.js"):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(base + path, timeout=10)
            assert e.value.code == 401
        req = urllib.request.Request(
            base + "/api/runs", headers={"Authorization": f"Bearer {token}"}
        )
        assert json.load(urllib.request.urlopen(req, timeout=10))["count"] >= 4
        b.driver.get(base + "/")
        assert "401" in b.driver.find_element("css selector", "body").text
        b.driver.get(base + f"/?token={token}")  # once; the cookie carries it from then on
        b.wait(f"document.querySelector('tr[data-run=\"{env['ids']['big']}\"]')")
        b.errors()
    finally:
        proc.terminate()
        proc.wait(15)
