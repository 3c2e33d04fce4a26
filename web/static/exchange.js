// One exchange: its fields, class and evidence, the timing ladder drawn
// from its times and its drill-down packets, and the links to its packets.
import { el, svg, api, apiURL, link, jsonLines, fmtTime, fmtDur, big, errorBox, setStatus } from './util.js';
import { readPcap, decode } from './pcap.js';
import { ladder } from './ladder.js';
import { summary, builtin, connFilter } from './records.js';
import { packetTable } from './packets.js';
import { acrossSections } from './across.js';

function kv(rows) {
  return el('table', { class: 'kv' }, el('tbody', {}, rows.filter((r) => r).map(([k, v, attrs]) => el('tr', attrs || {}, el('th', {}, k), el('td', {}, v)))));
}

const MAX_BACKENDS = 200;

// waterfall: the front exchange's wait (request's last packet to response's
// first) and each backend call inside it, on one axis.
function waterfall(front, calls, tz) {
  const W = 1000; const LEFT = 330; const ROW = 20;
  const t0 = big(front.req_last_ns); const t1 = big(front.resp_first_ns);
  const span = Math.max(1, Number(t1 - t0));
  const x = (t) => LEFT + (Number(big(t) - t0) / span) * (W - LEFT - 10);
  const rows = [{ label: 'front end wait', a: t0, b: t1, cls: 'front', href: null, ns: Number(t1 - t0) }]
    .concat(calls.map((c) => ({ label: `${c.proto} ${c.server} ${summary(c)}`, a: big(c.req_first_ns), b: big(c.resp_last_ns) || big(c.req_last_ns), cls: 'call', href: link('exchange', { id: c.id, tz }), ns: Number(c.latency_ns), id: c.id })));
  const g = [];
  rows.forEach((r, i) => {
    const y = 10 + i * ROW;
    const label = r.label.length > 48 ? r.label.slice(0, 47) + '…' : r.label;
    const text = svg('text', { x: 4, y: y + 12 }, label);
    g.push(r.href ? svg('a', { href: r.href, 'data-id': r.id }, text) : text);
    const xa = x(r.a); const xb = x(r.b);
    g.push(svg('rect', { x: xa, y: y + 2, width: Math.max(1, xb - xa), height: ROW - 6, class: 'wf ' + r.cls }, svg('title', {}, `${r.label} ${fmtDur(r.ns)}`)));
    g.push(svg('text', { x: Math.min(xb + 4, W - 90), y: y + 12, class: 'tick' }, fmtDur(r.ns)));
  });
  return svg('svg', { class: 'ladder', id: 'waterfall', viewBox: `0 0 ${W} ${20 + rows.length * ROW}`, role: 'img', 'aria-label': 'backend calls' }, g);
}

