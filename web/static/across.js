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

// acrossSections returns the sections for record id: one ladder with a
// lane per point when three or more points hold the exchange (every
// answer's ladder has them all: the first found is drawn), else one per
// peer; nothing when the server has no peers.
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
      if (x.ladder && x.ladder.points.length >= 3) return [ladderSection(x.ladder)];
      out.push(acrossSection(x));
    } catch (e) {
      out.push(el('section', { class: 'across' }, el('h2', {}, `Across capture points: ${peers.name} and ${name}`), errorBox(e)));
    }
  }
  return out;
}

// acrossAnswerSections draws the fleet centre's answer
// (/api/v1/fleet/across): its ladder when three or more sensors saw the
// exchange, else its pair. The fleet view names the sensors not found or
// not searched itself (the answer's not_found, missing).
export function acrossAnswerSections(a) {
  if (a.ladder && a.ladder.points.length >= 3) return [ladderSection({ ...a.ladder, not_found: [], missing: [] })];
  return a.across.map(acrossSection);
}

// hopText is a hop's figure: refused below the clocks' uncertainty.
function hopText(h) {
  if (h.below_uncertainty) return 'below the clocks\u2019 uncertainty';
  return Number(h.rtt_ns) >= 0 ? fmtDur(h.rtt_ns) : '-';
}

// ladderSection draws an across answer's ladder of three or more points
// (l: the answers' "ladder"): the time by hop, each hop between two points
// with their clocks' uncertainty (a figure within it is refused: the
// server refuses it, below_uncertainty), and one ladder with a lane per
// point between the client's and the server's.
export function ladderSection(l) {
  const pts = l.points;
  const names = pts.map((p) => p.name);
  const clientRow = el('tr', { 'data-hop': 'client ↔ ' + names[0] }, el('th', {}, 'client ↔ ' + names[0]),
    el('td', {}, Number(l.client_ns) >= 0 ? fmtDur(l.client_ns) : '-'), el('td', { class: 'muted' }, names[0] + '\u2019s record'));
  const serverRow = el('tr', { 'data-hop': names[names.length - 1] + ' ↔ server' }, el('th', {}, names[names.length - 1] + ' ↔ server'),
    el('td', {}, Number(l.server_ns) >= 0 ? fmtDur(l.server_ns) : '-'), el('td', { class: 'muted' }, names[names.length - 1] + '\u2019s record'));
  const hopRows = l.hops.map((h) => el('tr', { 'data-hop': h.from + ' ↔ ' + h.to, class: h.uncertain ? 'uncertain' : null },
    el('th', {}, h.from + ' ↔ ' + h.to),
    el('td', {}, hopText(h)),
    el('td', { class: 'muted hop-clock', title: h.clock }, h.clock_known ? `uncertainty ${fmtDur(h.uncertainty_ns)}` : 'clocks\u2019 agreement unknown: the figure assumes they agree')));
  const others = [];
  if (l.not_found.length) others.push(el('p', { class: 'muted', id: 'across-not-found' }, 'Not seen at ', l.not_found.join(', '), '.'));
  if (l.missing.length) others.push(el('p', { class: 'muted', id: 'across-missing' }, 'Not searched (no answer): ', l.missing.join(', '), '.'));
  return el('section', { class: 'across across-points', id: 'across-points' },
    el('h2', {}, `Across ${pts.length} capture points: ${names.join(', ')}`),
    el('table', { class: 'kv' }, el('tbody', {}, clientRow, hopRows, serverRow)),
    el('p', { class: 'muted' }, 'The same exchange is ', pts.map((p, i) => [i ? '; ' : '', `${p.record.id} at ${p.name} (${p.record.client} → ${p.record.server} there)`]), '.'),
    others,
    pointLanes(l),
  );
}

