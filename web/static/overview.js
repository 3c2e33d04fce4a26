// Overview: what the store holds and how fast it grows (live, from the
// server-sent events of /ui/events), drops per stage while capturing (from
// /metrics, which only capture serves), and latency percentiles by
// protocol split into network / server / transfer (/api/v1/latency).
// Every figure links to the exchanges or the packets behind it.
import { el, svg, api, link, jsonLines, parseJSON, fmtTime, fmtDur, fmtCount, fmtBytes, fmtRate, big, errorBox, setStatus } from './util.js';

const HISTORY = 120;

function card(id, title, value, href) {
  const v = el('div', { class: 'value', id }, value);
  return el('div', { class: 'card' }, el('div', { class: 'title' }, title), href ? el('a', { href }, v) : v);
}

function spark(values, id) {
  const w = 300; const h = 50;
  const max = Math.max(1, ...values);
  const pts = values.map((v, i) => `${(i / Math.max(1, HISTORY - 1)) * w},${h - (v / max) * (h - 4) - 2}`).join(' ');
  return svg('svg', { class: 'spark', id, viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: 'none' }, svg('polyline', { points: pts }));
}

// parseMetrics: the Prometheus text format's samples of one metric.
function samples(text, name) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = {};
    for (const kv of (m[3] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[kv[1]] = kv[2];
    out.push({ labels, value: Number(m[4]) });
  }
  return out;
}

