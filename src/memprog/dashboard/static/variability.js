// Variability: GET /api/variability[?chip_id=] — imprecision (with fit), disturb, stuck, RTN per chip.
"use strict";
(function () {
  const PALETTE = ["#2b6cb0", "#c53030", "#2f855a", "#b7791f", "#805ad5", "#d53f8c", "#319795", "#4a5568"];
  const lay = (xt, yt, extra) => Object.assign({ margin: { l: 60, r: 10, t: 10, b: 45 }, xaxis: { title: { text: xt } },
    yaxis: { title: { text: yt } }, legend: { orientation: "h", y: -0.22 } }, extra || {});
  const note = (id, text) => { Plotly.purge(id); document.getElementById(id).innerHTML = `<p class="note">${MP.esc(text)}</p>`; };
  const finite = x => typeof x === "number" && Number.isFinite(x);
  // a mean with its spread and sample count, honestly: no "±" for one sample (there is no
  // spread to state), and n always shown
  const meanSd = (m, sd, n, d = 2) => !finite(m) ? "—"
    : n === 1 || !finite(sd) ? `${m.toFixed(d)} (n = ${n ?? "?"})` : `${m.toFixed(d)} ± ${sd.toFixed(d)} (n = ${MP.int(n)})`;

  function draw(data) {
    const chips = Object.keys(data.per_chip);
    const missing = [];
    const imp = [], dis = [], stuckBars = { hrs: [], lrs: [] }, stuckHist = [], rtn = [];
    chips.forEach((chip, i) => {
      const v = data.per_chip[chip], col = PALETTE[i % PALETTE.length], name = chip === "null" ? "all" : chip;
      for (const [k, msg] of Object.entries(v.missing || {})) missing.push(`${name} · ${k}: ${msg}`);
      if (v.imprecision && v.imprecision.level_us) {
        imp.push({ x: v.imprecision.level_us, y: v.imprecision.std_pct, mode: "markers", name: `${name} std %`, marker: { color: col, size: 7 },
          customdata: v.imprecision.n_samples, hovertemplate: "%{x:.0f} µS: %{y:.3f} % (n=%{customdata})<extra></extra>" });
        const f = v.imprecision_fit;
        if (f && finite(f.slope_pct_per_us) && finite(f.intercept_pct)) {
          const xs = v.imprecision.level_us, x0 = Math.min(...xs), x1 = Math.max(...xs);
          imp.push({ x: [x0, x1], y: [f.slope_pct_per_us * x0 + f.intercept_pct, f.slope_pct_per_us * x1 + f.intercept_pct],
            mode: "lines", name: `${name} fit: ${f.slope_pct_per_us.toExponential(2)} %/µS · G + ${f.intercept_pct.toFixed(3)} %`, line: { color: col, dash: "dash" } });
        }
      }
      if (v.disturb_by_writes) {
        const d = v.disturb_by_writes;
        // error bars only where there is a spread (n > 1); a small sample (n < 10) is labelled
        // with its n on the chart (every point's n is in its hover and in the table)
        dis.push({ x: d.later_writes, y: d.mean, error_y: { type: "data", array: d.std.map((s, j) => (d.count[j] > 1 ? s : null)), visible: true },
          mode: "lines+markers+text", text: d.count.map(n => (n < 10 ? `n=${n}` : "")), textposition: "top center", textfont: { size: 10, color: col },
          name: `${name} mean ± std`, marker: { color: col }, line: { color: col }, customdata: d.count,
          hovertemplate: "%{x} later writes: %{y:.3f} µS (n=%{customdata})<extra></extra>" });
      }
      if (v.stuck_fractions) {
        const f = v.stuck_fractions, n = f.cells;
        stuckBars.hrs.push([name, 100 * f.hrs, `${Math.round(f.hrs * n)} of ${n}`]);
        stuckBars.lrs.push([name, 100 * f.lrs, `${Math.round(f.lrs * n)} of ${n}`]);
      }
      if (v.stuck && v.stuck.g_us && v.stuck.g_us.length) {
        for (const kind of ["hrs", "lrs"]) {
          const g = v.stuck.g_us.filter((_, j) => v.stuck.kind[j] === kind);
          if (g.length) stuckHist.push({ type: "histogram", x: g, name: `${name} stuck ${kind.toUpperCase()} G`, opacity: 0.7,
            marker: { color: col, pattern: { shape: kind === "hrs" ? "" : "x" } }, xaxis: "x2", yaxis: "y2" });
        }
      }
      if (v.rtn && v.rtn.spread_us) {
        for (const phase of ["before", "after"]) {
          const s = v.rtn.spread_us.filter((_, j) => v.rtn.phase[j] === phase);
          if (s.length) rtn.push({ type: "histogram", x: s, name: `${name} ${phase} denoising`, opacity: phase === "before" ? 0.45 : 0.85,
            marker: { color: col, pattern: { shape: phase === "before" ? "" : "/" } } });
        }
      }
    });
    document.getElementById("missing").innerHTML = missing.length
      ? `<div class="card note">${missing.map(MP.esc).join("<br>")}</div>` : "";
    if (imp.some(t => t.y.some(finite))) Plotly.react("imprecision", imp, lay("target level (µS)", "std of achieved − target (%)"), MP.plotConfig);
    else note("imprecision", imp.length ? "no spread to show yet: every level has a single tune (memprog characterize --repeats 2 or more)"
      : "no imprecision data (run memprog characterize)");
    if (dis.length) Plotly.react("disturb", dis, lay("devices programmed after the cell", "conductance change (µS)"), MP.plotConfig);
    else note("disturb", "no disturb samples (run memprog characterize)");
    const noneStuck = !stuckHist.length && stuckBars.hrs.length && stuckBars.hrs.every(a => a[1] === 0) && stuckBars.lrs.every(a => a[1] === 0);
    if (noneStuck) {
      const cells = chips.map(c => (data.per_chip[c].stuck_fractions || {}).cells).filter(finite).reduce((a, b) => a + b, 0);
      note("stuck", `the stuck census examined ${MP.int(cells)} cells and found no stuck devices (0 % stuck HRS, 0 % stuck LRS)`);
    } else if (stuckBars.hrs.length || stuckHist.length) {
      const bar = (rows, name, color) => ({ type: "bar", x: rows.map(a => a[0]), y: rows.map(a => a[1]), name: name,
        text: rows.map(a => a[2]), textposition: "outside", cliponaxis: false, marker: { color: color },
        hovertemplate: "%{x}: %{y:.2f} % (%{text} cells)<extra></extra>" });
      const tr = [bar(stuckBars.hrs, "stuck HRS %", "#4a5568"), bar(stuckBars.lrs, "stuck LRS %", "#b7791f")].concat(stuckHist);
      const extra = { barmode: "group", yaxis: { title: { text: "stuck devices (%)" }, rangemode: "tozero" } };
      if (stuckHist.length) Object.assign(extra, { grid: { rows: 1, columns: 2, pattern: "independent" },
        xaxis2: { title: { text: "stuck conductance (µS)" } }, yaxis2: { title: { text: "devices" } } });
      Plotly.react("stuck", tr, lay("chip (cells examined)", "stuck devices (%)", extra), MP.plotConfig);
    } else note("stuck", "no stuck census (run memprog characterize)");
    if (rtn.length) Plotly.react("rtn", rtn, lay("read spread, peak to peak (µS)", "cells", { barmode: "overlay" }), MP.plotConfig);
    else note("rtn", "no RTN data (run memprog characterize)");
    compareTable(data, chips);
    const fits = {};
    chips.forEach(c => { const v = data.per_chip[c]; fits[c] = { imprecision_fit: v.imprecision_fit, stuck_fractions: v.stuck_fractions, g_range_us: v.g_range_us }; });
    document.getElementById("fits").textContent = JSON.stringify(fits, null, 2);
    document.getElementById("vmeta").textContent = data.chips.length
      ? `${data.chips.length} characterised chip${data.chips.length === 1 ? "" : "s"}: ${data.chips.join(", ")}` : "no characterisation runs in this store";
  }

  // one row per chip: the headline of each table, side by side
  function compareTable(data, chips) {
    const med = a => { if (!a || !a.length) return null; const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
    const rows = chips.map(c => {
      const v = data.per_chip[c], f = v.imprecision_fit || {}, sf = v.stuck_fractions, r = v.rtn, d = v.disturb_by_writes;
      const phase = p => r && r.spread_us ? med(r.spread_us.filter((_, j) => r.phase[j] === p)) : null;
      const lastW = d && d.later_writes.length ? d.later_writes.length - 1 : -1;
      return [c === "null" ? "all" : c,
        !finite(f.intercept_pct) || !finite(f.slope_pct_per_us) ? "— (too few levels)" : `${f.slope_pct_per_us.toExponential(2)} · G + ${f.intercept_pct.toFixed(3)}`,
        !finite(f.offset_mean_pct) ? "—" : f.offset_std_pct > 0 ? `${f.offset_mean_pct.toFixed(3)} ± ${f.offset_std_pct.toFixed(3)}` : `${f.offset_mean_pct.toFixed(3)} (one tune: no spread)`,
        lastW < 0 ? "—" : `${meanSd(d.mean[lastW], d.std[lastW], d.count[lastW])} after ${d.later_writes[lastW]} writes`,
        sf ? `${(100 * sf.hrs).toFixed(2)} / ${(100 * sf.lrs).toFixed(2)} (of ${MP.int(sf.cells)})` : "—",
        r && r.spread_us ? `${MP.num(phase("before"), 2)} → ${MP.num(phase("after"), 2)}` : "—",
        v.g_range_us ? `${MP.num(v.g_range_us[0], 0)}–${MP.num(v.g_range_us[1], 0)}` : "—"];
    });
    document.getElementById("compare").innerHTML =
      "<thead><tr><th>chip</th><th>imprecision std % (fit)</th><th>offset % (mean ± std)</th><th>disturb µS (mean ± std)</th>" +
      "<th>stuck HRS / LRS %</th><th>RTN median µS (before → after)</th><th>range µS</th></tr></thead><tbody>" +
      rows.map(r => "<tr>" + r.map((x, i) => `<td class="${i ? "num" : ""}">${MP.esc(x)}</td>`).join("") + "</tr>").join("") + "</tbody>";
    document.getElementById("compare-box").classList.toggle("hidden", !rows.length);
  }

  async function load() {
    const sel = document.getElementById("chip");
    const chip = new URLSearchParams(location.search).get("chip_id") || "";
    try {
      const data = await MP.json("/api/variability" + (chip ? "?chip_id=" + encodeURIComponent(chip) : ""));
      sel.innerHTML = '<option value="">all chips (compare)</option>' + data.chips.map(c => `<option value="${MP.esc(c)}">${MP.esc(c)}</option>`).join("");
      sel.value = chip;
      draw(data);
    } catch (e) {
      document.getElementById("missing").innerHTML = `<div class="card error">${MP.esc(e.message)}</div>`;
    }
    MP.mark("memprog:drawn");
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("chip").addEventListener("change", ev => {
      const v = ev.target.value;
      history.replaceState(null, "", v ? "?chip_id=" + encodeURIComponent(v) : location.pathname);
      load();
    });
    MP.showDb();
    load();
  });
})();
