// Diagnosis: the verdict of /api/v1/diagnose (docs/analytics.md,
// "Diagnose") for the window and server in the URL: per finding its
// headline, its sentences, its figures, the client networks and backends
// it names, and the example exchanges behind it, each a link to the
// exchange. The sentences name servers and protocols taken from records,
// so they go into text nodes only, like everything else.
import { el, api, link, parseJSON, fmtTime, fmtDur, fmtCount, setStatus, errorBox } from './util.js';

// The parameters the endpoint takes, kept in the fragment.
const keys = ['from', 'to', 'server', 'slow_network', 'slow_server', 'min_count'];

// A figure: names ending in _ns are durations, _pct percentages, the rest
// counts.
function figure(name, v) {
  if (name.endsWith('_ns')) return fmtDur(v);
  if (name.endsWith('_pct')) return String(v) + ' %';
  return fmtCount(v);
}

export async function diagnose(main, params) {
  const st = Object.fromEntries(params);
  const win = { from: st.from, to: st.to, tz: st.tz };
  const inputs = {};
  const form = el('form', { class: 'query', id: 'diagnose-form' },
    keys.map((k) => {
      inputs[k] = el('input', { name: k, id: 'd-' + k, value: st[k] || '', size: k === 'from' || k === 'to' ? 32 : 14, spellcheck: 'false',
        placeholder: { from: 'from (RFC 3339, -15m, ns)', to: 'to', server: '10.0.0.5:80 or /24', slow_network: '20ms', slow_server: '10ms', min_count: '20' }[k] });
      return [el('label', {}, k.replace('_', ' ') + ' ', inputs[k]), ' '];
    }),
    el('button', { type: 'submit' }, 'Diagnose'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const next = { tz: st.tz };
    for (const k of keys) next[k] = inputs[k].value.trim();
    location.hash = link('diagnose', next);
  });
  const out = el('div', { id: 'diagnose-out' }, el('p', { class: 'muted' }, 'Reading every record of the window…'));
  main.replaceChildren(el('h1', {}, 'Diagnosis: where the time goes'), form, out);

  const t0 = performance.now();
  let d;
  try {
    const q = {};
    for (const k of keys) q[k] = st[k];
    d = parseJSON(await (await api('/api/v1/diagnose', q)).text());
  } catch (e) {
    out.replaceChildren(errorBox(e));
    return;
  }
  const ex = (expr) => link('exchanges', { ...win, expr, sort: '-latency_ns' });
  const serverLink = (s) => el('a', { href: ex('server ' + s), class: 'mono' }, s);

  const head = el('p', { id: 'diagnose-summary', 'data-exchanges': String(d.exchanges), 'data-split': String(d.split) },
    `${fmtTime(d.from_ns, st.tz)} to ${fmtTime(d.to_ns, st.tz)}: `,
    el('a', { href: link('exchanges', { ...win, expr: st.server ? 'server ' + st.server : '' }) }, `${fmtCount(d.exchanges)} exchanges`),
    `, ${fmtCount(d.split)} with a time split; slow network ≥ ${fmtDur(d.slow_network_ns)}, slow server ≥ ${fmtDur(d.slow_server_ns)}, at least ${fmtCount(d.min_count)} exchanges a server.`,
    d.sampled ? ' Percentiles and examples come from a uniform sample (counts are exact).' : '',
    d.not_enough_servers ? ` ${fmtCount(d.not_enough_servers)} servers (${fmtCount(d.not_enough_exchanges)} exchanges) had too few exchanges to judge.` : '');

  const findings = (d.findings || []).map((f, i) => {
    const nums = Object.entries(f.numbers || {});
    const parts = [
      el('h2', { class: 'finding-text' }, `${i + 1}. `, f.text),
      el('p', { class: 'muted' }, el('span', { class: 'kind' }, f.kind), ' · ',
        f.server ? [serverLink(f.server), ` (${f.proto || ''}) · `] : '',
        el('a', { href: ex(f.server ? 'server ' + f.server : ''), class: 'count', 'data-count': String(f.count), 'data-of': String(f.of) },
          `${fmtCount(f.count)} of ${fmtCount(f.of)}`),
        Number(f.impact_ns) > 0 ? ` · accounts for ${fmtDur(f.impact_ns)}` : ''),
      (f.detail || []).map((s) => el('p', { class: 'finding-detail' }, s)),
    ];
    if (nums.length) {
      parts.push(el('details', { class: 'numbers' }, el('summary', {}, `figures (${nums.length})`),
        el('table', { class: 'kv numbers' }, el('tbody', {}, nums.map(([k, v]) =>
          el('tr', { 'data-key': k }, el('th', {}, k), el('td', { 'data-value': String(v) }, figure(k, v))))))));
    }
    if (f.clients && f.clients.length) {
      parts.push(el('table', { class: 'grid clients' },
        el('thead', {}, el('tr', {}, ['client network', 'exchanges', 'slow', 'path p50', 'slow path p50', 'named'].map((h) => el('th', {}, h)))),
        el('tbody', {}, f.clients.map((c) => el('tr', {},
          el('td', { class: 'mono' }, el('a', { href: ex(`server ${f.server} and client ${c.net}`) }, c.net)),
          el('td', { class: 'num' }, fmtCount(c.count)), el('td', { class: 'num' }, fmtCount(c.slow)),
          el('td', { class: 'num' }, fmtDur(c.path_p50_ns)), el('td', { class: 'num' }, fmtDur(c.slow_path_p50_ns)),
          el('td', {}, c.named ? 'yes' : ''))))));
    }
    if (f.backends && f.backends.length) {
      parts.push(el('p', { class: 'backends' }, 'Backends: ', f.backends.map((b, j) => [j ? ', ' : '',
        serverLink(b.server), ` (${b.proto}, `, el('a', { href: ex(`server ${b.server}`) }, `${fmtCount(b.calls)} calls`), ')'])));
    }
    if (f.examples && f.examples.length) {
      parts.push(el('p', { class: 'examples' }, 'Exchanges: ', f.examples.map((e, j) => [j ? ', ' : '',
        el('a', { href: link('exchange', { id: e.id, tz: st.tz }), class: 'example mono', 'data-id': e.id }, e.id),
        ` (${e.role}, ${e.metric.replace(/_ns$/, '')} ${fmtDur(e.value_ns)})`])));
    }
    return el('section', { class: 'finding', 'data-kind': f.kind, 'data-server': f.server || '' }, parts);
  });

  const servers = (d.servers || []).map((s) => el('tr', { 'data-server': s.server },
    el('td', {}, serverLink(s.server)), el('td', {}, s.proto || ''),
    el('td', { class: 'num' }, fmtCount(s.exchanges)), el('td', { class: 'num' }, fmtCount(s.split)),
    ['latency_ns', 'network_ns', 'server_ns', 'transfer_ns', 'client_net_ns'].map((k) => el('td', { class: 'num' }, fmtDur(s[k]?.p50))),
    el('td', {}, (s.verdicts || []).join(', '))));
  out.replaceChildren(head,
    el('div', { id: 'findings', 'data-count': String(findings.length) }, findings.length ? findings : el('p', { class: 'muted' }, 'no findings')),
    ...(servers.length ? [el('h2', {}, 'Servers'), el('table', { class: 'grid', id: 'diagnose-servers' },
      el('thead', {}, el('tr', {}, ['server', 'proto', 'exchanges', 'split', 'latency p50', 'network p50', 'server p50', 'transfer p50', 'client net p50', 'verdicts'].map((h) => el('th', {}, h)))),
      el('tbody', {}, servers))] : []));
  setStatus(`diagnosed in ${Math.round(performance.now() - t0)} ms`);
}
