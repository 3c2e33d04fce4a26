// One exchange across capture points (docs/hops.md): when the server has
// other points' stores (tapvault serve --peer NAME=DIR), the exchange is
// looked up at each by its packets, and drawn as one ladder with a lane per
// capture point between the client's and the server's. Every packet seen
// at both points crosses both lanes at its captured times; the client and
// server lanes are placed half the outer legs away (client_a_ns/2,
// b_server_ns/2), as on the one-point ladder.
import { el, svg, api, parseJSON, fmtDur, big, errorBox } from './util.js';

const W = 1000;
const LEFT = 130;
const RIGHT = 30;
const LANE = 70;

// acrossSections returns the sections for record id: one per peer, or
// nothing when the server has no peers.
export async function acrossSections(id) {
  let peers;
  try {
    peers = parseJSON(await (await api('/api/v1/peers')).text());
  } catch (e) {
    return [];
  }
  if (!peers.peers || peers.peers.length === 0) return [];
  const out = [];
  for (const name of peers.peers) {
    try {
      const x = parseJSON(await (await api(`/api/v1/messages/${id}/across`, { peer: name })).text());
      out.push(acrossSection(x));
    } catch (e) {
      out.push(el('section', { class: 'across' }, el('h2', {}, `Across capture points: ${peers.name} and ${name}`), errorBox(e)));
    }
  }
  return out;
}

// acrossSection draws one across answer: this server's with a peer's
// (/api/v1/messages/{id}/across), or the fleet centre's for two sensors
// (/api/v1/fleet/across, fleet.js), which have the same fields. A figure
// between the points below the clocks' uncertainty is not shown as one:
// the centre refuses it (below_uncertainty), a server's peer answer is
// compared here.
export function acrossSection(x) {
  // Lanes from the client's side: the nearer point first.
  const near = x.reversed ? { name: x.b, k: 'at_b_ns' } : { name: x.a, k: 'at_a_ns' };
  const far = x.reversed ? { name: x.a, k: 'at_a_ns' } : { name: x.b, k: 'at_b_ns' };
  const rec = x.reversed ? x.record_b : x.record_a;
  const legs = [
    ['client ↔ ' + near.name, x.client_a_ns],
    [near.name + ' ↔ ' + far.name, x.below_uncertainty || (x.clock_known && Number(x.a_b_ns) >= 0 && Number(x.a_b_ns) < Number(x.uncertainty_ns)) ? -2 : x.a_b_ns],
    [far.name + ' ↔ server', x.b_server_ns],
  ];
  return el('section', { class: 'across', id: 'across-' + x.b },
    el('h2', {}, `Across capture points: ${x.a} and ${x.b}`),
    el('table', { class: 'kv' }, el('tbody', {}, legs.map(([k, v]) => el('tr', { 'data-hop': k }, el('th', {}, k), el('td', {}, Number(v) >= 0 ? fmtDur(v) : Number(v) === -2 ? 'below the clocks\u2019 uncertainty' : '-'))))),
    el('p', { class: 'muted', id: 'across-clock-' + x.b }, 'Clocks: ' + x.clock + (x.clock_known ? ` (uncertainty ${fmtDur(x.uncertainty_ns)})` : '; the figures between the points assume they agree.')),
    el('p', { class: 'muted' }, `${x.matched} packets seen at both points; the same exchange is ${x.record_b.id} at ${x.b} (${x.record_b.client} → ${x.record_b.server} there).`),
    lanes(rec, near, far, x),
  );
}

function lanes(rec, near, far, x) {
  const cl = Number(x.client_a_ns) > 0 ? Number(x.client_a_ns) / 2 : 0;
  const sv = Number(x.b_server_ns) > 0 ? Number(x.b_server_ns) / 2 : 0;
  const ts = [];
  for (const s of x.steps) for (const k of ['at_a_ns', 'at_b_ns']) if (big(s[k]) > 0n) ts.push(big(s[k]));
  if (ts.length === 0) return el('p', {}, 'no packets');
  let base = ts[0]; let end = ts[0];
  for (const t of ts) { if (t < base) base = t; if (t > end) end = t; }
  const lo = -cl; const hi = Math.max(Number(end - base) + sv, lo + 1000);
  const pad = (hi - lo) * 0.04;
  const d0 = lo - pad; const d1 = hi + pad;
  const px = (rel) => LEFT + ((rel - d0) / (d1 - d0)) * (W - LEFT - RIGHT);
  const rel = (t) => Number(big(t) - base);
  const names = ['client ' + rec.client, near.name, far.name, 'server ' + rec.server];
  const y = (i) => 30 + i * LANE;
  const g = [];
  names.forEach((n, i) => {
    g.push(svg('line', { x1: LEFT, x2: W - RIGHT, y1: y(i), y2: y(i), class: 'lane' }));
    g.push(svg('text', { x: 4, y: y(i) + 4, class: 'lane-label' }, n.length > 20 ? n.slice(0, 19) + '…' : n));
  });
  for (const s of x.steps) {
    const tn = big(s[near.k]) > 0n ? rel(s[near.k]) : null;
    const tf = big(s[far.k]) > 0n ? rel(s[far.k]) : null;
    const pts = [];
    if (s.to_server) {
      if (tn !== null) pts.push([px(tn - cl), y(0)], [px(tn), y(1)]);
      if (tf !== null) pts.push([px(tf), y(2)], [px(tf + sv), y(3)]);
    } else {
      if (tf !== null) pts.push([px(tf - sv), y(3)], [px(tf), y(2)]);
      if (tn !== null) pts.push([px(tn), y(1)], [px(tn + cl), y(0)]);
    }
    if (pts.length < 2) continue;
    const cls = 'pkt ' + (s.payload > 0 ? (s.to_server ? 'request' : 'response') : 'ack') + (tn === null || tf === null ? ' one-point' : '');
    g.push(svg('polyline', { points: pts.map((p) => p.join(',')).join(' '), class: cls },
      svg('title', {}, `${s.to_server ? 'to server' : 'to client'} ${s.flags} ${s.payload} B` +
        (tn !== null && tf !== null ? `, ${fmtDur(Math.abs(tf - tn))} between the points` : ', seen at one point only'))));
  }
  return svg('svg', { class: 'ladder across-ladder', viewBox: `0 0 ${W} ${y(3) + 30}`, role: 'img', 'aria-label': 'ladder across capture points' }, g);
}
