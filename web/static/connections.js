// Connections: the TCP connection records (proto tcp, class flow; docs/
// analytics.md "Connections"), one per connection when it ended, with its
// handshake legs, retransmissions, resets, bytes and packets each way, and
// how it closed. Each links to its packets (the connection's filter over
// its life) and to its exchanges (the records of its two ends that began
// within its life). Like the exchanges view it loads up to `cap` records
// and sorts and pages those.
import { el, api, link, jsonLines, fmtTime, fmtDur, fmtCount, big, setStatus, errorBox } from './util.js';
import { connFilter } from './records.js';

const PAGE = 100;
const DEFAULT_CAP = 10000;

const columns = [
  { key: 'req_first_ns', title: 'Start', kind: 'time' },
  { key: 'client', title: 'Client' },
  { key: 'server', title: 'Server' },
  { key: 'vlan', title: 'VLAN' },
  { key: 'app', title: 'App' },
  { key: 'close', title: 'Close' },
  { key: 'duration_ns', title: 'Duration', kind: 'dur' },
  { key: 'hs_server_ns', title: 'SYN→SYN/ACK', kind: 'dur' },
  { key: 'hs_client_ns', title: 'SYN/ACK→ACK', kind: 'dur' },
  { key: 'req_bytes', title: 'Bytes c→s', kind: 'count' },
  { key: 'resp_bytes', title: 'Bytes s→c', kind: 'count' },
  { key: 'req_packets', title: 'Pkts c→s', kind: 'count' },
  { key: 'resp_packets', title: 'Pkts s→c', kind: 'count' },
  { key: 'retrans', title: 'Retrans', kind: 'count' },
  { key: 'ooo', title: 'Out of order', kind: 'count' },
  { key: 'dupack', title: 'Dup ACKs', kind: 'count' },
  { key: 'zerowin', title: 'Zero win', kind: 'count' },
  { key: 'rst', title: 'RST', kind: 'count' },
  { key: 'gap_bytes', title: 'Gap bytes', kind: 'count' },
];

// end: the connection's last packet (its start when it has no later one).
function end(r) {
  const a = big(r.req_first_ns); const b = big(r.resp_last_ns);
  return b > a ? b : a;
}

// exchangesExpr: the exchange records of the connection: its two ends,
// not itself, begun within its life (a port pair can be reused later).
export function exchangesExpr(r) {
  return `client ${r.client} and server ${r.server} and proto != tcp and req_first >= ${big(r.req_first_ns)} and req_first <= ${end(r)}`;
}

function cmp(a, b) {
  if (typeof a === 'bigint' || typeof b === 'bigint') { a = big(a); b = big(b); }
  if (a === b) return 0;
  if (a === undefined || a === null) return 1;
  if (b === undefined || b === null) return -1;
  return a < b ? -1 : 1;
}

