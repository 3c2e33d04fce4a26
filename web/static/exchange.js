// One exchange: its fields, class and evidence, the timing ladder drawn
// from its times and its drill-down packets, and the links to its packets.
import { el, api, apiURL, link, jsonLines, fmtTime, fmtDur, big, errorBox, setStatus } from './util.js';
import { readPcap, decode } from './pcap.js';
import { ladder } from './ladder.js';
import { summary, builtin } from './records.js';
import { packetTable } from './packets.js';

function kv(rows) {
  return el('table', { class: 'kv' }, el('tbody', {}, rows.filter((r) => r).map(([k, v, attrs]) => el('tr', attrs || {}, el('th', {}, k), el('td', {}, v)))));
}

// connFilter: the tcpdump filter of the record's connection.
function connFilter(r) {
  const hp = (s) => {
    const m = /^\[(.*)\]:(\d+)$/.exec(s) || /^(.*):(\d+)$/.exec(s);
    return m ? [m[1], m[2]] : [s, ''];
  };
  const [ch, cp] = hp(r.client); const [sh, sp] = hp(r.server);
  const t = r.transport === 'udp' ? 'udp' : 'tcp';
  return `${t} and host ${ch} and host ${sh} and port ${cp} and port ${sp}`;
}

export async function exchange(main, params) {
  const id = (params.get('id') || '').toLowerCase();
  const tz = params.get('tz') || '';
  if (!/^[0-9a-f]{1,16}$/.test(id)) { main.replaceChildren(errorBox('want ?id= a record ID (16 hex digits)')); return; }
  const t0 = performance.now();
  const recs = jsonLines(await (await api('/api/v1/messages', { expr: 'id ' + id, limit: 1 })).text());
  if (recs.length === 0) { main.replaceChildren(el('h1', {}, 'Exchange ' + id), errorBox('no record with ID ' + id)); return; }
  const r = recs[0];
  const pcapURL = apiURL(`/api/v1/messages/${id}/packets`, {});

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
    return { ts: p.ts, dir, kind, short, label: `#${p.n} ${fmtTime(p.ts, tz || 'UTC')} ${p.d.info}` };
  });

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
        r.frontend ? el('p', {}, 'called by front exchange ', el('a', { href: link('exchange', { id: r.frontend, tz }) }, r.frontend)) : '',
        r.backends ? el('p', {}, 'backend calls: ', r.backends.map((b) => [el('a', { href: link('exchange', { id: b, tz }) }, b), ' '])) : ''),
    ),
    el('h2', {}, 'Timing ladder'),
    ladder(r, lad),
    el('p', { class: 'muted' }, 'Packets cross the capture point at their captured times. The client and server lanes are placed half a round trip away (client_net_ns/2, network_ns/2), so the server\u2019s own time is the gap on its lane.'),
    el('h2', {}, 'Packets'),
    el('p', {},
      el('a', { href: pcapURL, download: `tapvault-message-${r.id}.pcap`, id: 'download' }, 'Download these packets (pcap)'),
      ' · ',
      el('a', { href: link('packets', { filter: connFilter(r), from: from.toString(), to: to.toString(), tz }), id: 'connection' }, 'the connection\u2019s packets around it')),
    pktErr ? errorBox(pktErr) : packetTable(pkts, tz || 'UTC'),
  );
  setStatus(`loaded in ${Math.round(performance.now() - t0)} ms`);
}