export async function overview(main, params, ctx) {
  const sess = ctx.session;
  const st = Object.fromEntries(params);
  const tz = st.tz || 'UTC';
  const stats = el('div', { class: 'cards', id: 'stats' }, el('p', { class: 'muted' }, 'waiting for the store\u2019s stats…'));
  const live = el('div', { class: 'cards', id: 'live' });
  const drops = el('div', { id: 'drops' });
  const lat = el('div', { id: 'latency' }, el('p', { class: 'muted' }, 'Loading…'));
  const fFrom = el('input', { name: 'from', id: 'ofrom', value: st.from || '', size: 32, placeholder: 'from' });
  const fTo = el('input', { name: 'to', id: 'oto', value: st.to || '', size: 32, placeholder: 'to' });
  const form = el('form', { class: 'query' }, el('label', {}, 'From ', fFrom), ' ', el('label', {}, 'To ', fTo), ' ', el('button', { type: 'submit' }, 'Apply'));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); location.hash = link('overview', { ...st, from: fFrom.value, to: fTo.value }); });
  main.replaceChildren(el('h1', {}, 'Overview'), el('h2', {}, 'Store'), stats, el('h2', {}, 'Live'), live, drops,
    el('h2', {}, 'Latency by protocol'), form, lat);

  // Live: stats every second over SSE; rates from the differences.
  const hist = { pps: [], bps: [] };
  let prev = null;
  const es = new EventSource('/ui/events');
  ctx.onLeave(() => es.close());
  es.addEventListener('stats', (ev) => {
    const s = parseJSON(ev.data);
    const now = performance.now();
    const win = { from: st.from, to: st.to, tz: st.tz };
    stats.replaceChildren(
      card('stat-packets', 'packets', fmtCount(s.packets), link('packets', win)),
      card('stat-bytes', 'wire bytes', fmtBytes(s.wire_bytes)),
      card('stat-stored', 'stored', `${fmtBytes(s.stored_bytes)} (${Number(s.compression_ratio || 0).toFixed(2)}×)`),
      card('stat-first', 'oldest held', fmtTime(s.first_ns, tz)),
      card('stat-last', 'newest', fmtTime(s.last_ns, tz)),
      card('stat-index', 'index', String(s.index_state ?? '-')),
      s.messages ? card('stat-records', 'exchange records', fmtCount(s.messages.records), link('exchanges', win)) : '',
      card('stat-segments', 'segments', fmtCount(s.segments)),
    );
    stats.dataset.packets = String(s.packets);
    if (prev) {
      const dt = (now - prev.at) / 1000;
      const dp = Number(big(s.packets) - big(prev.s.packets));
      const db = Number(big(s.wire_bytes) - big(prev.s.wire_bytes));
      hist.pps.push(dp / dt); hist.bps.push((8 * db) / dt);
      if (hist.pps.length > HISTORY) { hist.pps.shift(); hist.bps.shift(); }
    }
    prev = { s, at: now };
    const last = (a) => (a.length ? a[a.length - 1] : 0);
    live.replaceChildren(
      el('div', { class: 'card wide' }, el('div', { class: 'title' }, 'packets per second'), el('div', { class: 'value', id: 'pps' }, fmtRate(last(hist.pps), 'pkt/s')), spark(hist.pps, 'pps-spark')),
      el('div', { class: 'card wide' }, el('div', { class: 'title' }, 'bits per second'), el('div', { class: 'value', id: 'bps' }, fmtRate(last(hist.bps), 'bit/s')), spark(hist.bps, 'bps-spark')));
  });
  es.addEventListener('error', () => { setStatus('live updates interrupted; retrying', true); });

  // Drops per stage: only a capture serves /metrics.
  const loadDrops = async () => {
    if (!sess || !sess.metrics) {
      drops.replaceChildren(el('p', { class: 'muted', id: 'no-metrics' }, 'Drops per stage: only while capturing (tapvault serve has no /metrics).'));
      return false;
    }
    let text;
    try {
      const r = await fetch('/metrics', { credentials: 'same-origin', cache: 'no-store' });
      if (!r.ok) throw new Error('/metrics: ' + r.status);
      text = await r.text();
    } catch (e) { drops.replaceChildren(errorBox(e)); return false; }
    const d = samples(text, 'tapvault_dropped_packets_total');
    const rows = d.map((x) => el('tr', {}, el('td', {}, x.labels.stage || ''), el('td', {}, x.labels.cause || ''), el('td', { class: 'num' }, fmtCount(x.value))));
    drops.replaceChildren(el('h3', {}, 'Drops per stage'), rows.length
      ? el('table', { class: 'grid', id: 'drops-table' }, el('thead', {}, el('tr', {}, el('th', {}, 'stage'), el('th', {}, 'cause'), el('th', {}, 'packets'))), el('tbody', {}, rows))
      : el('p', { id: 'no-drops' }, 'no drops'));
    return true;
  };
  let dropTimer = null;
  let left = false;
  ctx.onLeave(() => { left = true; if (dropTimer) clearInterval(dropTimer); });
  if (await loadDrops() && !left) dropTimer = setInterval(loadDrops, 5000);

  // Latency by protocol.
  const t0 = performance.now();
  try {
    const groups = jsonLines(await (await api('/api/v1/latency', { by: 'proto', from: st.from, to: st.to })).text());
    const win = { from: st.from, to: st.to, tz: st.tz };
    const maxP = Math.max(1, ...groups.map((g) => Number(g.latency_ns.p99)));
    const rows = groups.map((g) => {
      const p = g.key.proto;
      const bar = (() => {
        // p50 of each part, stacked; the p50s need not add up to the
        // latency's p50, so the bar is labelled as parts.
        const w = 240; const parts = [['network', g.network_ns?.p50], ['server', g.server_ns?.p50], ['transfer', g.transfer_ns?.p50]];
        let at = 0;
        const rects = [];
        for (const [cls, v] of parts) {
          if (v === undefined || Number(v) < 0) continue;
          const len = (Number(v) / maxP) * w;
          rects.push(svg('rect', { x: at, y: 2, width: Math.max(0.5, len), height: 14, class: 'part ' + cls }, svg('title', {}, `${cls} p50 ${fmtDur(v)}`)));
          at += len;
        }
        return svg('svg', { class: 'bar', viewBox: `0 0 ${w} 18`, width: w, height: 18 }, rects);
      })();
      const ex = (expr) => link('exchanges', { ...win, expr });
      return el('tr', { 'data-proto': p },
        el('td', {}, el('a', { href: ex('proto ' + p) }, p)),
        el('td', { class: 'num', 'data-key': 'count' }, el('a', { href: ex('proto ' + p) }, fmtCount(g.count))),
        ['p50', 'p90', 'p99', 'max'].map((q) => el('td', { class: 'num', 'data-key': q, 'data-ns': String(g.latency_ns[q]) },
          el('a', { href: ex(`proto ${p} and latency >= ${Number(g.latency_ns[q]) >= 0 ? Number(g.latency_ns[q]) + 'ns' : '0'}`) }, fmtDur(g.latency_ns[q])))),
        el('td', { class: 'num', 'data-key': 'network_p50' }, fmtDur(g.network_ns?.p50)),
        el('td', { class: 'num', 'data-key': 'server_p50' }, fmtDur(g.server_ns?.p50)),
        el('td', { class: 'num', 'data-key': 'transfer_p50' }, fmtDur(g.transfer_ns?.p50)),
        el('td', {}, bar),
        el('td', {}, g.slowest_id ? el('a', { href: link('exchange', { id: g.slowest_id, tz: st.tz }), class: 'slowest' }, 'slowest') : ''));
    });
    lat.replaceChildren(groups.length === 0 ? el('p', { class: 'muted' }, 'no exchange records in this window') :
      el('table', { class: 'grid', id: 'latency-table' },
        el('thead', {}, el('tr', {}, ['proto', 'exchanges', 'p50', 'p90', 'p99', 'max', 'network p50', 'server p50', 'transfer p50', 'parts (p50)', ''].map((h) => el('th', {}, h)))),
        el('tbody', {}, rows)));
    setStatus(`latency loaded in ${Math.round(performance.now() - t0)} ms`);
  } catch (e) {
    lat.replaceChildren(errorBox(e));
  }
}
