// Tiers: per front end (the server of client-facing exchanges), where its
// clients' waits went over the window: before the first backend call, in
// the calls (per backend server), after the last, and the front end's own
// time between calls; from /api/v1/tiers, which sums the tier split of
// tapvault messages --tiers. Every front end and backend server links to
// its exchanges, and its examples open as the exchange view's waterfall.
import { el, svg, api, link, jsonLines, fmtDur, fmtCount, setStatus, errorBox } from './util.js';

const pct = (x, of) => (of > 0 ? ((100 * x) / of).toFixed(1) + ' %' : '-');
// sdur: a signed duration (between calls is negative when calls overlap).
const sdur = (v) => (v < 0 ? '−' + fmtDur(-v) : fmtDur(v));

// bar: the shares of the wait stacked: before, each backend server,
// between, after (a negative between, from overlapping calls, is left out).
function bar(f) {
  const W = 200;
  const wait = Number(f.wait_ns);
  const parts = [['before', Number(f.before_ns), 'part network'],
    ...f.backends.map((b) => [`${b.proto} ${b.server}`, Number(b.ns), 'part server']),
    ['between calls', Number(f.between_ns), 'part wait'], ['after', Number(f.after_ns), 'part transfer']];
  const total = parts.reduce((a, [, v]) => a + Math.max(0, v), 0) || 1;
  let at = 0;
  const rects = [];
  parts.forEach(([name, v, cls], i) => {
    if (v <= 0) return;
    const w = (v / total) * W;
    rects.push(svg('rect', { x: at, y: 2, width: Math.max(0.5, w), height: 14, class: cls + (i % 2 ? ' alt' : '') }, svg('title', {}, `${name}: ${fmtDur(v)} (${pct(v, wait)} of the wait)`)));
    at += w;
  });
  return svg('svg', { class: 'bar', viewBox: `0 0 ${W} 18`, width: W, height: 18 }, rects);
}

