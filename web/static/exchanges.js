// Exchanges: the records a message expression selects in a time window,
// sorted by any column and paged by the server (/api/v1/exchanges: any
// number of records, one page of 100 sent), with a strip of their count
// over time (/api/v1/heatmap's columns) on which a drag sets the window.
import { el, svg, api, link, parseJSON, fmtTime, fmtDur, fmtCount, big, setStatus, errorBox } from './util.js';
import { summary } from './records.js';

const PAGE = 100;
const STRIP_COLS = 120;

// Durations sort slowest first on the first click.
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

// strip draws the selection's count over the window in columns (by the
// request's first packet); dragging across it sets from and to to the
// columns dragged over.
function strip(h, st) {
  const W = 1000; const H = 48; const PAD = 2;
  const cols = Number(h.cols);
  const from = big(h.from); const step = big(h.step);
  const per = new Array(cols).fill(0);
  for (const [c, , n] of h.cells) per[c] += Number(n);
  h.no_latency.forEach((n, c) => { per[c] += Number(n); });
  const max = Math.max(1, ...per);
  const cw = (W - 2 * PAD) / cols;
  const colFrom = (c) => from + BigInt(c) * step;
  const g = [];
  per.forEach((n, c) => {
    if (!n) return;
    const bh = Math.max(1, (n / max) * (H - 2));
    g.push(svg('rect', { x: PAD + c * cw, y: H - bh, width: Math.max(0.5, cw - 0.3), height: bh, class: 'strip-bar', 'data-col': c, 'data-count': n },
      svg('title', {}, `${fmtCount(n)} from ${fmtTime(colFrom(c))}`)));
  });
  const sel = svg('rect', { x: 0, y: 0, width: 0, height: H - 12, class: 'strip-sel', visibility: 'hidden' });
  g.push(sel);
  const s = svg('svg', { id: 'brush', class: 'strip', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none',
    'data-from': String(h.from), 'data-step': String(h.step), 'data-cols': String(cols), role: 'img', 'aria-label': 'exchanges over time: drag to choose a window' }, g);
  const colAt = (ev) => {
    const r = s.getBoundingClientRect();
    const x = ((ev.clientX - r.left) / r.width) * W;
    return Math.min(cols - 1, Math.max(0, Math.floor((x - PAD) / cw)));
  };
  let c0 = null;
  s.addEventListener('pointerdown', (ev) => {
    c0 = colAt(ev);
    if (s.setPointerCapture && ev.pointerId !== undefined) { try { s.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic */ } }
    sel.setAttribute('visibility', 'visible');
    sel.setAttribute('x', PAD + c0 * cw); sel.setAttribute('width', cw);
    ev.preventDefault();
  });
  s.addEventListener('pointermove', (ev) => {
    if (c0 === null) return;
    const c = colAt(ev);
    const a = Math.min(c0, c); const b = Math.max(c0, c);
    sel.setAttribute('x', PAD + a * cw); sel.setAttribute('width', (b - a + 1) * cw);
  });
  s.addEventListener('pointerup', (ev) => {
    if (c0 === null) return;
    const c = colAt(ev);
    const a = Math.min(c0, c); const b = Math.max(c0, c);
    c0 = null;
    location.hash = link('exchanges', { ...st, from: colFrom(a).toString(), to: (colFrom(b + 1) - 1n).toString(), page: '' });
  });
  return el('div', {}, s, el('div', { class: 'strip-axis' }, el('span', {}, fmtTime(from)), el('span', {}, fmtTime(colFrom(cols)))));
}

