// Packets: a tcpdump filter and a time range, listed in Wireshark's summary
// style from the API's pcap (time order), a page at a time; a selected
// packet decoded layer by layer, with its hex; downloads of the selection.
import { el, api, apiURL, link, fmtTime, big, errorBox, setStatus, fmtCount } from './util.js';
import { readPcap, decode, hexDump } from './pcap.js';

const PAGE = 500;

// packetTable: the summary list; a click shows the packet's layers and hex
// below the table.
export function packetTable(pkts, tz) {
  const detail = el('div', { class: 'detail', id: 'packet-detail' });
  const show = (p, tr) => {
    for (const x of tr.parentNode.querySelectorAll('tr.sel')) x.classList.remove('sel');
    tr.classList.add('sel');
    const layers = p.d.layers.map((l) => el('details', { open: true }, el('summary', {}, l.name),
      el('table', { class: 'kv' }, el('tbody', {}, l.fields.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, String(v))))))));
    detail.replaceChildren(
      el('h3', {}, `Packet ${p.n}: ${p.caplen} bytes captured, ${p.wirelen} on the wire`),
      ...layers, el('pre', { class: 'hex', id: 'hex' }, hexDump(p.data).join('\n')));
  };
  const rows = pkts.map((p) => {
    const tr = el('tr', { 'data-n': p.n, 'data-ts': p.ts.toString() },
      el('td', { class: 'num' }, p.n), el('td', { class: 'time' }, fmtTime(p.ts, tz)),
      el('td', {}, p.d.src), el('td', {}, p.d.dst), el('td', {}, p.d.proto),
      el('td', { class: 'num' }, p.wirelen), el('td', { class: 'info' }, p.d.info));
    tr.addEventListener('click', () => show(p, tr));
    return tr;
  });
  return el('div', {},
    el('table', { class: 'grid packets', id: 'packets-table' },
      el('thead', {}, el('tr', {}, ['No.', 'Time', 'Source', 'Destination', 'Protocol', 'Length', 'Info'].map((h) => el('th', {}, h)))),
      el('tbody', {}, rows)),
    detail);
}

export async function packets(main, params) {
  const st = Object.fromEntries(params);
  const tz = st.tz || 'UTC';
  const skip = Math.max(0, parseInt(st.skip || '0', 10) || 0);
  const start = st.at || st.from || '';
  const first = Math.max(1, parseInt(st.n || '1', 10) || 1);
  const fFilter = el('input', { name: 'filter', id: 'filter', value: st.filter || '', size: 60, placeholder: 'tcp port 80 and host 10.0.0.1', spellcheck: 'false' });
  const fFrom = el('input', { name: 'from', id: 'pfrom', value: st.from || '', size: 32, placeholder: 'from' });
  const fTo = el('input', { name: 'to', id: 'pto', value: st.to || '', size: 32, placeholder: 'to' });
  const form = el('form', { class: 'query', id: 'packets-form' },
    el('label', {}, 'Filter ', fFilter), ' ', el('label', {}, 'From ', fFrom), ' ', el('label', {}, 'To ', fTo), ' ',
    el('button', { type: 'submit' }, 'Search'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = link('packets', { filter: fFilter.value, from: fFrom.value, to: fTo.value, tz: st.tz });
  });
  const sel = { filter: st.filter, from: st.from, to: st.to };
  const out = el('div', {}, el('p', { class: 'muted' }, 'Loading…'));
  main.replaceChildren(el('h1', {}, 'Packets'), form,
    el('p', {}, 'Download the whole selection: ',
      el('a', { href: apiURL('/api/v1/packets', sel), download: 'tapvault.pcap', id: 'download-pcap' }, 'pcap'), ' · ',
      el('a', { href: apiURL('/api/v1/packets', { ...sel, format: 'pcapng' }), download: 'tapvault.pcapng', id: 'download-pcapng' }, 'pcapng')),
    out);
  const t0 = performance.now();
  let pk;
  try {
    const r = await api('/api/v1/packets', { filter: st.filter, from: start, to: st.to, limit: PAGE + skip + 1 });
    pk = readPcap(await r.arrayBuffer()).packets;
  } catch (e) {
    out.replaceChildren(errorBox(e));
    return;
  }
  pk = pk.slice(skip);
  const more = pk.length > PAGE;
  if (more) pk = pk.slice(0, PAGE);
  const list = pk.map((p, i) => ({ ...p, n: first + i, d: decode(p) }));
  let nextLink = '';
  if (more) {
    // The next page starts at this page's last time; the packets of that
    // nanosecond already listed are skipped.
    const last = list[list.length - 1].ts;
    let same = 0;
    for (const p of list) if (p.ts === last) same++;
    const skipNext = big(start || '0') === last ? skip + same : same;
    nextLink = el('a', { id: 'next', href: link('packets', { ...st, at: last.toString(), skip: skipNext, n: first + list.length }) }, 'next page →');
  }
  // This page's packets exactly, when it starts at the selection's start
  // or at a time no earlier packet of it shares (skip 0).
  const pageLink = skip === 0 && list.length
    ? ['This page: ', el('a', { href: apiURL('/api/v1/packets', { filter: st.filter, from: start, to: st.to, limit: list.length }), download: 'tapvault-page.pcap', id: 'download-page' }, 'pcap')]
    : '';
  out.replaceChildren(
    el('p', {}, pageLink),
    el('p', { id: 'count', 'data-count': String(list.length) }, `packets ${fmtCount(first)}–${fmtCount(first + list.length - 1)}` + (more ? ' (more follow)' : ''), ' ',
      st.at ? el('a', { href: link('packets', { filter: st.filter, from: st.from, to: st.to, tz: st.tz }) }, '⇤ first page') : '', ' ', nextLink),
    packetTable(list, tz));
  setStatus(`loaded in ${Math.round(performance.now() - t0)} ms`);
}
