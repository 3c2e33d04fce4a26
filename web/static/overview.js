// Overview: what the store holds and how fast it grows (live, from the
// server-sent events of /ui/events), drops per stage while capturing (from
// /metrics, which only capture serves), and latency percentiles by
// protocol split into network / server / transfer (/api/v1/latency).
// Every figure links to the exchanges or the packets behind it.
import { latencySeries } from './series.js';
import { el, svg, api, link, parseJSON, fmtTime, fmtDur, fmtCount, fmtBytes, fmtRate, big, errorBox, setStatus } from './util.js';

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
  const fFrom = el('input', { name: 'from', id: 'ofrom', value: st.from || '', size: 32, placeholder: 'from (the window of the health and latency below)' });
  const fTo = el('input', { name: 'to', id: 'oto', value: st.to || '', size: 32, placeholder: 'to' });
  const form = el('form', { class: 'query' }, el('label', {}, 'From ', fFrom), ' ', el('label', {}, 'To ', fTo), ' ', el('button', { type: 'submit' }, 'Apply'));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); location.hash = link('overview', { ...st, from: fFrom.value, to: fTo.value }); });
  const health = el('div', { id: 'health' }, el('p', { class: 'muted' }, 'Loading…'));
  const xps = el('div', { id: 'xps' }, el('p', { class: 'muted' }, 'Loading…'));
  const lser = el('div', { id: 'lseries-out' }, el('p', { class: 'muted' }, 'Loading…'));
  main.replaceChildren(el('h1', {}, 'Overview'), el('h2', {}, 'Store'), stats, el('h2', {}, 'Live'), live, drops,
    el('h2', {}, 'Store health'), form, health,
    el('h2', {}, 'Exchanges per second'), xps,
    el('h2', {}, 'Latency by protocol'), lat,
    el('h2', {}, 'Latency over time'), lser);
  const healthDone = loadHealth(health, st, tz);
  // One read of the window for exchanges per second, latency over time
  // (the series' columns) and the latency table (its total: the groups of
  // /api/v1/latency?by=proto), instead of two reads of every record.
  const seriesP = fetchSeriesTotal(st);
  seriesP.catch(() => {}); // shown by the views below
  const xpsDone = loadXPS(xps, st, tz, seriesP);

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

  await healthDone;
  // Latency by protocol.
  const t0 = performance.now();
  try {
    const groups = (await seriesP).total;
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
  await xpsDone;
  await latencySeries(lser, st, tz, seriesP);
}

// The exchanges the latency groups count (not the connection records).
const EXCHANGES = 'proto != tcp and class != flow';

// fetchSeriesTotal: series.js's fetchSeries with the window's groups as
// well (total), which the latency table shows.
async function fetchSeriesTotal(st) {
  return parseJSON(await (await api('/api/v1/latency_series', { by: 'proto', expr: EXCHANGES, from: st.from, to: st.to, cols: 30, total: 'true' })).text());
}

// loadXPS: exchanges per second over the window (by request time: the
// latency series' columns, each group's count, no response included); a
// column lists its exchanges.
async function loadXPS(out, st, tz, hp) {
  let h;
  try { h = await hp; } catch (e) { out.replaceChildren(errorBox(e)); return; }
  const cols = Number(h.cols);
  const per = h.columns.map((groups) => groups.reduce((a, g) => a + Number(g.count), 0));
  const from = big(h.from); const step = big(h.step);
  const stepS = Number(step) / 1e9;
  const colWin = (c) => ({ from: (from + BigInt(c) * step).toString(), to: (from + BigInt(c + 1) * step - 1n).toString() });
  const colExpr = (c) => `${EXCHANGES} and req_first >= ${colWin(c).from} and req_first < ${from + BigInt(c + 1) * step}`;
  const total = per.reduce((a, b) => a + b, 0);
  const peak = Math.max(0, ...per);
  out.replaceChildren(el('div', { class: 'card wide', id: 'xps-card', 'data-count': String(total), 'data-from': String(h.from), 'data-step': String(h.step) },
    el('div', { class: 'title' }, `exchanges by request time, ${fmtTime(h.from, tz)} to ${fmtTime(h.to, tz)}, ${cols} columns; a column lists its exchanges`),
    el('div', { class: 'value' }, `${fmtCount(total)} exchanges, peak ${fmtRate(peak / stepS, '/s')}`),
    bars('series-xps', per, (c) => link('exchanges', { ...colWin(c), expr: colExpr(c), sort: '-latency_ns', tz: st.tz }),
      (c, v) => `${fmtCount(v)} exchanges, ${fmtRate(v / stepS, '/s')}, from ${fmtTime(colWin(c).from, tz)}`)));
}

