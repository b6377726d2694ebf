// One run: GET /api/runs/{id} (+ /maps, /ladder, /cells/{r}/{c}, /events), redrawn while running.
"use strict";
(function () {
  const POLL_MS = 1500;
  const runId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
  const api = "/api/runs/" + encodeURIComponent(runId);
  let first = true, timer = null, lastMapsKey = null;
  // start the first requests now, while the browser is still parsing plotly.min.js
  const MAPS = api + "/maps?encoding=f32";
  // grids arrive as base64 float32 (NaN: no cell); rows become Float32Array views
  function decodeMaps(m) {
    if (m.grid_encoding !== "f32-base64") return m;
    const [nr, nc] = m.shape;
    for (const k of ["target_us", "final_us", "error_us"]) {
      const bin = atob(m[k]), u8 = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
      const f = new Float32Array(u8.buffer);
      m[k] = Array.from({ length: nr }, (_, r) => f.subarray(r * nc, (r + 1) * nc));
    }
    return m;
  }
  const getMaps = () => MP.json(MAPS).then(m => { MP.setPalette(m.palette); return decodeMaps(m); });
  const early = { run: MP.json(api), maps: getMaps() };
  early.run.catch(() => null); early.maps.catch(() => null);
  const take = (key, url) => { const p = early[key]; early[key] = null; return p || (key === "maps" ? getMaps() : MP.json(url)); };

  // plotly.min.js (4.8 MB) costs a second or more of main-thread time in a cold browser, so
  // the page paints the heat maps first as canvas images (the same colour scales), then
  // loads Plotly, which replaces them with the interactive charts.
  let plotlyP = null;
  function plotly() {
    if (typeof Plotly !== "undefined") return Promise.resolve();
    if (!plotlyP) plotlyP = new Promise((ok, bad) => {
      const sc = document.createElement("script");
      sc.src = "/static/plotly.min.js";
      sc.onload = () => ok();
      sc.onerror = () => bad(new Error("could not load /static/plotly.min.js"));
      document.head.appendChild(sc);
    });
    return plotlyP;
  }
  const nextPaint = () => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  const hexRgb = h => [1, 3, 5].map(i => parseInt(h.slice(i, i + 2), 16));
  const VIRIDIS = ["#440154", "#48186a", "#472d7b", "#424086", "#3b528b", "#33638d", "#2c728e", "#26828e", "#21918c",
    "#1fa088", "#28ae80", "#3fbc73", "#5ec962", "#84d44b", "#addc30", "#d8e219", "#fde725"].map((h, i, a) => [i / (a.length - 1), hexRgb(h)]);
  // the error map's scale: the PNGs' colormap (matplotlib coolwarm: negative blue, positive
  // red), sampled by the server (memprog.reporting.outcome.ERROR_COLOURSCALE) and sent in each document
  const errorStops = () => (MP.ERROR_SCALE || [[0, "#3b4cc0"], [0.5, "#dddcdc"], [1, "#b40426"]]).map(([t, h]) => [t, hexRgb(h)]);
  function lut(stops) {
    const out = new Uint8ClampedArray(256 * 3);
    for (let i = 0; i < 256; i++) {
      const t = i / 255;
      let k = 0;
      while (k < stops.length - 2 && t > stops[k + 1][0]) k++;
      const [t0, c0] = stops[k], [t1, c1] = stops[k + 1], f = (t - t0) / (t1 - t0 || 1);
      for (let j = 0; j < 3; j++) out[i * 3 + j] = c0[j] + f * (c1[j] - c0[j]);
    }
    return out;
  }
  function previewMap(id, m, key, lo, hi, table, title, flags) {
    const grid = m[key], nr = grid.length, nc = nr ? grid[0].length : 0;
    const cv = document.createElement("canvas");
    cv.width = nc; cv.height = nr; cv.className = "preview";
    const ctx = cv.getContext("2d"), img = ctx.createImageData(nc, nr), px = img.data, span = hi - lo || 1;
    for (let r = 0; r < nr; r++) {
      const row = grid[r];
      for (let c = 0; c < nc; c++) {
        const v = row[c], o = (r * nc + c) * 4;
        if (v === null || v !== v) continue;  // no cell
        let k = Math.round(255 * (v - lo) / span);
        k = k < 0 ? 0 : k > 255 ? 255 : k;
        px[o] = table[k * 3]; px[o + 1] = table[k * 3 + 1]; px[o + 2] = table[k * 3 + 2]; px[o + 3] = 255;
      }
    }
    for (const [kind, rgb] of flags || []) {
      const [rs, cs] = m.flags[kind];
      for (let j = 0; j < rs.length; j++) {
        const o = ((rs[j] - m.rows[0]) * nc + (cs[j] - m.cols[0])) * 4;
        px[o] = rgb[0]; px[o + 1] = rgb[1]; px[o + 2] = rgb[2]; px[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    const el = document.getElementById(id);
    el.innerHTML = `<p class="preview-title">${MP.esc(title)}</p>`;
    el.appendChild(cv);
  }
  // the conductance colour range: 1st-99th percentile of target and achieved (as the PNGs,
  // memprog.reporting.figures), so a few stuck cells hundreds of µS away saturate instead of
  // flattening every working cell into one colour; m.zNote says so on the chart
  function zRange(m) {
    if (m.zRange) return m.zRange;
    const vals = [];
    for (const g of [m.target_us, m.final_us]) for (const row of g) for (const v of row) if (v !== null && v === v) vals.push(v);
    if (!vals.length) return (m.zRange = [0, 1]);
    const a = Float64Array.from(vals).sort(), q = p => a[Math.min(a.length - 1, Math.max(0, Math.round(p * (a.length - 1))))];
    let lo = q(0.01), hi = q(0.99);
    if (hi - lo < 1e-9) { const pad = Math.max(Math.abs(hi) * 0.01, 1e-3); lo -= pad; hi += pad; }
    let beyond = 0;
    for (const v of vals) if (v < lo || v > hi) beyond++;
    m.zNote = `colour: 1st–99th percentile, ${lo.toFixed(0)}–${hi.toFixed(0)} µS` + (beyond ? `; ${beyond} values beyond saturate` : "");
    return (m.zRange = [lo, hi]);
  }
  // integer ticks at physical rows and columns (never −0.5, 0.5): a 1-2-5 step, ~10 ticks
  function intAxis(vals) {
    const n = vals.length || 1, raw = Math.max(1, n / 10), p = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map(k => k * p).find(s => s >= raw);
    return { tickmode: "linear", tick0: 0, dtick: step, tickformat: "d" };
  }
  function previewMaps(m) {
    const [lo, hi] = zRange(m), vir = lut(VIRIDIS), e = m.error_range_us || 1;
    const kinds = Object.keys(m.flags || {}).sort((a, b) => MP.flagRank(a) - MP.flagRank(b) || a.localeCompare(b));
    const where = ` · rows ${m.rows[0]}–${m.rows[m.rows.length - 1]}, columns ${m.cols[0]}–${m.cols[m.cols.length - 1]}`;
    previewMap("map-final", m, "final_us", lo, hi, vir, "achieved · flagged cells" + where, kinds.map(k => [k, hexRgb(MP.flagColor(k))]));
    previewMap("map-error", m, "error_us", -e, e, lut(errorStops()), `error = achieved − target (±${e.toPrecision(3)} µS)` + where);
    previewMap("map-target", m, "target_us", lo, hi, vir, `target (${m.zNote || ""})` + where);
  }

  function axes(title, m) {
    return {
      title: { text: title, font: { size: 14 }, x: 0.01, xanchor: "left" }, margin: { l: 48, r: 10, t: 44, b: 40 },
      xaxis: Object.assign({ title: { text: "array column (physical)" }, constrain: "domain" }, intAxis(m.cols)),
      yaxis: Object.assign({ title: { text: "array row (physical)" }, autorange: "reversed", scaleanchor: "x", constrain: "domain" }, intAxis(m.rows)),
      legend: { orientation: "h", y: -0.18, font: { size: 11 } }, uirevision: "keep",
    };
  }

  function heat(m, key, opts) {
    return Object.assign({
      type: "heatmap", z: m[key], x: m.cols, y: m.rows, zsmooth: false, colorscale: "Viridis",
      colorbar: { thickness: 12, title: { text: "µS", side: "top" } },
      hovertemplate: "row %{y}, col %{x}<br>%{z:.2f} µS<extra></extra>", hoverongaps: false,
    }, opts || {});
  }

  function flagLayers(m) {
    // one raster layer per flag kind (canvas-drawn like the map itself, fast at any count)
    const kinds = Object.keys(m.flags || {}).sort((a, b) => MP.flagRank(a) - MP.flagRank(b) || a.localeCompare(b));
    const nr = m.rows.length, nc = m.cols.length, r0 = m.rows[0], c0 = m.cols[0];
    return kinds.map((k, i) => {
      const z = Array.from({ length: nr }, () => new Array(nc).fill(null));
      const [rs, cs] = m.flags[k];
      for (let j = 0; j < rs.length; j++) z[rs[j] - r0][cs[j] - c0] = 1;
      const col = MP.flagColor(k);
      return { type: "heatmap", z: z, x: m.cols, y: m.rows, zsmooth: false, showscale: false,
        colorscale: [[0, col], [1, col]], name: `${k} (${rs.length})`, showlegend: true,
        hovertemplate: `row %{y}, col %{x}<br>flag: ${k}<extra></extra>`, hoverongaps: false };
    });
  }

  function drawMaps(m) {
    const errAbs = m.error_range_us || 1;
    const [lo, hi] = zRange(m);
    const shared = { zmin: lo, zmax: hi };
    for (const id of ["map-target", "map-final", "map-error"]) {
      document.getElementById(id).querySelectorAll(".preview, .preview-title, .note").forEach(n => n.remove());
    }
    Plotly.react("map-target", [heat(m, "target_us", shared)], axes(`target <span style="font-size:11px">(${m.zNote})</span>`, m), MP.plotConfig);
    Plotly.react("map-final", [heat(m, "final_us", shared)].concat(flagLayers(m)),
      axes(`achieved · flagged cells <span style="font-size:11px">(${m.zNote})</span>`, m), MP.plotConfig);
    Plotly.react("map-error", [heat(m, "error_us", { colorscale: MP.ERROR_SCALE || "RdBu", reversescale: !MP.ERROR_SCALE, zmid: 0,
      zmin: -errAbs, zmax: errAbs, colorbar: { thickness: 12, title: { text: "µS", side: "top" } } })],
      axes(`error = achieved − target (colour saturates at ±${errAbs.toPrecision(3)} µS)`, m), MP.plotConfig);
    for (const id of ["map-target", "map-final", "map-error"]) {
      const el = document.getElementById(id);
      if (!el.dataset.bound) {
        el.dataset.bound = "1";
        el.on("plotly_click", ev => { const p = ev.points[0]; showCell(p.y, p.x); });
      }
    }
  }

  function histNote(d) {
    const h = d.error_histogram, out = h.below + h.above;
    document.getElementById("hist-note").textContent = (out
      ? `${MP.int(h.below)} cells below −${h.range_us.toPrecision(3)} µS and ${MP.int(h.above)} above +${h.range_us.toPrecision(3)} µS are outside this range (largest |error| ${MP.num(d.max_abs_error_us, 1)} µS). `
      : "") + `${MP.int(h.counts.reduce((a, b) => a + b, 0) + out)} cells.`;
  }
  // the histogram as a canvas, drawn the moment the run document arrives (Plotly replaces
  // it once loaded): axes, labels and bars are readable on a first visit without Plotly
  function previewHist(d) {
    const h = d.error_histogram, el = document.getElementById("hist");
    if (!h.counts.length) { el.innerHTML = '<p class="note">no cells stored yet: the histogram appears with the first finished cells</p>'; return; }
    const cv = document.createElement("canvas"), W = el.clientWidth || 800, H = el.clientHeight || 280, dpr = window.devicePixelRatio || 1;
    cv.width = W * dpr; cv.height = H * dpr; cv.className = "hist-preview";
    const g = cv.getContext("2d"); g.scale(dpr, dpr);
    const L = 56, R = 12, T = 10, B = 42, pw = W - L - R, ph = H - T - B, top = Math.max(...h.counts) || 1;
    const x0 = h.edges[0], x1 = h.edges[h.edges.length - 1], X = v => L + pw * (v - x0) / (x1 - x0 || 1);
    g.fillStyle = "#2b6cb0";
    h.counts.forEach((c, i) => { const a = X(h.edges[i]), b = X(h.edges[i + 1]), y = ph * c / top; g.fillRect(a, T + ph - y, Math.max(1, b - a), y); });
    g.strokeStyle = "#5b6475"; g.fillStyle = "#1d2330"; g.font = "12px system-ui, sans-serif"; g.lineWidth = 1;
    g.beginPath(); g.moveTo(L, T); g.lineTo(L, T + ph); g.lineTo(L + pw, T + ph); g.stroke();
    g.textAlign = "center";
    for (const v of [x0, (x0 + x1) / 2, x1]) g.fillText(v.toPrecision(3), X(v), T + ph + 15);
    g.fillText("error (µS)", L + pw / 2, H - 6);
    g.textAlign = "right";
    g.fillText(MP.int(top), L - 6, T + 10); g.fillText("0", L - 6, T + ph);
    g.save(); g.translate(14, T + ph / 2); g.rotate(-Math.PI / 2); g.textAlign = "center"; g.fillText("cells", 0, 0); g.restore();
    el.innerHTML = ""; el.appendChild(cv);
    histNote(d);
  }

  function drawHist(d) {
    const h = d.error_histogram;
    if (!h.counts.length) { Plotly.purge("hist"); document.getElementById("hist").innerHTML = '<p class="note">no cells stored yet: the histogram appears with the first finished cells</p>'; return; }
    document.getElementById("hist").querySelectorAll(".hist-preview, .note").forEach(n => n.remove());
    const centers = h.counts.map((_, i) => (h.edges[i] + h.edges[i + 1]) / 2);
    const width = h.edges[1] - h.edges[0];
    histNote(d);
    Plotly.react("hist", [{ type: "bar", x: centers, y: h.counts, width: width, marker: { color: "#2b6cb0" },
      hovertemplate: "%{x:.3f} µS: %{y} cells<extra></extra>" }],
      { margin: { l: 50, r: 10, t: 10, b: 40 }, xaxis: { title: { text: "error (µS)" } }, yaxis: { title: { text: "cells" } }, bargap: 0 },
      MP.plotConfig);
  }

  function drawLadder(L) {
    const x = L.levels;
    const traces = [];
    if (L.tolerance_us) {
      const up = L.target_us.map((t, i) => t + L.tolerance_us[i]);
      const dn = L.target_us.map((t, i) => t - L.tolerance_us[i]);
      traces.push({ x: x, y: dn, mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false });
      traces.push({ x: x, y: up, mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: "rgba(47,133,90,0.25)",
        name: "tolerance band", hoverinfo: "skip" });
    }
    traces.push({ x: x, y: L.target_us, mode: "lines", name: "target", line: { color: "#1d2330", width: 1 } });
    if (L.verify_reads_us) {
      const rx = [], ry = [];
      L.verify_reads_us.forEach((rs, i) => rs.forEach(v => { rx.push(x[i]); ry.push(v); }));
      traces.push({ x: rx, y: ry, mode: "markers", name: "verification reads", marker: { size: 3, color: "#718096" } });
    }
    const ok = L.within || x.map(() => true);
    const pick = (arr, want) => arr.filter((_, i) => !!ok[i] === want);
    const ach = L.verify_mean_us || L.final_us;
    traces.push({ x: pick(x, true), y: pick(ach, true), mode: "markers", name: "achieved (within)", marker: { size: 4, color: "#2b6cb0" } });
    traces.push({ x: pick(x, false), y: pick(ach, false), mode: "markers", name: "achieved (outside)", marker: { size: 6, color: "#c53030", symbol: "x" } });
    Plotly.react("ladder", traces, { margin: { l: 60, r: 10, t: 30, b: 40 },
      title: { text: `${L.levels_within_tolerance ?? "?"} of ${x.length} levels within tolerance`, font: { size: 14 } },
      xaxis: { title: { text: "level" } }, yaxis: { title: { text: "conductance (µS)" } }, legend: { orientation: "h", y: -0.15 }, uirevision: "keep" }, MP.plotConfig);
    const signed = ach.map((v, i) => (v === null ? null : v - L.target_us[i]));
    const et = [];
    if (L.tolerance_us) {
      et.push({ x: x, y: L.tolerance_us.map(t => -t), mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false });
      et.push({ x: x, y: L.tolerance_us, mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: "rgba(47,133,90,0.2)", name: "± tolerance", hoverinfo: "skip" });
    }
    et.push({ x: x, y: signed, mode: "markers", name: (L.verify_mean_us ? "mean verification read" : "achieved") + " − level", marker: { size: 3, color: "#2b6cb0" } });
    if (L.verify_max_err_us) et.push({ x: x, y: L.verify_max_err_us, mode: "markers", name: "largest |read − level|", marker: { size: 3, color: "#c53030", symbol: "triangle-up" } });
    Plotly.react("ladder-err", et, { margin: { l: 60, r: 10, t: 10, b: 40 }, xaxis: { title: { text: "level" } },
      yaxis: { title: { text: "error (µS)" }, zeroline: true }, legend: { orientation: "h", y: -0.3 }, uirevision: "keep" }, MP.plotConfig);
  }

  async function showCell(row, col) {
    document.getElementById("cell-title").textContent = `(${row}, ${col})`;
    const info = document.getElementById("cell-info");
    try {
      await plotly();
      const c = await MP.json(`${api}/cells/${row}/${col}`);
      const r = c.results[c.results.length - 1];
      info.innerHTML = ["target_us", "final_us", "error_us", "tolerance_us", "pulses", "reads", "converged", "flags"]
        .filter(k => k in r).map(k => `${k} <b>${MP.esc(typeof r[k] === "number" && !Number.isInteger(r[k]) ? r[k].toFixed(3) : r[k] === "" ? "—" : r[k])}</b>`).join(" · ") +
        (c.results.length > 1 ? ` · ${c.results.length} results (levels)` : "");
      const t = c.trace;
      if (!c.trace_points) {
        Plotly.purge("cell-trace");
        document.getElementById("cell-trace").innerHTML = '<p class="note">no pulse/read trace stored for this cell (the run was not traced)</p>';
        return;
      }
      document.getElementById("cell-trace").innerHTML = "";
      const n = c.trace_points, idx = Array.from({ length: n }, (_, i) => i);
      const kind = t.event || t.kind || idx.map(() => "");
      const g = t.g_us || t.value_us || [];
      const amp = t.amplitude_v || [];
      const reads = idx.filter(i => g[i] !== null && g[i] !== undefined && kind[i] !== "pulse");
      const pulses = idx.filter(i => amp[i] !== null && amp[i] !== undefined && kind[i] !== "read");
      const traces = [
        { x: pulses, y: pulses.map(i => amp[i]), yaxis: "y2", mode: "markers", name: "pulse amplitude (V)",
          marker: { color: "#c53030", size: 7, symbol: pulses.map(i => (amp[i] < 0 ? "triangle-down" : "triangle-up")) } },
        { x: reads, y: reads.map(i => g[i]), mode: "lines+markers", name: "read (µS)", marker: { size: 4 }, line: { color: "#2b6cb0" } },
      ];
      const lay = { margin: { l: 55, r: 50, t: 10, b: 40 }, xaxis: { title: { text: "trace step" } },
        yaxis: { title: { text: "read (µS)" } }, yaxis2: { title: { text: "pulse (V)" }, overlaying: "y", side: "right", showgrid: false, zeroline: true },
        legend: { orientation: "h", y: -0.3 }, shapes: [] };
      if (r && r.target_us !== undefined && r.target_us !== null) {
        const tol = r.tolerance_us || 0;
        lay.shapes.push({ type: "rect", xref: "paper", x0: 0, x1: 1, y0: r.target_us - tol, y1: r.target_us + tol,
          fillcolor: "rgba(47,133,90,0.2)", line: { width: 0 }, layer: "below" });
      }
      Plotly.react("cell-trace", traces, lay, MP.plotConfig);
    } catch (e) {
      info.innerHTML = `<span class="error">${MP.esc(e.message)}</span>`;
    }
  }

  function drawHeader(d) {
    const r = d.run, p = d.progress;
    document.title = `Run ${r.run_id} · memprog dashboard`;
    document.getElementById("run-id").textContent = r.run_id;
    document.getElementById("status").innerHTML = MP.badge(r.status);
    const meta = [["kind", r.kind], ["bench", r.bench], ["chip", r.chip_id], ["technology", r.technology],
      ["protocol", r.protocol], ["started", MP.time(r.started_at)], ["ended", r.ended_at ? MP.time(r.ended_at) : null],
      ["resumed from", r.resumed_from]];
    const ws = (r.params || {}).weights_source;  // a program run's weights: where from, which file
    if (ws) meta.push(["weights", ws.source], ["sha256", ws.sha256], ["pinned", ws.pinned ? "yes" : "no (hash recorded)"]);
    const fl = d.fleet;  // a chip's run of a fleet job: back to the fleet run
    if (fl) meta.unshift(["fleet run", fl.fleet_run_id]);
    const shown = meta.filter(([, v]) => v);
    const link = (k, v) => `${k} <a class="mono" ${k === "fleet run" ? 'id="fleet-link" ' : ""}href="/runs/${encodeURIComponent(v)}">${MP.esc(v)}</a>`;
    document.getElementById("meta").innerHTML = shown.map(([k, v]) => k === "resumed from" || k === "fleet run"
      ? link(k, v) + (k === "fleet run" && fl.chip_name ? ` (chip <b>${MP.esc(fl.chip_name)}</b>)` : "") : `${k} <b>${MP.esc(v)}</b>`).join(" · ");
    document.getElementById("progress").innerHTML = MP.bar(p, r.status) +
      `<span class="bartext"> · ${MP.rate(p)} cells/s · ${MP.dur(p.elapsed_s)}</span>`;
    const tiles = [[d.is_ladder ? "levels stored" : "cells stored", MP.int(d.cells_stored)], ["converged", MP.int(d.converged)],
      ["within tolerance", d.within_tolerance === null ? "—" : MP.int(d.within_tolerance)],
      ["max |error| µS", MP.num(d.max_abs_error_us, 3)], ["mean |error| µS", MP.num(d.mean_abs_error_us, 3)]];
    if (d.max_verify_err_us !== null && d.max_verify_err_us !== undefined) tiles.splice(3, 0, ["largest |read − level| µS", MP.num(d.max_verify_err_us, 3)]);
    const o = d.outcome;  // memprog.reporting.outcome: the CLI's counts, from the stored final rows
    if (o) {
      tiles.push(["stuck (reported)", MP.int(o.stuck)], ["working, outside tolerance", MP.int(o.failed)]);
      if (o.pairs !== undefined) tiles.push(["pairs within tolerance", `${MP.int(o.pairs_within_tolerance)} / ${MP.int(o.pairs)}`]);
      tiles.push(["result", o.ok ? "holds (exit 0)" : "failed (exit 1)"]);
    }
    for (const [k, v] of Object.entries(d.flag_counts)) tiles.push([`flag: ${k}`, MP.int(v)]);
    document.getElementById("tiles").innerHTML = tiles.map(([k, v]) => `<div class="tile"><div class="v">${v}</div><div class="k">${MP.esc(k)}</div></div>`).join("");
    document.getElementById("params").textContent = JSON.stringify({ params: r.params, summary: r.summary }, null, 2);
  }

  function showEmpty(d, m) {
    // a run without per-cell results (characterize, train, ...) shows its record, not empty plots
    const empty = !m.cells && d.run.status !== "running";
    document.getElementById("maps-section").classList.toggle("hidden", empty || document.getElementById("maps-section").classList.contains("hidden"));
    document.getElementById("hist-section").classList.toggle("hidden", empty);
    const box = document.getElementById("no-cells");
    box.classList.toggle("hidden", !empty);
    if (empty) {
      const chip = d.run.chip_id ? "?chip_id=" + encodeURIComponent(d.run.chip_id) : "";
      box.innerHTML = `This ${MP.esc(d.run.kind)} run stored no per-cell results.` +
        (d.run.kind === "characterize" ? ` Its samples feed the <a href="/variability${chip}">variability page</a>.` : "");
      document.getElementById("params-box").open = true;
    }
  }

  function layoutMaps(m, running) {
    // a single cell (a ladder, a one-cell tune) has no map worth drawing; true when maps are due
    const one = m.cells <= 1 || (m.rows.length === 1 && m.cols.length === 1);
    document.getElementById("maps-section").classList.toggle("hidden", one && m.cells > 0);
    document.getElementById("maps-note").textContent = running && m.cells
      ? ` · rows ${m.rows[0]}–${m.rows[m.rows.length - 1]}, columns ${m.cols[0]}–${m.cols[m.cols.length - 1]} so far` : "";
    if (!m.cells) {
      for (const id of ["map-target", "map-final", "map-error"]) {
        if (typeof Plotly !== "undefined") Plotly.purge(id);
        document.getElementById(id).innerHTML = '<p class="note">no cells stored yet</p>';
      }
    }
    return m.cells > 0 && !one;
  }

  async function refresh() {
    let running = false;
    try {
      // first load: paint the maps as canvas images the moment they arrive
      const mapsFirst = first ? take("maps", MAPS).then(m => {
        if (layoutMaps(m, false) && typeof Plotly === "undefined") previewMaps(m);
        return m;
      }) : null;
      const d = await take("run", api);
      running = d.run.status === "running";
      drawHeader(d);
      if (typeof Plotly === "undefined") previewHist(d);
      const key = `${d.run.status}:${d.cells_stored}`;
      let m = null;
      if (key !== lastMapsKey) {
        m = mapsFirst && lastMapsKey === null ? await mapsFirst : await getMaps();
        lastMapsKey = key;
        showEmpty(d, m);
      }
      if (first) { MP.mark("memprog:painted"); await nextPaint(); }
      await plotly();
      drawHist(d);
      if (m) {
        if (layoutMaps(m, running)) drawMaps(m);
        if (d.is_ladder) {
          document.getElementById("ladder-section").classList.remove("hidden");
          drawLadder(await MP.json(api + "/ladder"));
        }
        if (first) { first = false; MP.mark("memprog:drawn"); }
        const ev = await MP.json(api + "/events?limit=200");
        document.getElementById("events").textContent = ev.events.map(e => JSON.stringify(e)).join("\n") || "(none)";
      }
      if (first) { first = false; MP.mark("memprog:drawn"); }
    } catch (e) {
      document.getElementById("meta").innerHTML = `<span class="error">${MP.esc(e.message)}</span>`;
      running = true; // try again
    } finally {
      clearTimeout(timer);
      if (running) timer = setTimeout(refresh, POLL_MS);
    }
  }

  document.addEventListener("DOMContentLoaded", () => { MP.showDb(); refresh(); });
})();
