// Exchanges: the records a message expression selects in a time window,
// sortable by any column, paged. The API streams records in store order;
// the view loads up to `cap` of them (default 10000) and sorts and pages
// those, saying so when more matched.
import { el, api, link, jsonLines, fmtTime, fmtDur, fmtCount, big, setStatus, errorBox } from './util.js';
import { summary } from './records.js';

const PAGE = 100;
const DEFAULT_CAP = 10000;

const columns = [
  { key: 'req_first_ns', title: 'Time', kind: 'time' },
  { key: 'proto', title: 'Proto' },
  { key: 'client', title: 'Client' },
  { key: 'server', title: 'Server' },
  { key: 'summary', title: 'Summary' },
  { key: 'latency_ns', title: 'Latency', kind: 'dur' },
  { key: 'network_ns', title: 'Network', kind: 'dur' },
  { key: 'server_ns', title: 'Server time', kind: 'dur' },
  { key: 'transfer_ns', title: 'Transfer', kind: 'dur' },
  { key: 'class', title: 'Class' },
];

function cmp(a, b) {
  if (typeof a === 'bigint' || typeof b === 'bigint') { a = big(a); b = big(b); }
  if (a === b) return 0;
  if (a === undefined || a === null) return 1;
  if (b === undefined || b === null) return -1;
  return a < b ? -1 : 1;
}

export async function exchanges(main, params) {
  const st = Object.fromEntries(params);
  const expr = st.expr || '';
  const sort = st.sort || 'req_first_ns';
  const page = Math.max(0, parseInt(st.page || '0', 10) || 0);
  const cap = Math.max(1, parseInt(st.cap || String(DEFAULT_CAP), 10) || DEFAULT_CAP);
  const go = (changes) => { location.hash = link('exchanges', { ...st, ...changes }); };

  const fExpr = el('input', { name: 'expr', id: 'expr', value: expr, size: 60, placeholder: 'proto http and latency > 50ms', spellcheck: 'false' });
  const fFrom = el('input', { name: 'from', id: 'from', value: st.from || '', size: 32, placeholder: 'from (RFC 3339, -15m, ns)' });
  const fTo = el('input', { name: 'to', id: 'to', value: st.to || '', size: 32, placeholder: 'to' });
  const fTz = el('input', { name: 'tz', id: 'tz', value: st.tz || 'UTC', size: 16 });
  const form = el('form', { class: 'query', id: 'exchanges-form' },
    el('label', {}, 'Expression ', fExpr), ' ',
    el('label', {}, 'From ', fFrom), ' ', el('label', {}, 'To ', fTo), ' ',
    el('label', {}, 'Zone ', fTz), ' ', el('button', { type: 'submit' }, 'Search'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    go({ expr: fExpr.value, from: fFrom.value, to: fTo.value, tz: fTz.value === 'UTC' ? '' : fTz.value, page: '' });
  });
  const out = el('div', { id: 'exchanges-out' }, el('p', { class: 'muted' }, 'Loading…'));
  main.replaceChildren(el('h1', {}, 'Exchanges'), form, out);

  const t0 = performance.now();
  let recs;
  try {
    const r = await api('/api/v1/messages', { expr, from: st.from, to: st.to, limit: cap + 1 });
    recs = jsonLines(await r.text());
  } catch (e) {
    out.replaceChildren(errorBox(e));
    return;
  }
  const truncated = recs.length > cap;
  if (truncated) recs = recs.slice(0, cap);
  for (const r of recs) r.summary = summary(r);
  const desc = sort.startsWith('-');
  const key = desc ? sort.slice(1) : sort;
  recs.sort((a, b) => {
    const c = cmp(a[key], b[key]);
    // Unknown durations (-1) go last either way.
    if (key.endsWith('_ns') && !key.startsWith('req_') && !key.startsWith('resp_')) {
      const ua = Number(a[key]) < 0; const ub = Number(b[key]) < 0;
      if (ua !== ub) return ua ? 1 : -1;
    }
    return desc ? -c : c;
  });
  const pages = Math.max(1, Math.ceil(recs.length / PAGE));
  const p = Math.min(page, pages - 1);
  const rows = recs.slice(p * PAGE, (p + 1) * PAGE);

  const head = el('tr', {}, columns.map((c) => {
    const next = sort === c.key ? '-' + c.key : c.key;
    const mark = key === c.key ? (desc ? ' ▼' : ' ▲') : '';
    return el('th', {}, el('a', { href: link('exchanges', { ...st, sort: next, page: '' }), 'data-sort': c.key }, c.title + mark));
  }), el('th', {}, 'ID'));
  const body = el('tbody', {}, rows.map((r) => el('tr', { 'data-id': r.id },
    columns.map((c) => {
      const v = r[c.key];
      if (c.kind === 'time') return el('td', { class: 'time', 'data-ns': String(v) }, el('a', { href: link('exchange', { id: r.id, tz: st.tz }) }, fmtTime(v)));
      if (c.kind === 'dur') return el('td', { class: 'num', 'data-ns': String(v) }, fmtDur(v));
      if (c.key === 'class') return el('td', { class: 'class ' + String(v) }, String(v ?? ''));
      return el('td', {}, v === undefined ? '' : String(v));
    }),
    el('td', { class: 'mono' }, el('a', { href: link('exchange', { id: r.id, tz: st.tz }) }, r.id)))));
  const nav = el('p', { class: 'pager' },
    p > 0 ? el('a', { href: link('exchanges', { ...st, page: p - 1 }), id: 'prev' }, '← previous') : '',
    ` page ${p + 1} of ${pages} `,
    p + 1 < pages ? el('a', { href: link('exchanges', { ...st, page: p + 1 }), id: 'next' }, 'next →') : '');
  const count = el('p', { id: 'count', 'data-count': String(recs.length), 'data-truncated': String(truncated) },
    `${fmtCount(recs.length)} exchanges` + (truncated ? ` (the first ${fmtCount(cap)} loaded: more matched; narrow the window or the expression)` : '') +
    ` · rows ${rows.length ? p * PAGE + 1 : 0}–${p * PAGE + rows.length}`);
  out.replaceChildren(count, el('table', { class: 'grid', id: 'exchanges-table' }, el('thead', {}, head), body), nav);
  setStatus(`loaded in ${Math.round(performance.now() - t0)} ms`);
}
