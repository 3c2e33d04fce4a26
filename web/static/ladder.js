// The timing ladder of one exchange: client, capture point and server
// lanes on one nanosecond axis; every packet of the drill-down crosses the
// capture point at its captured time, and the parts of the wait (network,
// server, transfer) are drawn and labelled under the lanes. The lanes
// beside the capture point are placed by the record's own estimates: a
// packet reaches the server network_ns/2 after the capture point, the
// client client_net_ns/2 after; that is what makes the server's own time
// visible as the gap on its lane.
import { svg, fmtDur, big } from './util.js';

const W = 1000;
const LEFT = 110;
const RIGHT = 30;
const Y = { client: 50, tap: 150, server: 250, parts: 300 };

function niceStep(span) {
  const raw = span / 6;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

// ladder(record, packets): packets are [{ts: BigInt, dir: 'c2s'|'s2c',
// kind: 'request'|'response'|'ack'|'other', label}].
export function ladder(r, packets) {
  const net = Number(r.network_ns) > 0 ? Number(r.network_ns) : 0;
  const cnet = Number(r.client_net_ns) > 0 ? Number(r.client_net_ns) : 0;
  const times = [r.req_first_ns, r.req_last_ns, r.resp_first_ns, r.resp_last_ns].map(big).filter((t) => t > 0n);
  for (const p of packets) times.push(p.ts);
  if (times.length === 0) return svg('svg', { class: 'ladder', viewBox: `0 0 ${W} 60` }, svg('text', { x: 10, y: 30 }, 'no times to draw'));
  let base = times[0];
  let end = times[0];
  for (const t of times) { if (t < base) base = t; if (t > end) end = t; }
  const half = Math.max(net, cnet) / 2;
  const lo = -half;
  let hi = Number(end - base) + half;
  if (hi - lo < 1000) hi = lo + 1000;
  const pad = (hi - lo) * 0.04;
  const d0 = lo - pad; const d1 = hi + pad;
  const x = (rel) => LEFT + ((rel - d0) / (d1 - d0)) * (W - LEFT - RIGHT);
  const rel = (t) => Number(big(t) - base);

  const g = [];
  // Axis: time since the first time drawn.
  const step = niceStep(d1 - d0);
  const axis = [];
  for (let t = Math.ceil(d0 / step) * step; t <= d1; t += step) {
    axis.push(svg('line', { x1: x(t), x2: x(t), y1: Y.client - 20, y2: Y.parts + 40, class: 'grid' }));
    axis.push(svg('text', { x: x(t), y: Y.parts + 55, class: 'tick', 'text-anchor': 'middle' }, (t < 0 ? '−' : '+') + fmtDur(Math.abs(t))));
  }
  g.push(svg('g', { class: 'axis' }, axis));
  for (const [lane, label] of [['client', 'client ' + r.client], ['tap', 'capture point'], ['server', 'server ' + r.server]]) {
    g.push(svg('line', { x1: LEFT, x2: W - RIGHT, y1: Y[lane], y2: Y[lane], class: 'lane' }));
    g.push(svg('text', { x: 4, y: Y[lane] + 4, class: 'lane-label' }, label.length > 28 ? label.slice(0, 27) + '…' : label));
  }
  // Packets.
  for (const p of packets) {
    const t = rel(p.ts);
    const pts = p.dir === 'c2s'
      ? [[x(t - cnet / 2), Y.client], [x(t), Y.tap], [x(t + net / 2), Y.server]]
      : [[x(t - net / 2), Y.server], [x(t), Y.tap], [x(t + cnet / 2), Y.client]];
    g.push(svg('polyline', {
      points: pts.map((q) => q.join(',')).join(' '), class: 'pkt ' + p.kind,
      'data-ts': p.ts.toString(), 'marker-end': 'url(#arrow)',
    }, svg('title', {}, p.label)));
    g.push(svg('circle', { cx: x(t), cy: Y.tap, r: 3, class: 'pkt-dot ' + p.kind }));
    if (p.short) g.push(svg('text', { x: x(t) + 4, y: Y.tap + (p.dir === 'c2s' ? -8 : 16), class: 'pkt-label ' + p.kind }, p.short));
  }
  // Parts of the wait, on the capture point's clock: request's last packet
  // + network + server = response's first; + transfer = response's last.
  const rl = big(r.req_last_ns); const rf = big(r.resp_first_ns); const rlast = big(r.resp_last_ns);
  if (rl > 0n && rf > 0n) {
    const parts = [];
    const srv = Number(r.server_ns);
    const tr = Number(r.transfer_ns);
    let at = rel(rl);
    if (net > 0 && srv >= 0) {
      parts.push(['network', net / 2, 'network ½', r.network_ns]);
      parts.push(['server', srv, 'server', r.server_ns]);
      parts.push(['network', net / 2, 'network ½', r.network_ns]);
    } else {
      parts.push(['wait', rel(rf) - at, 'wait (not split)', Number(rf - rl)]);
    }
    if (rlast > 0n && tr >= 0) parts.push(['transfer', tr, 'transfer', r.transfer_ns]);
    for (const [cls, len, label, ns] of parts) {
      const x0 = x(at); const x1 = x(at + len);
      g.push(svg('rect', { x: x0, y: Y.parts - 10, width: Math.max(1, x1 - x0), height: 20, class: 'part ' + cls, 'data-part': cls, 'data-ns': String(ns) },
        svg('title', {}, label + ' ' + fmtDur(ns))));
      at += len;
    }
    // Labels: one per part kind, the whole value (the two network halves
    // are one network_ns).
    const labels = [];
    if (net > 0 && srv >= 0) labels.push(['network', 'network ' + fmtDur(r.network_ns)], ['server', 'server ' + fmtDur(r.server_ns)]);
    else labels.push(['wait', 'wait ' + fmtDur(Number(rf - rl))]);
    if (rlast > 0n && tr >= 0) labels.push(['transfer', 'transfer ' + fmtDur(r.transfer_ns)]);
    labels.push(['latency', 'latency ' + fmtDur(r.latency_ns)]);
    let lx = LEFT;
    for (const [cls, text] of labels) {
      g.push(svg('rect', { x: lx, y: Y.parts + 16, width: 10, height: 10, class: 'part ' + cls }));
      g.push(svg('text', { x: lx + 14, y: Y.parts + 25, class: 'part-label', 'data-part-label': cls }, text));
      lx += 14 + text.length * 7 + 20;
    }
  }
  const defs = svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto-start-reverse' },
    svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' })));
  return svg('svg', { class: 'ladder', id: 'ladder', viewBox: `0 0 ${W} ${Y.parts + 70}`, role: 'img', 'aria-label': 'timing ladder' }, defs, g);
}
