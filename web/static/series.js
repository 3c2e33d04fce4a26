// Latency over time by protocol (or any grouping): per column of request
// time, each group's latency p50 split into its network / server /
// transfer p50s (stacked) and its p99 (a line), from
// /api/v1/latency_series (tapvault latency's groups per column). A column
// lists its exchanges, slowest first.
import { el, svg, api, link, parseJSON, fmtTime, fmtDur, fmtCount, big, errorBox } from './util.js';

// The exchanges the latency groups count (not the connection records).
const EXCHANGES = 'proto != tcp and class != flow';

function chart(name, cols, per, colLink, tz, colFrom) {
  const W = 600; const H = 90; const TOP = 4;
  const cw = W / cols;
  const max = Math.max(1, ...per.filter((g) => g).map((g) => Number(g.latency_ns.p99)));
  const y = (v) => TOP + (H - TOP) * (1 - Number(v) / max);
  const g = [];
  // The p99 line joins adjacent columns only: a gap (no exchange) breaks
  // it, a lone column gets a tick across its width.
  const segs = [];
  let seg = null;
  per.forEach((grp, c) => {
    if (!grp) return;
    const x = c * cw;
    const parts = [['network', grp.network_ns?.p50], ['server', grp.server_ns?.p50], ['transfer', grp.transfer_ns?.p50]];
    let base = H;
    const rects = [];
    for (const [cls, v] of parts) {
      if (v === undefined || Number(v) <= 0) continue;
      const h = ((H - TOP) * Number(v)) / max;
      base -= h;
      rects.push(svg('rect', { x: x + 0.5, y: base, width: Math.max(0.5, cw - 1), height: Math.max(0.5, h), class: 'part ' + cls }));
    }
    const l = grp.latency_ns;
    const title = `${fmtTime(colFrom(c), tz)}: ${fmtCount(grp.count)} exchanges; latency p50 ${fmtDur(l.p50)}, p99 ${fmtDur(l.p99)}; p50 of network ${fmtDur(grp.network_ns?.p50)}, server ${fmtDur(grp.server_ns?.p50)}, transfer ${fmtDur(grp.transfer_ns?.p50)}`;
    g.push(svg('a', { href: colLink(c), class: 'col', 'data-col': c, 'data-count': grp.count, 'data-p50': String(l.p50), 'data-p99': String(l.p99),
      'data-network': String(grp.network_ns?.p50 ?? ''), 'data-server': String(grp.server_ns?.p50 ?? ''), 'data-transfer': String(grp.transfer_ns?.p50 ?? '') },
    svg('rect', { x, y: 0, width: cw, height: H, class: 'hit' }), rects, svg('title', {}, title)));
    if (Number(l.p99) >= 0) {
      if (!seg || seg.last !== c - 1) { seg = { pts: [], last: c }; segs.push(seg); }
      seg.pts.push([x, x + cw, y(l.p99)]);
      seg.last = c;
    } else seg = null;
  });
  for (const sg of segs) {
    const pts = sg.pts.length === 1 ? [[sg.pts[0][0], sg.pts[0][2]], [sg.pts[0][1], sg.pts[0][2]]] : sg.pts.map(([a, b, v]) => [(a + b) / 2, v]);
    g.push(svg('polyline', { points: pts.map(([px, py]) => `${px},${py}`).join(' '), class: 'p99' }));
  }
  return el('div', { class: 'card wide series-card', 'data-group': name },
    el('div', { class: 'title' }, `${name}: p50 as network / server / transfer, p99 the line (up to ${fmtDur(max)})`),
    svg('svg', { class: 'lseries', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none' }, g));
}

// fetchSeries: the latency groups per column of the window, by protocol.
export async function fetchSeries(st) {
  return parseJSON(await (await api('/api/v1/latency_series', { by: 'proto', expr: EXCHANGES, from: st.from, to: st.to, cols: 30 })).text());
}

// latencySeries draws the charts of fetchSeries's answer (a promise).
export async function latencySeries(out, st, tz, hp) {
  let h;
  try { h = await hp; } catch (e) { out.replaceChildren(errorBox(e)); return; }
  const cols = Number(h.cols);
  const from = big(h.from); const step = big(h.step);
  const colFrom = (c) => from + BigInt(c) * step;
  const byProto = new Map();
  h.columns.forEach((groups, c) => {
    for (const g of groups) {
      const p = g.key.proto;
      if (!byProto.has(p)) byProto.set(p, new Array(cols).fill(null));
      byProto.get(p)[c] = g;
    }
  });
  const charts = [...byProto.keys()].sort().map((p) => chart(p, cols, byProto.get(p), (c) => link('exchanges', {
    expr: `${EXCHANGES} and proto ${p} and req_first >= ${colFrom(c)} and req_first < ${colFrom(c + 1)}`,
    from: colFrom(c).toString(), to: (colFrom(c + 1) - 1n).toString(), sort: '-latency_ns', tz: st.tz,
  }), tz, colFrom));
  out.replaceChildren(
    el('p', { class: 'muted', id: 'lseries-info', 'data-from': String(h.from), 'data-step': String(h.step), 'data-cols': String(cols) },
      `${cols} columns of ${fmtDur(Number(step))} from ${fmtTime(h.from, tz)}, by request time; a column lists its exchanges, slowest first.`),
    charts.length ? el('div', { class: 'cards', id: 'lseries' }, charts) : el('p', { class: 'muted' }, 'no exchange records in this window'));
}
