// The runs table: GET /api/runs with the filters in the URL, redrawn every second.
"use strict";
(function () {
  const POLL_MS = 1000;
  const KEYS = ["kind", "bench", "chip_id", "status", "limit"];
  const params = new URLSearchParams(location.search);
  let first = true, timer = null;

  function query() {
    const q = new URLSearchParams();
    for (const k of KEYS) { const v = params.get(k); if (v) q.set(k, v); }
    return q.toString();
  }

  function fillChoices(choices) {
    for (const k of KEYS) {
      const sel = document.getElementById("f-" + k);
      if (!sel) continue;
      const want = ["", ...(choices[k] || [])];
      const cur = params.get(k) || "";
      if (cur && !want.includes(cur)) want.push(cur);
      const have = Array.from(sel.options).map(o => o.value);
      if (have.join("\u0000") !== want.join("\u0000")) {
        sel.innerHTML = want.map(v => `<option value="${MP.esc(v)}">${v ? MP.esc(v) : "all"}</option>`).join("");
      }
      sel.value = cur;
    }
  }

  function row(r) {
    const p = r.progress || {};
    return `<tr data-run="${MP.esc(r.run_id)}" data-status="${MP.esc(r.status)}">` +
      `<td class="mono"><a href="/runs/${MP.esc(r.run_id)}">${MP.esc(r.run_id)}</a></td>` +
      // long bench and chip names are cut with an ellipsis (the full name on hover), so the
      // table fits a 1,280 px screen with its duration column
      `<td>${MP.esc(r.kind)}</td><td class="clip" title="${MP.esc(r.bench ?? "")}">${MP.esc(r.bench ?? "—")}</td>` +
      `<td class="clip" title="${MP.esc(r.chip_id ?? "")}">${MP.esc(r.chip_id ?? (r.fleet_chips ? `${r.fleet_chips} chips` : "—"))}</td>` +
      `<td>${MP.esc(r.protocol ?? "—")}</td><td>${MP.badge(r.status)}</td><td>${MP.time(r.started_at)}</td>` +
      // a fleet run stores no cells: its column shows its chips' (fleet_chips says how many)
      `<td class="progress"${r.fleet_chips ? ` title="cells of its ${MP.esc(r.fleet_chips)} chips"` : ""}>${MP.bar(p, r.status)}</td><td class="num rate">${MP.rate(p)}</td>` +
      `<td class="num">${MP.dur(p.elapsed_s)}</td></tr>`;
  }

  async function refresh() {
    try {
      const q = query();
      const data = await MP.json("/api/runs" + (q ? "?" + q : ""));
      fillChoices(data.choices);
      const body = document.getElementById("runs-body");
      body.innerHTML = data.runs.length ? data.runs.map(row).join("")
        : `<tr><td colspan="10" class="empty">no runs${q ? " match these filters" : " in this store yet"}</td></tr>`;
      const running = data.runs.filter(r => r.status === "running").length;
      const total = data.total;
      const more = total === null || total > data.count;
      document.getElementById("count").textContent =
        (more ? `newest ${MP.int(data.count)} of ${total === null ? "more" : MP.int(total)} runs` : `${MP.int(data.count)} run${data.count === 1 ? "" : "s"}`) +
        (running ? `, ${running} running` : "");
      document.getElementById("more").classList.toggle("hidden", !more || data.limit >= 10000);
      document.getElementById("more").dataset.next = Math.min(10000, data.limit * 4);
      document.getElementById("live").classList.remove("stale");
      document.getElementById("live-text").textContent = "live · updated " + new Date().toLocaleTimeString("en-GB");
      if (first) { first = false; MP.mark("memprog:drawn"); }
    } catch (e) {
      document.getElementById("live").classList.add("stale");
      document.getElementById("live-text").textContent = "store unreachable: " + e.message;
    } finally {
      clearTimeout(timer);
      timer = setTimeout(refresh, POLL_MS);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("more").addEventListener("click", ev => {
      params.set("limit", ev.target.dataset.next);
      history.replaceState(null, "", "?" + params.toString());
      clearTimeout(timer);
      refresh();
    });
    for (const k of KEYS) {
      if (!document.getElementById("f-" + k)) continue;
      document.getElementById("f-" + k).addEventListener("change", ev => {
        const v = ev.target.value;
        if (v) params.set(k, v); else params.delete(k);
        const q = params.toString();
        history.replaceState(null, "", q ? "?" + q : location.pathname);
        clearTimeout(timer);
        refresh();
      });
    }
    MP.showDb();
    refresh();
  });
})();
