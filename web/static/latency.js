// Latency explorer: /api/v1/latency grouped by any keys (proto, server,
// server_ip, client_ip, class or a record field), each group's count and
// percentiles with the network / server / transfer parts. Every cell links
// to the exchanges view filtered to exactly that group (groupExpr), slowest
// first: the count to all of them, a percentile to those at or above it, a
// part to the group sorted by that part.
import { el, svg, api, link, jsonLines, parseJSON, fmtDur, fmtCount, fmtTime, big, setStatus, errorBox } from './util.js';

const presets = ['proto', 'server', 'client_ip', 'class', 'proto,server', 'proto,class'];

// quote writes a value of the message language (docs/messages.md): inside
// quotes only \" and \\ are escapes.
export function quote(v) {
  return '"' + String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
}

// groupExpr: the message expression that selects exactly the records of
// one latency group. The aggregator skips tcp flow records; a field's
// empty key holds the records without it (or with it empty), which
// "not F ~ ." selects (a missing field never matches ~).
export function groupExpr(key, base) {
  const terms = ['proto != tcp', 'class != flow'];
  for (const [k, v] of Object.entries(key)) {
    switch (k) {
      case 'proto': case 'class': terms.push(`${k} ${quote(v)}`); break;
      case 'server': terms.push(`server ${v}`); break;
      case 'server_ip': terms.push(`server ${v}`); break;
      case 'client_ip': terms.push(`client ${v}`); break;
      default: terms.push(v === '' ? `not ${k} ~ "."` : `${k} = ${quote(v)}`);
    }
  }
  const e = terms.join(' and ');
  return base ? `(${base}) and ${e}` : e;
}

function parts(g, maxP) {
  const w = 200;
  let at = 0;
  const rects = [];
  for (const cls of ['network', 'server', 'transfer']) {
    const v = g[cls + '_ns']?.p50;
    if (v === undefined || Number(v) < 0) continue;
    const len = (Number(v) / maxP) * w;
    rects.push(svg('rect', { x: at, y: 2, width: Math.max(0.5, len), height: 14, class: 'part ' + cls }, svg('title', {}, `${cls} p50 ${fmtDur(v)}`)));
    at += len;
  }
  return svg('svg', { class: 'bar', viewBox: `0 0 ${w} 18`, width: w, height: 18 }, rects);
}