// bars: one bar per column of a series, each a link (href(c)) with its
// value in data-v; the title says what it is.
function bars(id, values, href, title) {
  const W = 600; const H = 60;
  const max = Math.max(1, ...values.map(Number));
  const cw = W / Math.max(1, values.length);
  const g = [];
  values.forEach((v, c) => {
    v = Number(v);
    if (!v) return;
    const h = Math.max(1, (v / max) * (H - 2));
    g.push(svg('a', { href: href(c), class: 'col', 'data-col': c, 'data-v': v },
      svg('rect', { x: c * cw, y: H - h, width: Math.max(0.5, cw - 0.3), height: h, class: 'series-bar' }, svg('title', {}, title(c, v)))));
  });
  return svg('svg', { class: 'series', id, viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none' }, g);
}

// line: a sparkline of a sampled value over wall time (unknown: -1, left out).
function line(id, pts) {
  const W = 300; const H = 50;
  const ok = pts.filter(([, v]) => v >= 0);
  if (ok.length === 0) return el('span', { class: 'muted', id }, 'not sampled');
  const t0 = ok[0][0]; const t1 = Math.max(t0 + 1, ok[ok.length - 1][0]);
  const max = Math.max(1e-9, ...ok.map(([, v]) => v));
  const xy = ok.map(([t, v]) => `${((t - t0) / (t1 - t0)) * W},${H - (v / max) * (H - 4) - 2}`).join(' ');
  return svg('svg', { class: 'spark', id, viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none' }, svg('polyline', { points: xy }));
}

// loadHealth: the store's health now (disk use, the retention horizon, the
// index state, lag and time to queryable), over packet time within the
// window (what the store holds of each column: packets, bits per second,
// bytes stored, from the block headers), the samples the server took
// (wall time), and what retention dropped (/api/v1/health).
async function loadHealth(out, st, tz) {
  let h;
  try {
    h = parseJSON(await (await api('/api/v1/health', { from: st.from, to: st.to, cols: 120 })).text());
  } catch (e) { out.replaceChildren(errorBox(e)); return; }
  const n = h.now;
  const disk = Number(n.segment_bytes) + Number(n.index_bytes) + Number(n.message_bytes);
  const fsSize = Number(h.fs_size_bytes); const avail = Number(n.fs_avail_bytes);
  const kv = (id, title, value, attrs, href) => {
    const v = el('div', { class: 'value', id, ...attrs }, value);
    return el('div', { class: 'card' }, el('div', { class: 'title' }, title), href ? el('a', { href }, v) : v);
  };
  const span = big(n.newest_ns) - big(n.oldest_ns);
  const capturing = Number(n.index_lag_blocks) >= 0;
  const cards = el('div', { class: 'cards', id: 'health-now' },
    kv('health-disk', 'disk used by the store', fmtBytes(disk), { 'data-v': String(disk), title: `${disk} bytes` }),
    kv('health-segments', 'segments', fmtBytes(n.segment_bytes), { 'data-v': String(n.segment_bytes) }),
    kv('health-index', 'index', fmtBytes(n.index_bytes) + ` (${n.index_state || '-'})`, { 'data-v': String(n.index_bytes), 'data-state': String(n.index_state || '') }),
    kv('health-messages', 'exchange records', fmtBytes(n.message_bytes), { 'data-v': String(n.message_bytes) }),
    kv('health-fs', 'filesystem free', fsSize > 0 ? `${fmtBytes(avail)} of ${fmtBytes(fsSize)} (${((100 * avail) / fsSize).toFixed(1)} %)` : '-', { 'data-v': String(avail) }),
    kv('health-horizon', 'retention horizon (oldest held)', fmtTime(n.oldest_ns, tz), { 'data-ns': String(n.oldest_ns) },
      big(n.oldest_ns) > 0n ? link('packets', { from: String(n.oldest_ns), tz: st.tz }) : null),
    kv('health-held', 'time held', big(n.oldest_ns) > 0n ? fmtDur(Number(span)) : '-', { 'data-ns': String(span) }),
    kv('health-lag', 'index lag', capturing ? `${fmtCount(n.index_lag_blocks)} blocks` : '-', { 'data-v': String(n.index_lag_blocks) }),
    kv('health-ttq', 'time to queryable p50 / p99', Number(n.time_to_queryable_p50_s) >= 0 ? `${fmtDur(Math.round(n.time_to_queryable_p50_s * 1e9))} / ${fmtDur(Math.round(n.time_to_queryable_p99_s * 1e9))}` : '-',
      { 'data-p50': String(n.time_to_queryable_p50_s), 'data-p99': String(n.time_to_queryable_p99_s) }),
  );
  const note = capturing ? '' : el('p', { class: 'muted', id: 'health-no-capture' }, 'Index lag and time to queryable are the capture’s (its /metrics); this server is not capturing.');
  // Over packet time.
  const s = h.series;
  const from = big(s.from); const step = big(s.step);
  const colWin = (c) => ({ from: (from + BigInt(c) * step).toString(), to: (from + BigInt(c + 1) * step - 1n).toString(), tz: st.tz });
  const stepS = Number(step) / 1e9;
  const tot = (a) => a.reduce((x, y) => x + Number(y), 0);
  const series = el('div', { id: 'health-series', 'data-from': String(s.from), 'data-to': String(s.to), 'data-step': String(s.step),
    'data-packets': String(tot(s.packets)), 'data-wire': String(tot(s.wire_bytes)), 'data-stored': String(tot(s.stored_bytes)) },
  el('p', { class: 'muted' }, `Over packet time, ${fmtTime(s.from, tz)} to ${fmtTime(s.to, tz)}, ${s.cols} columns of ${fmtDur(Number(step))}; a block counts in the column of its first packet. A column opens its packets.`),
  el('div', { class: 'cards' },
    el('div', { class: 'card wide' }, el('div', { class: 'title' }, 'packets per second'), el('div', { class: 'value' }, fmtCount(tot(s.packets)) + ' packets'),
      bars('series-pps', s.packets, (c) => link('packets', colWin(c)), (c, v) => `${fmtCount(v)} packets, ${fmtRate(v / stepS, 'pkt/s')}, from ${fmtTime(colWin(c).from, tz)}`)),
    el('div', { class: 'card wide' }, el('div', { class: 'title' }, 'bits per second'), el('div', { class: 'value' }, fmtBytes(tot(s.wire_bytes)) + ' on the wire'),
      bars('series-bps', s.wire_bytes, (c) => link('packets', colWin(c)), (c, v) => `${fmtRate((8 * v) / stepS, 'bit/s')} from ${fmtTime(colWin(c).from, tz)}`)),
    el('div', { class: 'card wide' }, el('div', { class: 'title' }, 'bytes stored'), el('div', { class: 'value' }, fmtBytes(tot(s.stored_bytes)) + ' of payload'),
      bars('series-stored', s.stored_bytes, (c) => link('packets', colWin(c)), (c, v) => `${fmtBytes(v)} stored from ${fmtTime(colWin(c).from, tz)}`))));
  // Samples over wall time.
  const sm = h.samples || [];
  const pts = (f) => sm.map((x) => [Number(big(x.at_ns) / 1000000n), f(x)]);
  const sampleCard = (title, id, f, fmt) => {
    const last = f(sm[sm.length - 1]);
    return el('div', { class: 'card wide' }, el('div', { class: 'title' }, title),
      el('div', { class: 'value', 'data-v': String(last) }, last >= 0 ? fmt(last) : '-'), line(id, pts(f)));
  };
  const samples = el('div', { id: 'health-samples', 'data-count': String(sm.length) },
    el('p', { class: 'muted' }, sm.length ? `Sampled by this server every ${fmtDur(Number(h.sample_every_ns))} while it ran: ${fmtCount(sm.length)} samples from ${fmtTime(sm[0].at_ns, tz)} (kept 24 h, in memory).` : 'No samples in this window: the server samples every ' + fmtDur(Number(h.sample_every_ns)) + ' while it runs (wall time).'),
    sm.length ? el('div', { class: 'cards' },
      sampleCard('disk used', 'sample-disk', (x) => Number(x.segment_bytes) + Number(x.index_bytes) + Number(x.message_bytes), fmtBytes),
      sampleCard('filesystem free', 'sample-fs', (x) => Number(x.fs_avail_bytes), fmtBytes),
      sampleCard('time held (newest − oldest)', 'sample-held', (x) => (big(x.oldest_ns) > 0n ? Number(big(x.newest_ns) - big(x.oldest_ns)) : -1), fmtDur),
      sampleCard('index lag', 'sample-lag', (x) => Number(x.index_lag_blocks), (v) => fmtCount(v) + ' blocks'),
      sampleCard('time to queryable p99', 'sample-ttq', (x) => Number(x.time_to_queryable_p99_s), (v) => fmtDur(Math.round(v * 1e9))))
      : '');
  // Retention.
  const r = h.retention;
  const acts = r.actions.slice(-10).reverse();
  const retention = el('div', { id: 'health-retention', 'data-segments': String(r.segments), 'data-files': String(r.message_files), 'data-bytes': String(r.bytes) },
    el('p', {}, r.segments || r.message_files ? `Retention dropped ${fmtCount(r.segments)} segments and ${fmtCount(r.message_files)} message files, ${fmtBytes(r.bytes)}.` : 'Retention has dropped nothing.'),
    acts.length ? el('table', { class: 'grid', id: 'retention-table' },
      el('thead', {}, el('tr', {}, ['dropped at', 'what', 'bytes', 'packets or records', 'covered', 'reason'].map((x) => el('th', {}, x)))),
      el('tbody', {}, acts.map((a) => el('tr', {},
        el('td', { class: 'time' }, String(a.time)),
        el('td', {}, a.message_file ? String(a.message_file) : `segment ${a.segment}`),
        el('td', { class: 'num' }, fmtBytes(a.bytes)),
        el('td', { class: 'num' }, fmtCount(a.message_file ? a.records : a.packets)),
        el('td', { class: 'time' }, `${fmtTime(a.min_ns, tz)} – ${fmtTime(a.max_ns, tz)}`),
        el('td', {}, String(a.reason)))))) : '');
  out.replaceChildren(cards, note, el('h3', {}, 'Over the window'), series, el('h3', {}, 'Sampled'), samples, el('h3', {}, 'Retention'), retention);
  out.dataset.ready = location.hash;
}