export async function connections(main, params) {
  const st = Object.fromEntries(params);
  const sort = st.sort || 'req_first_ns';
  const page = Math.max(0, parseInt(st.page || '0', 10) || 0);
  const cap = Math.max(1, parseInt(st.cap || String(DEFAULT_CAP), 10) || DEFAULT_CAP);
  const fExpr = el('input', { name: 'expr', id: 'cexpr', value: st.expr || '', size: 50, placeholder: 'rst > 0, retrans > 0, server 10.0.0.5:80, close = idle', spellcheck: 'false' });
  const fFrom = el('input', { name: 'from', id: 'cfrom', value: st.from || '', size: 30, placeholder: 'from' });
  const fTo = el('input', { name: 'to', id: 'cto', value: st.to || '', size: 30, placeholder: 'to' });
  const form = el('form', { class: 'query', id: 'connections-form' },
    el('label', {}, 'Where ', fExpr), ' ', el('label', {}, 'From ', fFrom), ' ', el('label', {}, 'To ', fTo), ' ',
    el('button', { type: 'submit' }, 'Search'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = link('connections', { ...st, expr: fExpr.value, from: fFrom.value, to: fTo.value, page: '' });
  });
  const out = el('div', { id: 'connections-out' }, el('p', { class: 'muted' }, 'Loading…'));
  main.replaceChildren(el('h1', {}, 'Connections'), form, out);

  const expr = st.expr ? `(${st.expr}) and proto tcp` : 'proto tcp';
  const t0 = performance.now();
  let recs;
  try {
    recs = jsonLines(await (await api('/api/v1/messages', { expr, from: st.from, to: st.to, limit: cap + 1 })).text());
  } catch (e) {
    out.replaceChildren(errorBox(e));
    return;
  }
  const truncated = recs.length > cap;
  if (truncated) recs = recs.slice(0, cap);
  for (const r of recs) r.duration_ns = end(r) - big(r.req_first_ns);
  const desc = sort.startsWith('-');
  const key = desc ? sort.slice(1) : sort;
  recs.sort((a, b) => {
    // Unknown legs (-1: no handshake seen) go last either way.
    const ua = Number(a[key]) < 0; const ub = Number(b[key]) < 0;
    if (ua !== ub) return ua ? 1 : -1;
    const c = cmp(a[key], b[key]);
    return desc ? -c : c;
  });
  const pages = Math.max(1, Math.ceil(recs.length / PAGE));
  const p = Math.min(page, pages - 1);
  const rows = recs.slice(p * PAGE, (p + 1) * PAGE);

  const head = el('tr', {}, columns.map((c) => {
    const next = sort === c.key ? '-' + c.key : c.key;
    const mark = key === c.key ? (desc ? ' ▼' : ' ▲') : '';
    return el('th', {}, el('a', { href: link('connections', { ...st, sort: next, page: '' }), 'data-sort': c.key }, c.title + mark));
  }), el('th', {}, 'Drill down'));
  const body = el('tbody', {}, rows.map((r) => {
    const pk = link('packets', { filter: connFilter(r), from: big(r.req_first_ns).toString(), to: end(r).toString(), tz: st.tz });
    return el('tr', { 'data-id': r.id },
      columns.map((c) => {
        const v = r[c.key];
        if (c.kind === 'time') return el('td', { class: 'time', 'data-key': c.key, 'data-v': String(v) }, el('a', { href: pk }, fmtTime(v)));
        if (c.kind === 'dur') return el('td', { class: 'num', 'data-key': c.key, 'data-v': String(v) }, fmtDur(v));
        if (c.kind === 'count') return el('td', { class: 'num', 'data-key': c.key, 'data-v': String(v ?? '') }, v === undefined ? '' : fmtCount(v));
        return el('td', { 'data-key': c.key, 'data-v': String(v ?? '') }, v === undefined || v === 0 ? '' : String(v));
      }),
      el('td', {}, el('a', { href: pk, class: 'packets' }, 'packets'), ' · ',
        el('a', { href: link('exchanges', { expr: exchangesExpr(r), tz: st.tz, sort: '-latency_ns' }), class: 'exchanges' }, 'exchanges'), ' · ',
        el('a', { href: link('exchange', { id: r.id, tz: st.tz }), class: 'record mono' }, r.id)));
  }));
  const nav = el('p', { class: 'pager' },
    p > 0 ? el('a', { href: link('connections', { ...st, page: p - 1 }), id: 'cprev' }, '← previous') : '',
    ` page ${p + 1} of ${pages} `,
    p + 1 < pages ? el('a', { href: link('connections', { ...st, page: p + 1 }), id: 'cnext' }, 'next →') : '');
  const count = el('p', { id: 'ccount', 'data-count': String(recs.length), 'data-truncated': String(truncated) },
    `${fmtCount(recs.length)} connections` + (truncated ? ` (the first ${fmtCount(cap)} loaded: more matched; narrow the window or the expression)` : '') +
    ` · rows ${rows.length ? p * PAGE + 1 : 0}–${p * PAGE + rows.length}`);
  out.replaceChildren(count, el('div', { class: 'scroll' }, el('table', { class: 'grid', id: 'connections-table' }, el('thead', {}, head), body)), nav);
  setStatus(`loaded in ${Math.round(performance.now() - t0)} ms`);
}
