// simsignal dashboard: draws what the engine wrote to Redis, redrawn on every signal (SSE).
"use strict";

const pct = (v, signed = true) =>
  v === null || v === undefined || Number.isNaN(v)
    ? "–" : (signed && v >= 0 ? "+" : "") + (v * 100).toFixed(3) + "%";
let plot = null;
let source = null;

function setText(id, text, value) {
  const el = document.getElementById(id);
  el.textContent = text;
  if (value !== undefined) el.dataset.value = String(value);
}

function drawChart(view) {
  const n = view.labels.length, now = view.minute - 1;
  const x = Array.from({ length: n }, (_, i) => i);
  const pad = (from, values) => x.map(i => (i >= from && i - from < values.length ? values[i - from] * 100 : null));
  const today = x.map(i => (i < view.today.length ? view.today[i] * 100 : null));
  const data = [x, ...view.curves.map(c => c.map(v => v * 100)), pad(now, view.q10), pad(now, view.q90),
                pad(now, view.forecast), today];
  const series = [
    { label: "time", value: (u, i) => (i === null ? "" : view.labels[i]) },
    ...view.curves.map((_, i) => ({ label: `day ${i + 1}`, stroke: "rgba(120,120,120,0.35)", width: 1,
                                    show: true, points: { show: false } })),
    { label: "q10", stroke: "rgba(255,140,0,0.6)", dash: [4, 4], width: 1, points: { show: false } },
    { label: "q90", stroke: "rgba(255,140,0,0.6)", dash: [4, 4], width: 1, points: { show: false } },
    { label: "forecast", stroke: "darkorange", width: 2.5, points: { show: false } },
    { label: "today", stroke: "royalblue", width: 2.5, points: { show: false } },
  ];
  const opts = {
    width: Math.min(window.innerWidth - 40, 1100), height: 420,
    title: `${view.ticker}: ${view.neighbors.length} most similar days (${view.algo}), minute ${view.minute}`,
    legend: { show: false },
    scales: { x: { time: false } },
    axes: [{ values: (u, ticks) => ticks.map(i => view.labels[i] ?? "") }, { label: "% vs previous close" }],
    series,
    hooks: { draw: [u => {  // "now": a dashed vertical line at the newest minute
      const px = u.valToPos(now, "x", true), ctx = u.ctx;
      ctx.save(); ctx.setLineDash([5, 5]); ctx.strokeStyle = "#000";
      ctx.beginPath(); ctx.moveTo(px, u.bbox.top); ctx.lineTo(px, u.bbox.top + u.bbox.height); ctx.stroke();
      ctx.restore();
    }] },
  };
  if (plot) plot.destroy();
  plot = new uPlot(opts, data, document.getElementById("chart"));
}

function unreachable(why) {
  const health = document.getElementById("health");
  health.textContent = `Redis unreachable: ${why} (the page goes on when it answers)`;
  health.className = "bad";
  health.dataset.state = "redis-away";
}

function render(state) {
  if (state.error) {
    unreachable(state.error);
    return;
  }
  const view = state.view;
  if (view) {
    setText("minute", String(view.minute), view.minute);
    setText("slot", view.slot);
    setText("pred-close", pct(view.pred_close), view.pred_close);
    setText("up-prob", pct(view.up_prob, false), view.up_prob);
    drawChart(view);
  }
  const body = document.getElementById("latest");
  body.replaceChildren();
  for (const [algo, s] of Object.entries(state.latest).sort()) {
    const row = document.createElement("tr");
    row.id = `latest-${algo}`;
    const cells = [algo, s.minute, s.slot, pct(s.pred_close), pct(s.pred_move), pct(s.up_prob, false),
                   pct(s.q10), pct(s.q90), s.k, s.latency_ms];
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = String(c);
      row.appendChild(td);
    }
    row.dataset.predClose = String(s.pred_close);
    row.dataset.minute = String(s.minute);
    body.appendChild(row);
  }
  const derived = document.getElementById("derived");  // every derived kind, as it comes
  derived.replaceChildren();
  for (const [kind, d] of Object.entries(state.derived || {}).sort()) {
    const item = document.createElement("li");
    item.id = `derived-${kind}`;
    item.dataset.minute = String(d.minute);
    item.textContent = `${kind} (${d.algo}, minute ${d.minute}, ${d.slot}): ` + (
      kind === "rebalance" && d.weights
        ? `weight ${pct((d.weights[state.ticker] ?? 0), false)}, cash ${pct(d.cash, false)}`
        : d.position !== undefined ? `position ${d.position}, edge ${Number(d.edge).toFixed(3)}`
          : kind === "risk" ? `volatility left ${pct(d.rv, false)} (${pct(d.rv_q10, false)}–`
            + `${pct(d.rv_q90, false)}), range left ${pct(d.range, false)}`
            : JSON.stringify(d));
    derived.appendChild(item);
  }
  const h = state.health || {};
  const health = document.getElementById("health");
  health.textContent = h.minutes === undefined ? "engine: no figures yet"
    : `engine${h.state ? " " + h.state : ""}: ${h.minutes} minutes, p50 ${h.p50_ms} ms, p99 ${h.p99_ms} ms, ` +
      `${h.rejected} rejected bars, ${h.pending} signals buffered, ${h.spilled} spilled`;
  health.className = Number(h.pending) > 0 || Number(h.spilled) > 0 ? "bad" : "";
  health.dataset.state = "ok";
}

function watch(ticker) {
  if (source) source.close();
  history.replaceState(null, "", `?ticker=${encodeURIComponent(ticker)}`);
  source = new EventSource(`/api/events?ticker=${encodeURIComponent(ticker)}`);
  source.onmessage = e => render(JSON.parse(e.data));
  source.onerror = () => unreachable("the dashboard's server does not answer");
}

async function start() {
  let tickers = [];
  try {
    const reply = await (await fetch("/api/tickers")).json();
    tickers = reply.tickers;
    if (reply.error) unreachable(reply.error);
  } catch (err) {
    unreachable(String(err));
  }
  const wanted = new URLSearchParams(location.search).get("ticker");
  const pick = document.getElementById("ticker");
  const names = wanted && !tickers.includes(wanted) ? [wanted, ...tickers] : tickers;
  for (const t of names) pick.add(new Option(t, t));
  if (wanted) pick.value = wanted;
  pick.onchange = () => watch(pick.value);
  if (pick.value) watch(pick.value);
}

start();