export async function exchanges(main, params) {
  const st = Object.fromEntries(params);
  const expr = st.expr || '';
  const sort = st.sort || 'req_first_ns';
  const page = Math.max(0, parseInt(st.page || '0', 10) || 0);
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
  const brush = el('div', { id: 'brush-out' }, el('p', { class: 'muted' }, 'Loading the time strip…'));
  const out = el('div', { id: 'exchanges-out' }, el('p', { class: 'muted' }, 'Loading…'));
  main.replaceChildren(el('h1', {}, 'Exchanges'), form, brush, out);

  const t0 = performance.now();
  // The strip spans the window (the message store's span without one): a
  // drag zooms in, "the whole time" out.
  const stripDone = (async () => {
    try {
      const h = parseJSON(await (await api('/api/v1/heatmap', { expr, from: st.from, to: st.to, cols: STRIP_COLS })).text());
      brush.replaceChildren(strip(h, st), el('p', { class: 'muted strip-note' }, 'drag across the strip to zoom into a window',
        (st.from || st.to) ? [' · ', el('a', { href: link('exchanges', { ...st, from: '', to: '', page: '' }), id: 'brush-clear' }, 'the whole time')] : ''));
    } catch (e) { brush.replaceChildren(errorBox(e)); }
  })();
  let ans;
  try {
    ans = parseJSON(await (await api('/api/v1/exchanges', { expr, from: st.from, to: st.to, sort, offset: page * PAGE, limit: PAGE })).text());
  } catch (e) {
    out.replaceChildren(errorBox(e));
    await stripDone;
    return;
  }
  const total = Number(ans.total);
  const rows = ans.records;
  const desc = sort.startsWith('-');
  const key = desc ? sort.slice(1) : sort;
  const pages = Math.max(1, Math.ceil(total / PAGE));
  const p = page;

  const head = el('tr', {}, columns.map((c) => {
    const first = c.kind === 'dur' ? '-' + c.key : c.key;
    const next = key === c.key ? (desc ? c.key : '-' + c.key) : first;
    const mark = key === c.key ? (desc ? ' ▼' : ' ▲') : '';
    return el('th', {}, el('a', { href: link('exchanges', { ...st, sort: next, page: '' }), 'data-sort': c.key }, c.title + mark));
  }), el('th', {}, 'ID'));
  const body = el('tbody', {}, rows.map((r) => el('tr', { 'data-id': r.id },
    columns.map((c) => {
      const v = c.key === 'summary' ? summary(r) : r[c.key];
      if (c.kind === 'time') return el('td', { class: 'time', 'data-ns': String(v) }, el('a', { href: link('exchange', { id: r.id, tz: st.tz }) }, fmtTime(v)));
      if (c.kind === 'dur') return el('td', { class: 'num', 'data-ns': String(v) }, fmtDur(v));
      if (c.key === 'class') return el('td', { class: 'class ' + String(v) }, String(v ?? ''));
      return el('td', {}, v === undefined ? '' : String(v));
    }),
    el('td', { class: 'mono' }, el('a', { href: link('exchange', { id: r.id, tz: st.tz }) }, r.id)))));
  const nav = el('p', { class: 'pager' },
    p > 0 ? [el('a', { href: link('exchanges', { ...st, page: '' }), id: 'first' }, '⇤ first'), el('a', { href: link('exchanges', { ...st, page: p - 1 }), id: 'prev' }, '← previous')] : '',
    ` page ${fmtCount(p + 1)} of ${fmtCount(pages)} `,
    p + 1 < pages ? [el('a', { href: link('exchanges', { ...st, page: p + 1 }), id: 'next' }, 'next →'), el('a', { href: link('exchanges', { ...st, page: pages - 1 }), id: 'last' }, 'last ⇥')] : '');
  const count = el('p', { id: 'count', 'data-count': String(total), 'data-truncated': 'false', 'data-page': String(p), 'data-pages': String(pages) },
    `${fmtCount(total)} exchanges · rows ${rows.length ? fmtCount(p * PAGE + 1) : 0}–${fmtCount(p * PAGE + rows.length)}, sorted by ${key}${desc ? ', descending' : ''}`);
  out.replaceChildren(count, el('table', { class: 'grid', id: 'exchanges-table' }, el('thead', {}, head), body), nav);
  await stripDone;
  setStatus(`loaded in ${Math.round(performance.now() - t0)} ms`);
}