export async function exchange(main, params) {
  const id = (params.get('id') || '').toLowerCase();
  const tz = params.get('tz') || '';
  if (!/^[0-9a-f]{1,16}$/.test(id)) { main.replaceChildren(errorBox('want ?id= a record ID (16 hex digits)')); return; }
  const t0 = performance.now();
  const recs = jsonLines(await (await api('/api/v1/messages', { expr: 'id ' + id, limit: 1, tiers: 'true' })).text());
  if (recs.length === 0) { main.replaceChildren(el('h1', {}, 'Exchange ' + id), errorBox('no record with ID ' + id)); return; }
  const r = recs[0];
  const pcapURL = apiURL(`/api/v1/messages/${id}/packets`, {});

  // A front exchange's backend calls, for the waterfall.
  let backends = [];
  if (r.backends && r.backends.length) {
    const ids = r.backends.slice(0, MAX_BACKENDS);
    backends = jsonLines(await (await api('/api/v1/messages', { expr: ids.map((b) => 'id ' + b).join(' or '), limit: ids.length })).text());
    backends.sort((a, b) => (big(a.req_first_ns) < big(b.req_first_ns) ? -1 : 1));
  }

  let pkts = [];
  let pktErr = null;
  try {
    const buf = await (await api(pcapURL)).arrayBuffer();
    pkts = readPcap(buf).packets.map((p, i) => ({ ...p, n: i + 1, d: decode(p) }));
  } catch (e) { pktErr = e; }
  const lad = pkts.map((p) => {
    const dir = p.d.endpoints && p.d.endpoints.src === r.server ? 's2c' : 'c2s';
    const len = p.d.tcp ? p.d.tcp.len : p.d.udp ? p.d.udp.len : 0;
    const flags = p.d.tcp ? p.d.tcp.flags : [];
    let kind = 'other';
    if (len > 0) kind = dir === 'c2s' ? 'request' : 'response';
    else if (flags.includes('ACK') && flags.length === 1) kind = 'ack';
    const short = kind === 'ack' ? 'ACK' : kind === 'request' ? `req ${len} B` : kind === 'response' ? `resp ${len} B` : (flags.join(',') || p.d.proto);
    return { ts: p.ts, dir, kind, short, len, label: `#${p.n} ${fmtTime(p.ts, tz || 'UTC')} ${p.d.info}` };
  });
  // A run of packets of one kind and direction is labelled once, on its
  // first packet, with their count and bytes (a response of many segments
  // would otherwise print its labels over each other).
  for (let i = 0; i < lad.length;) {
    let j = i + 1;
    while (j < lad.length && lad[j].kind === lad[i].kind && lad[j].dir === lad[i].dir) j++;
    if (j - i > 1) {
      const bytes = lad.slice(i, j).reduce((a, q) => a + q.len, 0);
      lad[i].short = (lad[i].kind === 'ack' ? 'ACK' : lad[i].kind === 'request' ? 'req' : lad[i].kind === 'response' ? 'resp' : lad[i].short) +
        ` ×${j - i}` + (bytes ? ` ${bytes} B` : '');
      for (let k = i + 1; k < j; k++) lad[k].short = '';
    }
    i = j;
  }

  const fields = Object.entries(r).filter(([k]) => !builtin.has(k) && k !== 'summary');
  const timeRow = (k) => [k, fmtTime(r[k], tz || 'UTC'), { 'data-key': k, 'data-ns': String(r[k]) }];
  const durRow = (k) => [k, fmtDur(r[k]), { 'data-key': k, 'data-ns': String(r[k]) }];
  const from = big(r.req_first_ns) > 0n ? big(r.req_first_ns) - 1000000000n : 0n;
  const to = (big(r.resp_last_ns) > 0n ? big(r.resp_last_ns) : big(r.req_last_ns)) + 1000000000n;

  main.replaceChildren(
    el('h1', {}, `${r.proto} exchange `, el('span', { class: 'mono', id: 'exchange-id' }, r.id)),
    el('p', { class: 'summary', id: 'summary' }, `${r.client} → ${r.server}  ${summary(r)}`),
    el('p', {}, 'class ', el('span', { class: 'class ' + r.class, id: 'class' }, r.class),
      (r.flags && r.flags.length) ? ['  flags: ', el('span', { id: 'flags' }, r.flags.join(', '))] : ''),
    el('div', { class: 'cols' },
      el('section', {}, el('h2', {}, 'Where the time goes'), kv([
        durRow('latency_ns'), durRow('network_ns'), durRow('server_ns'), durRow('transfer_ns'),
        durRow('client_net_ns'), durRow('rtt_ns'),
        ['net_from', r.net_from ?? '-', { 'data-key': 'net_from' }], ['confidence', r.confidence ?? '-', { 'data-key': 'confidence' }],
        ['near', r.near ?? '-', { 'data-key': 'near' }], ['why', r.why ?? '-', { 'data-key': 'why' }],
      ])),
      el('section', {}, el('h2', {}, 'Times'), kv([
        timeRow('req_first_ns'), timeRow('req_last_ns'), timeRow('resp_first_ns'), timeRow('resp_last_ns'),
        timeRow('server_ack_ns'), timeRow('client_ack_ns'),
        ['request', `${r.req_packets} packets, ${r.req_bytes} B`], ['response', `${r.resp_packets} packets, ${r.resp_bytes} B`],
        ['transport', r.transport + (r.vlan ? ' vlan ' + r.vlan : '')],
      ])),
      el('section', {}, el('h2', {}, 'Fields'), fields.length ? kv(fields.map(([k, v]) => [k, String(v), { 'data-key': k }])) : el('p', { class: 'muted' }, 'none'),
        r.frontend ? el('p', {}, 'called by front exchange ', el('a', { href: link('exchange', { id: r.frontend, tz }), id: 'frontend' }, r.frontend)) : ''),
    ),
    r.backends ? el('section', { id: 'tiers' },
      el('h2', {}, 'Backend calls'),
      kv([durRow('tier_before_ns'), durRow('tier_backend_ns'), durRow('tier_after_ns'), durRow('tier_self_ns')]),
      waterfall(r, backends, tz),
      r.backends.length > MAX_BACKENDS ? el('p', { class: 'muted' }, `the first ${MAX_BACKENDS} of ${r.backends.length} calls are drawn`) : '',
    ) : '',
    el('h2', {}, 'Timing ladder'),
    ladder(r, lad),
    el('p', { class: 'muted' }, 'Packets cross the capture point at their captured times. The client and server lanes are placed half a round trip away (client_net_ns/2, network_ns/2), so the server\u2019s own time is the gap on its lane.'),
    el('div', { id: 'across' }),
    el('h2', {}, 'Packets'),
    el('p', {},
      el('a', { href: pcapURL, download: `tapvault-message-${r.id}.pcap`, id: 'download' }, 'Download these packets (pcap)'),
      ' · ',
      el('a', { href: link('packets', { filter: connFilter(r), from: from.toString(), to: to.toString(), tz }), id: 'connection' }, 'the connection\u2019s packets around it')),
    pktErr ? errorBox(pktErr) : packetTable(pkts, tz || 'UTC'),
  );
  setStatus(`loaded in ${Math.round(performance.now() - t0)} ms`);
  // Other capture points' view of it, when the server has any (after the
  // page is up: each is a search through another store).
  const across = await acrossSections(id);
  const slot = document.getElementById('across');
  if (slot && across.length) slot.replaceChildren(...across);
}