export async function latency(main, params) {
  const st = Object.fromEntries(params);
  const by = st.by || 'proto,server';
  const win = { from: st.from, to: st.to, tz: st.tz };
  const fBy = el('input', { name: 'by', id: 'by', value: by, size: 24, spellcheck: 'false' });
  const fExpr = el('input', { name: 'expr', id: 'lexpr', value: st.expr || '', size: 40, placeholder: 'expression (optional)', spellcheck: 'false' });
  const fFrom = el('input', { name: 'from', id: 'lfrom', value: st.from || '', size: 28, placeholder: 'from' });
  const fTo = el('input', { name: 'to', id: 'lto', value: st.to || '', size: 28, placeholder: 'to' });
  const form = el('form', { class: 'query', id: 'latency-form' },
    el('label', {}, 'Group by ', fBy), ' ', el('label', {}, 'Where ', fExpr), ' ',
    el('label', {}, 'From ', fFrom), ' ', el('label', {}, 'To ', fTo), ' ', el('button', { type: 'submit' }, 'Group'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = link('latency', { ...st, by: fBy.value.replace(/\s+/g, ''), expr: fExpr.value, from: fFrom.value, to: fTo.value });
  });
  const quick = el('p', { class: 'presets' }, 'by: ', presets.map((p, i) => [i ? ' · ' : '',
    p === by ? el('b', {}, p) : el('a', { href: link('latency', { ...st, by: p }), 'data-by': p }, p)]),
  ' (any record field too: method, status, qtype, command, host, …)');
  const out = el('div', { id: 'latency-out' }, el('p', { class: 'muted' }, 'Loading…'));
  const hmOut = el('section', { id: 'heatmap-out' }, el('p', { class: 'muted' }, 'Loading the heatmap…'));
  main.replaceChildren(el('h1', {}, 'Latency explorer'), form, quick, out, hmOut);
  const hmDone = heatmapSection(hmOut, st);

  const t0 = performance.now();
  let groups;
  try {
    groups = jsonLines(await (await api('/api/v1/latency', { by, expr: st.expr, from: st.from, to: st.to })).text());
  } catch (e) {
    out.replaceChildren(errorBox(e));
    return;
  }
  if (groups.length === 0) {
    out.replaceChildren(el('p', { class: 'muted', id: 'latency-empty' }, 'no exchange records in this window'));
    await hmDone;
    return;
  }
  const keys = Object.keys(groups[0].key);
  const maxP = Math.max(1, ...groups.map((g) => Number(g.latency_ns.p99)));
  const ex = (expr, sort) => link('exchanges', { ...win, expr, sort: sort || '-latency_ns' });
  const ns = (v) => (v === undefined ? '' : String(v));
  const cell = (key, v, expr, sort) => el('td', { class: 'num', 'data-key': key, 'data-ns': ns(v) },
    v === undefined || Number(v) < 0 ? fmtDur(v) : el('a', { href: ex(expr, sort) }, fmtDur(v)));
  const rows = groups.map((g) => {
    const ge = groupExpr(g.key, st.expr);
    const atLeast = (v) => `${ge} and latency >= ${Number(v)}ns`;
    return el('tr', { 'data-group': JSON.stringify(g.key), 'data-expr': ge },
      keys.map((k) => el('td', { class: 'key', 'data-key': 'key.' + k }, el('a', { href: ex(ge) }, g.key[k] === '' ? '(none)' : String(g.key[k])))),
      el('td', { class: 'num', 'data-key': 'count' }, el('a', { href: ex(ge), class: 'group' }, fmtCount(g.count))),
      el('td', { class: 'num', 'data-key': 'no_response' }, g.no_response ? el('a', { href: ex(ge + ' and class no_response') }, fmtCount(g.no_response)) : '0'),
      ['p50', 'p90', 'p99', 'max'].map((q) => cell(q, g.latency_ns[q], atLeast(g.latency_ns[q]))),
      cell('network_p50', g.network_ns?.p50, ge, '-network_ns'), cell('network_p99', g.network_ns?.p99, ge, '-network_ns'),
      cell('server_p50', g.server_ns?.p50, ge, '-server_ns'), cell('server_p99', g.server_ns?.p99, ge, '-server_ns'),
      cell('transfer_p50', g.transfer_ns?.p50, ge, '-transfer_ns'),
      el('td', {}, parts(g, maxP)),
      el('td', {}, g.slowest_id ? el('a', { href: link('exchange', { id: g.slowest_id, tz: st.tz }), class: 'slowest' }, 'slowest') : ''),
      el('td', {}, el('a', { href: link('latency', { ...st, hm: JSON.stringify(g.key) }), class: 'hm' }, 'heatmap')));
  });
  const head = el('tr', {}, keys.map((k) => el('th', {}, k)),
    ['exchanges', 'no response', 'p50', 'p90', 'p99', 'max', 'network p50', 'network p99', 'server p50', 'server p99', 'transfer p50', 'parts (p50)', '', ''].map((h) => el('th', {}, h)));
  out.replaceChildren(
    el('p', { id: 'latency-count', 'data-count': String(groups.length) }, `${fmtCount(groups.length)} groups. Latency is the request's last packet to the response's last; network + server + transfer = latency per exchange, but their percentiles need not add up.`),
    el('table', { class: 'grid', id: 'explorer-table' }, el('thead', {}, head), el('tbody', {}, rows)));
  await hmDone;
  setStatus(`latency loaded in ${Math.round(performance.now() - t0)} ms`);
}

