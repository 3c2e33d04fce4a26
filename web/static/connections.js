// Connections: the TCP connection records (proto tcp, class flow; docs/
// analytics.md "Connections"), one per connection when it ended, with its
// handshake legs, retransmissions, resets, bytes and packets each way, and
// how it closed. Each links to its packets (the connection's filter over
// its life) and to its exchanges (the records of its two ends that began
// within its life). Like the exchanges view, the server sorts and pages
// them (/api/v1/exchanges), over any number of connections.
import { el, api, link, parseJSON, fmtTime, fmtDur, fmtCount, big, setStatus, errorBox } from './util.js';
import { connFilter } from './records.js';

const PAGE = 100;

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

export async function connections(main, params) {
  const st = Object.fromEntries(params);
  const sort = st.sort || 'req_first_ns';
  const page = Math.max(0, parseInt(st.page || '0', 10) || 0);
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
  let ans;
  try {
    ans = parseJSON(await (await api('/api/v1/exchanges', { expr, from: st.from, to: st.to, sort, offset: page * PAGE, limit: PAGE })).text());
  } catch (e) {
    out.replaceChildren(errorBox(e));
    return;
  }
  const total = Number(ans.total);
  const rows = ans.records;
  for (const r of rows) r.duration_ns = end(r) - big(r.req_first_ns);
  const desc = sort.startsWith('-');
  const key = desc ? sort.slice(1) : sort;
  const pages = Math.max(1, Math.ceil(total / PAGE));
  const p = page;

  const head = el('tr', {}, columns.map((c) => {
    const first = c.kind === 'dur' ? '-' + c.key : c.key;
    const next = key === c.key ? (desc ? c.key : '-' + c.key) : first;
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
    p > 0 ? [el('a', { href: link('connections', { ...st, page: '' }), id: 'cfirst' }, '⇤ first'), el('a', { href: link('connections', { ...st, page: p - 1 }), id: 'cprev' }, '← previous')] : '',
    ` page ${fmtCount(p + 1)} of ${fmtCount(pages)} `,
    p + 1 < pages ? [el('a', { href: link('connections', { ...st, page: p + 1 }), id: 'cnext' }, 'next →'), el('a', { href: link('connections', { ...st, page: pages - 1 }), id: 'clast' }, 'last ⇥')] : '');
  const count = el('p', { id: 'ccount', 'data-count': String(total), 'data-truncated': 'false' },
    `${fmtCount(total)} connections · rows ${rows.length ? fmtCount(p * PAGE + 1) : 0}–${fmtCount(p * PAGE + rows.length)}`);
  out.replaceChildren(count, el('div', { class: 'scroll' }, el('table', { class: 'grid', id: 'connections-table' }, el('thead', {}, head), body)), nav);
  setStatus(`loaded in ${Math.round(performance.now() - t0)} ms`);
}