export async function tiers(main, params) {
  const st = Object.fromEntries(params);
  const win = { from: st.from, to: st.to, tz: st.tz };
  const fExpr = el('input', { name: 'expr', id: 'texpr', value: st.expr || '', size: 40, placeholder: 'front exchanges (optional): proto http', spellcheck: 'false' });
  const fFrom = el('input', { name: 'from', id: 'tfrom', value: st.from || '', size: 28, placeholder: 'from' });
  const fTo = el('input', { name: 'to', id: 'tto', value: st.to || '', size: 28, placeholder: 'to' });
  const fWin = el('input', { name: 'tier_window', id: 'twin', value: st.tier_window || '', size: 6, placeholder: '10s' });
  const form = el('form', { class: 'query', id: 'tiers-form' },
    el('label', {}, 'Front exchanges ', fExpr), ' ', el('label', {}, 'From ', fFrom), ' ', el('label', {}, 'To ', fTo), ' ',
    el('label', {}, 'Window ', fWin), ' ', el('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = link('tiers', { ...st, expr: fExpr.value, from: fFrom.value, to: fTo.value, tier_window: fWin.value });
  });
  const out = el('div', { id: 'tiers-out' }, el('p', { class: 'muted' }, 'Loading…'));
  main.replaceChildren(el('h1', {}, 'Tiers'), form, out);

  const t0 = performance.now();
  let fronts;
  try {
    fronts = jsonLines(await (await api('/api/v1/tiers', { expr: st.expr, from: st.from, to: st.to, tier_window: st.tier_window })).text());
  } catch (e) { out.replaceChildren(errorBox(e)); return; }
  if (fronts.length === 0) {
    out.replaceChildren(el('p', { class: 'muted', id: 'tiers-empty' }, 'no front exchange in this window (a front exchange is a client-facing one whose server calls a backend protocol: docs/analytics.md)'));
    return;
  }
  const ex = (expr) => link('exchanges', { ...win, expr, sort: '-latency_ns' });
  const exLink = (id, cls) => el('a', { href: link('exchange', { id, tz: st.tz }), class: cls, 'data-id': id }, id.slice(0, 8));
  const frontExpr = (f) => `server ${f.front} and proto ${f.proto}` + (st.expr ? ` and (${st.expr})` : '');
  const ns = (k, v, wait) => el('td', { class: 'num', 'data-key': k, 'data-ns': String(v) }, sdur(Number(v)), el('br'), el('span', { class: 'muted' }, pct(Number(v), wait)));
  const rows = [];
  // Servers whose exchanges made no backend call are front ends only in
  // name: listed with all=1.
  const shown = st.all ? fronts : fronts.filter((f) => Number(f.with_backends) > 0);
  const hidden = fronts.length - shown.length;
  for (const f of shown) {
    const wait = Number(f.wait_ns);
    rows.push(el('tr', { class: 'front', 'data-front': f.front, 'data-proto': f.proto },
      el('td', { 'data-key': 'front' }, el('a', { href: ex(frontExpr(f)) }, f.front), ' ', el('span', { class: 'muted' }, f.proto)),
      el('td', { class: 'num', 'data-key': 'fronts', 'data-v': String(f.fronts) }, el('a', { href: ex(frontExpr(f)) }, fmtCount(f.fronts))),
      el('td', { class: 'num', 'data-key': 'with_backends', 'data-v': String(f.with_backends) }, fmtCount(f.with_backends)),
      el('td', { class: 'num', 'data-key': 'wait_ns', 'data-ns': String(f.wait_ns) }, fmtDur(wait)),
      ns('before_ns', f.before_ns, wait), ns('backend_ns', f.backend_ns, wait), ns('between_ns', f.between_ns, wait), ns('after_ns', f.after_ns, wait),
      el('td', { class: 'num', 'data-key': 'no_backend_wait_ns', 'data-ns': String(f.no_backend_wait_ns) }, fmtDur(Number(f.no_backend_wait_ns))),
      el('td', {}, bar(f)),
      el('td', { class: 'examples' }, f.examples.map((id, i) => [i ? ' ' : '', exLink(id, 'example')]))));
    for (const b of f.backends) {
      rows.push(el('tr', { class: 'backend', 'data-front': f.front, 'data-proto': f.proto, 'data-backend': `${b.proto} ${b.server}` },
        el('td', { class: 'indent' }, '↳ ', el('a', { href: ex(`server ${b.server} and proto ${b.proto} and client ${f.front.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1')}`) }, `${b.proto} ${b.server}`)),
        el('td', { class: 'num', 'data-key': 'calls', 'data-v': String(b.calls) }, fmtCount(b.calls), el('span', { class: 'muted' }, ' calls')),
        el('td', {}), el('td', {}), el('td', {}),
        ns('ns', b.ns, wait),
        el('td', {}), el('td', {}), el('td', {}), el('td', {}),
        el('td', { class: 'examples' }, b.examples.map((id, i) => [i ? ' ' : '', exLink(id, 'example')]))));
    }
  }
  const head = el('tr', {}, ['front end', 'front exchanges', 'with backend calls', 'their wait', 'before the calls', 'in the backends', 'between calls', 'after the calls', 'wait without calls', 'shares', 'examples (longest)'].map((h) => el('th', {}, h)));
  const more = hidden > 0 ? el('p', { class: 'muted' }, `${fmtCount(hidden)} more servers answered clients without any backend call. `,
    el('a', { href: link('tiers', { ...st, all: '1' }), id: 'tiers-all' }, 'list them too')) : '';
  if (shown.length === 0) {
    out.replaceChildren(el('p', { class: 'muted', id: 'tiers-empty' }, 'no front exchange with backend calls in this window'), more);
    return;
  }
  out.replaceChildren(
    el('p', { id: 'tiers-count', 'data-count': String(shown.length) }, `${fmtCount(shown.length)} front ends. Shares are of the wait (request's last packet to response's first) of the front exchanges with backend calls; calls that overlap are each counted, so "between calls" can be negative. An example opens as its waterfall.`),
    el('div', { class: 'scroll' }, el('table', { class: 'grid', id: 'tiers-table' }, el('thead', {}, head), el('tbody', {}, rows))), more);
  setStatus(`tiers loaded in ${Math.round(performance.now() - t0)} ms`);
}