// heatmapSection draws the heatmap of the group in the URL's hm (a group's
// key as JSON; without it, every exchange the explorer groups): columns of
// time (the request's first packet), rows of latency (1-2-5 steps, from
// /api/v1/heatmap), each cell's colour its count on a log scale. A cell
// links to the exchanges view filtered to exactly its records: the group's
// expression, req_first within the column and latency within the row, with
// the column as the URL's from and to.
async function heatmapSection(out, st) {
  let key = {};
  if (st.hm) {
    try { key = JSON.parse(st.hm); } catch (e) { out.replaceChildren(errorBox('hm: not a group key: ' + e.message)); return; }
    if (key === null || typeof key !== 'object' || Array.isArray(key)) { out.replaceChildren(errorBox('hm: not a group key')); return; }
  }
  const ge = groupExpr(key, st.expr);
  const label = Object.keys(key).length ? Object.entries(key).map(([k, v]) => `${k} ${v === '' ? '(none)' : v}`).join(', ') : 'all exchanges';
  let h;
  try {
    h = parseJSON(await (await api('/api/v1/heatmap', { expr: ge, from: st.from, to: st.to, cols: st.cols })).text());
  } catch (e) { out.replaceChildren(errorBox(e)); return; }
  const from = big(h.from); const step = big(h.step);
  const cols = Number(h.cols);
  const bounds = h.bounds.map(Number);
  const counts = new Map();
  let maxN = 1; let lo = bounds.length; let hi = -1;
  for (const [c, r, n] of h.cells) {
    counts.set(c * bounds.length + r, n);
    maxN = Math.max(maxN, n); lo = Math.min(lo, r); hi = Math.max(hi, r);
  }
  const noLat = h.no_latency.map(Number);
  const hasNoLat = noLat.some((n) => n > 0);
  const head = el('h2', {}, 'Heatmap: ', el('span', { id: 'heatmap-group' }, label));
  const note = el('p', { class: 'muted', id: 'heatmap-count', 'data-count': String(h.count), 'data-from': String(h.from), 'data-to': String(h.to), 'data-step': String(h.step), 'data-expr': ge },
    `${fmtCount(h.count)} exchanges, ${cols} columns of ${fmtDur(Number(step))} from ${fmtTime(from)}; a cell lists its exchanges.` +
    (Number(h.outside) ? ` ${fmtCount(h.outside)} began outside the window and are not drawn.` : ''));
  if (hi < 0 && !hasNoLat) { out.replaceChildren(head, note, el('p', { class: 'muted', id: 'heatmap-empty' }, 'nothing to draw')); return; }
  if (hi < 0) { lo = 0; hi = 0; }
  const rows = [];
  for (let r = hi; r >= lo; r--) rows.push(r);
  const W = 1000; const LEFT = 90; const CH = 16; const TOP = 6;
  const cw = (W - LEFT - 10) / cols;
  const nRows = rows.length + (hasNoLat ? 1 : 0);
  const H = TOP + nRows * CH + 34;
  const g = [];
  const colFrom = (c) => from + BigInt(c) * step;
  const cellLink = (c, extra) => {
    const a = colFrom(c); const b = a + step;
    return link('exchanges', { expr: `${ge} and req_first >= ${a} and req_first < ${b} and ${extra}`, from: a.toString(), to: (b - 1n).toString(), sort: '-latency_ns', tz: st.tz });
  };
  const shade = (n) => (0.12 + 0.88 * Math.log1p(n) / Math.log1p(maxN)).toFixed(3);
  rows.forEach((r, i) => {
    const y = TOP + i * CH;
    const loNs = bounds[r]; const hiNs = r + 1 < bounds.length ? bounds[r + 1] : null;
    g.push(svg('text', { x: LEFT - 6, y: y + CH - 4, class: 'tick', 'text-anchor': 'end' }, hiNs === null ? `≥ ${fmtDur(loNs)}` : fmtDur(loNs)));
    const cond = `latency >= ${loNs}ns` + (hiNs === null ? '' : ` and latency < ${hiNs}ns`);
    for (let c = 0; c < cols; c++) {
      const n = counts.get(c * bounds.length + r);
      if (!n) continue;
      const a0 = colFrom(c);
      g.push(svg('a', { href: cellLink(c, cond), class: 'cell', 'data-col': c, 'data-row': r, 'data-count': n, 'data-lo': loNs, 'data-hi': hiNs === null ? '' : hiNs },
        svg('rect', { x: LEFT + c * cw, y, width: Math.max(1, cw - 0.5), height: CH - 1, class: 'hm', 'fill-opacity': shade(n) },
          svg('title', {}, `${fmtCount(n)} exchanges, latency ${hiNs === null ? '≥ ' + fmtDur(loNs) : fmtDur(loNs) + ' – ' + fmtDur(hiNs)}, from ${fmtTime(a0)}`))));
    }
  });
  if (hasNoLat) {
    const y = TOP + rows.length * CH;
    g.push(svg('text', { x: LEFT - 6, y: y + CH - 4, class: 'tick', 'text-anchor': 'end' }, 'no response'));
    noLat.forEach((n, c) => {
      if (!n) return;
      g.push(svg('a', { href: cellLink(c, 'not latency >= 0ns'), class: 'cell nolat', 'data-col': c, 'data-row': 'none', 'data-count': n },
        svg('rect', { x: LEFT + c * cw, y, width: Math.max(1, cw - 0.5), height: CH - 1, class: 'hm nolat', 'fill-opacity': shade(n) },
          svg('title', {}, `${fmtCount(n)} exchanges without a response, from ${fmtTime(colFrom(c))}`))));
    });
  }
  const yAxis = TOP + nRows * CH;
  g.push(svg('line', { x1: LEFT, x2: W - 10, y1: yAxis + 1, y2: yAxis + 1, class: 'axis' }));
  for (const c of [0, Math.floor(cols / 2), cols]) {
    const x = LEFT + c * cw;
    g.push(svg('text', { x, y: yAxis + 16, class: 'tick', 'text-anchor': c === 0 ? 'start' : c === cols ? 'end' : 'middle' }, fmtTime(colFrom(c))));
  }
  const legend = el('p', { class: 'muted' }, `darker: more exchanges (log scale, up to ${fmtCount(maxN)} a cell). `,
    el('a', { href: link('exchanges', { expr: ge, from: st.from, to: st.to, sort: '-latency_ns', tz: st.tz }), id: 'heatmap-all' }, 'all of them, slowest first'));
  out.replaceChildren(head, note,
    svg('svg', { id: 'heatmap', class: 'heatmap', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'latency heatmap' }, g), legend);
}