// pointLanes: the lanes client, each point in the ladder's order, server.
// A packet crosses every point that saw it at its captured time there; the
// client and server lanes are half the outer legs away, as in lanes().
function pointLanes(l) {
  const n = l.points.length;
  const cl = Number(l.client_ns) > 0 ? Number(l.client_ns) / 2 : 0;
  const sv = Number(l.server_ns) > 0 ? Number(l.server_ns) / 2 : 0;
  const ts = [];
  for (const s of l.steps) for (const t of s.at_ns) if (big(t) > 0n) ts.push(big(t));
  if (ts.length === 0) return el('p', {}, 'no packets');
  const { px, rel } = timeAxis(ts, cl, sv);
  const r0 = l.points[0].record; const rn = l.points[n - 1].record;
  const names = ['client ' + r0.client, ...l.points.map((p) => p.name), 'server ' + rn.server];
  const y = (i) => 30 + i * LANE;
  const g = [];
  names.forEach((nm, i) => {
    g.push(svg('line', { x1: LEFT, x2: W - RIGHT, y1: y(i), y2: y(i), class: 'lane', 'data-lane': i }));
    g.push(svg('text', { x: 4, y: y(i) + 4, class: 'lane-label' }, nm.length > 20 ? nm.slice(0, 19) + '…' : nm));
  });
  // Each hop's figure between its two lanes, at the right.
  l.hops.forEach((h, i) => g.push(svg('text', { x: W - RIGHT, y: (y(i + 1) + y(i + 2)) / 2 + 4, class: 'hop-label', 'text-anchor': 'end', 'data-hop-label': i },
    `${h.from} ↔ ${h.to}: ${hopText(h)}` + (h.clock_known ? ` (±${fmtDur(h.uncertainty_ns)})` : ''))));
  for (const s of l.steps) {
    const at = s.at_ns.map((t) => (big(t) > 0n ? rel(t) : null));
    const seen = at.filter((t) => t !== null).length;
    const pts = [];
    if (s.to_server) {
      if (at[0] !== null) pts.push([px(at[0] - cl), y(0)]);
      at.forEach((t, i) => { if (t !== null) pts.push([px(t), y(i + 1)]); });
      if (at[n - 1] !== null) pts.push([px(at[n - 1] + sv), y(n + 1)]);
    } else {
      if (at[n - 1] !== null) pts.push([px(at[n - 1] - sv), y(n + 1)]);
      for (let i = n - 1; i >= 0; i--) if (at[i] !== null) pts.push([px(at[i]), y(i + 1)]);
      if (at[0] !== null) pts.push([px(at[0] + cl), y(0)]);
    }
    if (pts.length < 2) continue;
    const cls = 'pkt ' + (s.payload > 0 ? (s.to_server ? 'request' : 'response') : 'ack') + (seen === 1 ? ' one-point' : seen < n ? ' partial' : '');
    g.push(svg('polyline', { points: pts.map((p) => p.join(',')).join(' '), class: cls, 'data-points': seen },
      svg('title', {}, `${s.to_server ? 'to server' : 'to client'} ${s.flags} ${s.payload} B, seen at ${seen} of ${n} points`)));
  }
  return svg('svg', { class: 'ladder across-ladder', viewBox: `0 0 ${W} ${y(n + 1) + 30}`, role: 'img', 'aria-label': 'ladder across capture points' }, g);
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

// timeAxis places the packet times ts (BigInt ns, at least one) on a
// ladder's x axis: rel gives a time's ns after the first, px an x for ns
// from the first, with room for the client's half leg cl before it and
// the server's sv after the last, and 4 % to spare each side.
function timeAxis(ts, cl, sv) {
  let base = ts[0]; let end = ts[0];
  for (const t of ts) { if (t < base) base = t; if (t > end) end = t; }
  const lo = -cl; const hi = Math.max(Number(end - base) + sv, lo + 1000);
  const pad = (hi - lo) * 0.04;
  const d0 = lo - pad; const d1 = hi + pad;
  return {
    px: (r) => LEFT + ((r - d0) / (d1 - d0)) * (W - LEFT - RIGHT),
    rel: (t) => Number(big(t) - base),
  };
}

function lanes(rec, near, far, x) {
  const cl = Number(x.client_a_ns) > 0 ? Number(x.client_a_ns) / 2 : 0;
  const sv = Number(x.b_server_ns) > 0 ? Number(x.b_server_ns) / 2 : 0;
  const ts = [];
  for (const s of x.steps) for (const k of ['at_a_ns', 'at_b_ns']) if (big(s[k]) > 0n) ts.push(big(s[k]));
  if (ts.length === 0) return el('p', {}, 'no packets');
  const { px, rel } = timeAxis(ts, cl, sv);
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
