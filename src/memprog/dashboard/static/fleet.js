// A fleet run: GET /api/runs/{id}/fleet (chips, totals, yield histogram) + /api/runs/{id}, redrawn while running.
"use strict";
(function () {
  const POLL_MS = 1500;
  const runId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
  const api = "/api/runs/" + encodeURIComponent(runId);
  let timer = null, plotlyP = null;
  function plotly() {  // loaded only for a yield study's histogram
    if (typeof Plotly !== "undefined") return Promise.resolve();
    if (!plotlyP) plotlyP = new Promise((ok, bad) => {
      const sc = document.createElement("script");
      sc.src = "/static/plotly.min.js"; sc.onload = () => ok();
      sc.onerror = () => bad(new Error("could not load /static/plotly.min.js"));
      document.head.appendChild(sc);
    });
    return plotlyP;
  }
  const pct = a => (a === null || a === undefined ? "—" : (100 * a).toFixed(1) + " %");
  const runLink = id => id ? `<a class="mono" href="/runs/${encodeURIComponent(id)}">${MP.esc(id)}</a>` : "—";
  const within = c => c.cells_total === null || c.cells_total === undefined ? "—"
    : `${MP.int(c.cells_within_tolerance)} / ${MP.int(c.cells_total)}`;

  function drawHeader(d, f) {
    const r = d.run;
    document.title = `Fleet run ${r.run_id} · memprog dashboard`;
    document.getElementById("run-id").textContent = r.run_id;
    document.getElementById("status").innerHTML = MP.badge(r.status);
    const meta = [["mode", f.mode], ["engine", (f.engine || {}).engine], ["address", (f.engine || {}).address],
      ["chips", f.n_chips], ["chips needed", f.chips_needed], ["protocol", r.protocol],
      ["started", MP.time(r.started_at)], ["ended", r.ended_at ? MP.time(r.ended_at) : null]];
    const ws = (r.params || {}).weights_source;
    if (ws) meta.push(["weights", ws.source]);
    document.getElementById("meta").innerHTML = meta.filter(([, v]) => v !== null && v !== undefined && v !== "")
      .map(([k, v]) => `${k} <b>${MP.esc(v)}</b>`).join(" · ") +
      (f.error ? ` · <span class="error">${MP.esc(f.error)}</span>` : "");
    const t = f.total, tiles = [
      ["cells within tolerance", t.cells_total === null ? "—" : `${MP.int(t.cells_within_tolerance)} / ${MP.int(t.cells_total)}`],
      ["stuck", MP.int(t.cells_stuck)], ["failed", MP.int(t.cells_failed)], ["pulses", MP.int(t.pulses_total)],
      ["bench time, slowest chip", MP.dur(t.bench_time_s_max)], ["bench time, all chips", MP.dur(t.bench_time_s_sum)],
      ["software accuracy", pct(t.software_accuracy)], ["chip accuracy" + (t.inference ? ` (${t.inference})` : ""), pct(t.chip_accuracy)],
      ["worker restarts", MP.int(t.restarts)]];
    if (t.pairs_within_tolerance !== undefined) tiles.splice(1, 0, ["pairs within tolerance", MP.int(t.pairs_within_tolerance)]);
    if (t.outcome) tiles.push(["result", t.outcome.exit_code ? `failed (exit ${t.outcome.exit_code})` : "holds (exit 0)"]);
    if (r.status === "running" && t.cells_done !== null) tiles.unshift(["cells done", `${MP.int(t.cells_done)} / ${t.cells_planned === null ? "?" : MP.int(t.cells_planned)}`]);
    document.getElementById("tiles").innerHTML = tiles.map(([k, v]) => `<div class="tile"><div class="v">${MP.esc(v)}</div><div class="k">${MP.esc(k)}</div></div>`).join("");
    document.getElementById("params").textContent = JSON.stringify({ params: r.params, summary: r.summary }, null, 2);
  }

  function drawChips(f) {
    const rows = f.chips.map(c => `<tr data-chip="${MP.esc(c.index)}">` +
      `<td class="num">${MP.esc(c.index)}</td><td>${MP.esc(c.name ?? "—")}</td>` +
      `<td class="clip mono" title="${MP.esc(c.chip_id ?? "")}">${MP.esc(c.chip_id ?? "—")}</td>` +
      `<td class="chip-run">${runLink(c.run_id)}</td><td>${c.run_status ? MP.badge(c.run_status) : "—"}</td>` +
      `<td class="progress">${c.progress ? MP.bar(c.progress, c.run_status) : "—"}</td>` +
      `<td class="num">${within(c)}</td><td class="num">${MP.int(c.cells_stuck)}</td><td class="num">${MP.int(c.cells_failed)}</td>` +
      `<td class="num">${MP.int(c.pulses_total)}</td><td class="num">${MP.dur(c.bench_time_s)}</td>` +
      `<td class="num">${pct(c.chip_accuracy)}</td><td class="num">${MP.int(c.restarts)}</td></tr>`);
    document.getElementById("chips-body").innerHTML = rows.join("") || '<tr><td colspan="13" class="empty">no chips recorded yet</td></tr>';
    const t = f.total;
    document.getElementById("chips-total").innerHTML = `<tr class="total"><th colspan="6">total (${MP.int(f.chips.length)} chips)</th>` +
      `<th class="num">${within(t)}</th><th class="num">${MP.int(t.cells_stuck)}</th><th class="num">${MP.int(t.cells_failed)}</th>` +
      `<th class="num">${MP.int(t.pulses_total)}</th><th class="num">${MP.dur(t.bench_time_s_sum)}</th>` +
      `<th class="num">${pct(t.chip_accuracy)}</th><th class="num">${MP.int(t.restarts)}</th></tr>`;
  }

  function drawLayers(f) {
    const L = f.total.layers;
    const sec = document.getElementById("layers-section");
    if (!Array.isArray(L) || !L.length || typeof L[0] !== "object") { sec.classList.add("hidden"); return; }
    sec.classList.remove("hidden");
    // every figure the job reported per layer; a shape [rows, cols] reads as rows×cols
    const keys = Object.keys(L[0]).filter(k => L[0][k] === null || typeof L[0][k] !== "object" || Array.isArray(L[0][k]));
    const cell = v => Array.isArray(v) ? v.join("×") : typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(4) : v ?? "—";
    document.getElementById("layers-head").innerHTML = "<tr>" + keys.map(k => `<th class="num">${MP.esc(k)}</th>`).join("") + "</tr>";
    document.getElementById("layers-body").innerHTML = L.map(l => "<tr>" + keys.map(k =>
      `<td class="num">${MP.esc(cell(l[k]))}</td>`).join("") + "</tr>").join("");
  }

  async function drawYield(f) {
    const h = f.accuracy_histogram, sec = document.getElementById("yield-section");
    if (!h) { sec.classList.add("hidden"); return; }
    sec.classList.remove("hidden");
    const p = h.predicted;
    document.getElementById("yield-note").textContent = `${h.n_chips} chips: mean ${h.mean_pct.toFixed(1)} %, std ${h.std_pct.toFixed(1)}, ` +
      `min ${h.min_pct.toFixed(1)} %, max ${h.max_pct.toFixed(1)} %` +
      (h.software_pct !== null ? `; software ${h.software_pct.toFixed(1)} %` : "") +
      (p ? `; Monte Carlo prediction 5–95 % ${p.p05_pct.toFixed(1)}–${p.p95_pct.toFixed(1)} %` +
        (p.mc_transfers ? ` (${p.mc_transfers} transfers)` : "") +
        `, measured mean ${h.mean_in_predicted_5_95 ? "inside" : "outside"} the band` : "; no Monte Carlo prediction stored");
    await plotly();
    const centers = h.counts.map((_, i) => (h.edges_pct[i] + h.edges_pct[i + 1]) / 2);
    const shapes = [], ann = [];
    if (p) shapes.push({ type: "rect", xref: "x", yref: "paper", x0: p.p05_pct, x1: p.p95_pct, y0: 0, y1: 1,
      fillcolor: "rgba(255,170,51,0.3)", line: { width: 0 }, layer: "below" });
    if (h.software_pct !== null) {
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: h.software_pct, x1: h.software_pct, y0: 0, y1: 1, line: { color: "#1d2330", dash: "dash" } });
      ann.push({ x: h.software_pct, y: 1, xref: "x", yref: "paper", text: "software", showarrow: false, yanchor: "bottom" });
    }
    if (p) ann.push({ x: (p.p05_pct + p.p95_pct) / 2, y: 0.92, xref: "x", yref: "paper", text: "MC 5–95 %", showarrow: false });
    Plotly.react("yield", [{ type: "bar", x: centers, y: h.counts, width: h.edges_pct[1] - h.edges_pct[0], marker: { color: "#2b6cb0" },
      name: "chips", hovertemplate: "%{x:.1f} %: %{y} chips<extra></extra>" }],
      { margin: { l: 50, r: 10, t: 40, b: 40 }, bargap: 0.05, shapes: shapes, annotations: ann,
        xaxis: { title: { text: "chip accuracy (%)" } }, yaxis: { title: { text: "chips" }, dtick: 1 } }, MP.plotConfig);
  }

  async function refresh() {
    let running = false;
    try {
      const [d, f] = await Promise.all([MP.json(api), MP.json(api + "/fleet")]);
      running = d.run.status === "running";
      drawHeader(d, f); drawChips(f); drawLayers(f);
      await drawYield(f);
      const ev = await MP.json(api + "/events?limit=200");
      document.getElementById("events").textContent = ev.events.map(e => JSON.stringify(e)).join("\n") || "(none)";
      MP.mark("memprog:drawn");
    } catch (e) {
      document.getElementById("meta").innerHTML = `<span class="error">${MP.esc(e.message)}</span>`;
      running = true;
    } finally {
      clearTimeout(timer);
      if (running) timer = setTimeout(refresh, POLL_MS);
    }
  }
  document.addEventListener("DOMContentLoaded", () => { MP.showDb(); refresh(); });
})();
