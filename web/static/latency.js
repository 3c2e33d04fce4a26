// Latency explorer: /api/v1/latency grouped by any keys (proto, server,
// server_ip, client_ip, class or a record field), each group's count and
// percentiles with the network / server / transfer parts. Every cell links
// to the exchanges view filtered to exactly that group (groupExpr), slowest
// first: the count to all of them, a percentile to those at or above it, a
// part to the group sorted by that part.
import { el, svg, api, link, jsonLines, fmtDur, fmtCount, setStatus, errorBox } from './util.js';

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
  main.replaceChildren(el('h1', {}, 'Latency explorer'), form, quick, out);

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
      el('td', {}, g.slowest_id ? el('a', { href: link('exchange', { id: g.slowest_id, tz: st.tz }), class: 'slowest' }, 'slowest') : ''));
  });
  const head = el('tr', {}, keys.map((k) => el('th', {}, k)),
    ['exchanges', 'no response', 'p50', 'p90', 'p99', 'max', 'network p50', 'network p99', 'server p50', 'server p99', 'transfer p50', 'parts (p50)', ''].map((h) => el('th', {}, h)));
  out.replaceChildren(
    el('p', { id: 'latency-count', 'data-count': String(groups.length) }, `${fmtCount(groups.length)} groups. Latency is the request's last packet to the response's last; network + server + transfer = latency per exchange, but their percentiles need not add up.`),
    el('table', { class: 'grid', id: 'explorer-table' }, el('thead', {}, head), el('tbody', {}, rows)));
  setStatus(`latency loaded in ${Math.round(performance.now() - t0)} ms`);
}
