// Shared helpers of the dashboard pages: fetch JSON, escape, format.
"use strict";
// Intl formatters are costly to build: one each, reused (1,000 rows format in ~ms)
const MP_FMT_INT = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const MP_PAD = n => String(n).padStart(2, "0");
const MP = {
  async json(url) {
    const r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (!r.ok) {
      let detail = r.statusText;
      try { detail = (await r.json()).detail || detail; } catch (e) { /* not JSON */ }
      const err = new Error(detail); err.status = r.status; throw err;
    }
    return r.json();
  },
  esc(s) {
    return String(s ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  },
  num(x, d = 2) { return x === null || x === undefined ? "—" : Number(x).toFixed(d); },
  int(x) { return x === null || x === undefined ? "—" : MP_FMT_INT.format(x); },
  time(iso) {  // local time, YYYY-MM-DD HH:MM:SS
    if (!iso) return "—";
    const t = new Date(iso);
    return `${t.getFullYear()}-${MP_PAD(t.getMonth() + 1)}-${MP_PAD(t.getDate())} ` +
      `${MP_PAD(t.getHours())}:${MP_PAD(t.getMinutes())}:${MP_PAD(t.getSeconds())}`;
  },
  dur(s) {
    if (s === null || s === undefined) return "—";
    if (s < 60) return s.toFixed(1) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
    return (s / 3600).toFixed(1) + " h";
  },
  badge(status) { return `<span class="badge ${MP.esc(status)}">${MP.esc(status)}</span>`; },
  bar(p, status) {
    if ((p.cells_total === null || p.cells_total === undefined) && !p.cells_done) return '<span class="bartext">—</span>';
    const frac = p.fraction === null || p.fraction === undefined ? (status === "complete" ? 1 : 0) : p.fraction;
    const total = p.cells_total === null ? "?" : MP.int(p.cells_total);
    return `<span class="bar ${MP.esc(status)}" role="progressbar" aria-valuenow="${p.cells_done}"` +
      ` aria-valuemax="${p.cells_total ?? ""}"><span style="width:${(100 * frac).toFixed(1)}%"></span></span>` +
      `<span class="bartext">${MP.int(p.cells_done)} / ${total}</span>`;
  },
  rate(p) { return p.cells_per_s === null || p.cells_per_s === undefined || !p.cells_done ? "—" : (p.cells_per_s >= 100 ? MP_FMT_INT.format(p.cells_per_s) : p.cells_per_s.toFixed(1)); },
  async showDb() {
    try { const h = await MP.json("/api/health"); document.getElementById("db").textContent = h.db; } catch (e) { /* ignore */ }
  },
  plotConfig: { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d", "autoScale2d"] },
  // The colour tables come from the server (memprog.reporting.outcome.palette(): the same table the
  // PNGs use): one colour per flag, failures never in a benign colour. setPalette() installs
  // the table a document carries; until then nothing is painted in a flag colour.
  FLAG_ORDER: [],
  FLAG_COLORS: {},
  UNKNOWN_FLAG: "#f50057",
  ERROR_SCALE: null,
  setPalette(p) {
    if (!p) return;
    MP.FLAG_COLORS = p.flags || {};
    MP.FLAG_ORDER = p.flag_order || [];
    MP.UNKNOWN_FLAG = (p.categories || {}).not_converged || MP.UNKNOWN_FLAG;
    MP.ERROR_SCALE = p.error_colorscale || null;
  },
  // an unknown (newer) flag word gets the not-converged colour: never a benign one
  flagColor(k) { return MP.FLAG_COLORS[k] || MP.UNKNOWN_FLAG; },
  flagRank(k) { const i = MP.FLAG_ORDER.indexOf(k); return i < 0 ? MP.FLAG_ORDER.length : i; },
  mark(name) { requestAnimationFrame(() => setTimeout(() => performance.mark(name), 0)); },
};
