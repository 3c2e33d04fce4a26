// Fleet: the centre's view (tapvault serve --fleet, docs/fleet.md). The
// sensors and their health (/api/v1/fleet/sensors: reachable, ship lag,
// disk, clock), then the exchanges across every sensor with a sensor
// column (/api/v1/fleet/exchanges, sorted by latency, paged by the
// server), each with a drill-down to its packets fetched by the centre from
// the sensor that holds them; latency quantiles per sensor; and exchanges
// seen by two sensors with the uncertainty their clocks allow; the verdict
// across locations from the probes (/api/v1/fleet/locations). Sensors that
// did not answer are named above the tables: answers go on without them.
// An exchange's "across" link opens it across the sensors that saw it
// (#/fleet?across=ID&at=SENSOR, acrossView). Every value shown is text.
import { el, api, apiURL, link, parseJSON, big, fmtTime, fmtDur, fmtCount, fmtBytes, setStatus } from './util.js';
import { acrossAnswerSections } from './across.js';

const PAGE = 100;

function health(s, name) {
  const v = s.health && s.health[name];
  return v ? Number(v.value) : null;
}

// state shows one sensor's reachability: up, busy (every query slot held
// by pulls) or down.
function state(s) {
  if (!s.probed) return el('span', { class: 'muted' }, 'not probed yet');
  if (!s.reachable) return el('span', { class: 'error', title: s.error || '' }, 'down');
  return s.busy ? el('span', {}, 'busy') : el('span', {}, 'up');
}

// drops: the capture's drop and loss counters the sensor ships (running
// totals since its start), added up; each one in the title.
function drops(s) {
  const parts = Object.entries(s.health || {}).filter(([k]) => /dropped|lost/.test(k));
  if (parts.length === 0) return '-';
  const total = parts.reduce((a, [, v]) => a + Number(v.value), 0);
  return el('span', { title: parts.map(([k, v]) => `${k} ${v.value}`).join('\n') }, fmtCount(total));
}

function clock(s) {
  if (!s.clock) return '-';
  const c = s.clock;
  if (!c.synced) return 'unsynchronised';
  return `${c.source || 'synced'} ±${fmtDur(c.error_ns)}`;
}

// offset: the sensor's clock against the centre's, flagged when it is no
// larger than what the probe can tell (half its round trip).
function offset(s) {
  const o = s.clock_offset;
  if (!o) return '-';
  const sign = o.ns < 0 ? '-' : '+';
  const t = `${sign}${fmtDur(Math.abs(o.ns))} ±${fmtDur(o.uncertainty_ns)}`;
  return o.uncertain ? el('span', { class: 'muted', title: 'within its uncertainty: the sign is not established' }, t + ' (uncertain)') : t;
}

function sensorsTable(a) {
  const rows = a.sensors.map((s) => {
    const lag = health(s, 'fleet_ship_lag_ns');
    const free = health(s, 'disk_free_bytes');
    const unshipped = health(s, 'fleet_unshipped_bytes');
    return el('tr', { 'data-sensor': s.name },
      el('td', {}, s.name),
      el('td', {}, s.addr),
      el('td', {}, state(s)),
      el('td', {}, s.last_ok ? fmtTime(s.last_ok) : 'never'),
      el('td', { class: 'num' }, lag === null ? '-' : fmtDur(lag)),
      el('td', { class: 'num' }, unshipped === null ? '-' : fmtBytes(unshipped)),
      el('td', { class: 'num' }, free === null ? '-' : fmtBytes(free)),
      el('td', { class: 'num' }, drops(s)),
      el('td', {}, clock(s)),
      el('td', {}, offset(s)));
  });
  return el('table', { id: 'fleet-sensors', class: 'grid' },
    el('thead', {}, el('tr', {}, ['Sensor', 'Fleet port', 'State', 'Last answer', 'Ship lag', 'Unshipped', 'Disk free', 'Drops', 'Clock', 'Offset to centre'].map((h) => el('th', {}, h)))),
    el('tbody', {}, rows));
}

function missingNote(missing) {
  if (!missing || missing.length === 0) return null;
  return el('p', { id: 'fleet-missing', class: 'error' },
    'Not answering: ', missing.join(', '), '. Their newest records may not have reached ClickHouse, and their packets cannot be fetched now; everything else is shown.');
}

function filterForm(params, sensors) {
  const f = {};
  const field = (name, label, size) => {
    f[name] = el('input', { name, id: 'fleet-' + name, size: size || 14, value: params.get(name) || '' });
    return el('label', {}, label + ' ', f[name], ' ');
  };
  const sel = el('select', { name: 'sensor', id: 'fleet-sensor' }, el('option', { value: '' }, 'all sensors'),
    sensors.map((s) => el('option', { value: s.name, selected: params.get('sensor') === s.name }, s.name)));
  const form = el('form', { id: 'fleet-filter', class: 'query' },
    el('label', {}, 'Sensor ', sel, ' '), field('proto', 'Proto', 8), field('server', 'Server'), field('client', 'Client'),
    field('from', 'From', 22), field('to', 'To', 22), el('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = { sensor: sel.value };
    for (const k of ['proto', 'server', 'client', 'from', 'to']) p[k] = f[k].value.trim();
    if (params.get('tz')) p.tz = params.get('tz');
    location.hash = link('fleet', p);
  });
  return form;
}

// hostPort splits "10.0.0.1:80" or "[2001:db8::1]:443".
function hostPort(s) {
  const m = /^\[(.*)\]:(\d+)$/.exec(s) || /^(.*):(\d+)$/.exec(s);
  return m ? [m[1], m[2]] : [s, ''];
}

// mergedURL: the exchange's connection at every sensor that holds it, a
// second either side, merged in time order (one pcapng interface per
// sensor): the centre's /api/v1/packets, narrowed by the client's address.
function mergedURL(x) {
  const [ch, cp] = hostPort(x.client);
  const [sh, sp] = hostPort(x.server);
  const t = x.transport === 17 ? 'udp' : 'tcp';
  const end = big(x.resp_last) > 0n ? big(x.resp_last) : big(x.req_last);
  return apiURL('/api/v1/packets', {
    host: ch,
    filter: `${t} and host ${sh} and port ${cp} and port ${sp}`,
    from: String(big(x.req_first) - 1000000000n),
    to: String(end + 1000000000n),
  });
}

// acrossLink opens exchange x across the other sensors; null with one
// sensor.
function exchangesTable(a, acrossLink) {
  const rows = a.exchanges.map((x) => el('tr', { 'data-id': x.id, 'data-sensor': x.sensor },
    el('td', {}, x.sensor),
    el('td', {}, fmtTime(x.req_first)),
    el('td', {}, x.proto),
    el('td', {}, x.client),
    el('td', {}, x.server),
    el('td', { class: 'num' }, fmtDur(x.latency)),
    el('td', { class: 'num' }, fmtDur(x.network)),
    el('td', { class: 'num' }, fmtDur(x.server_time)),
    el('td', {}, x.class),
    el('td', {}, el('a', {
      class: 'pcap', download: '',
      href: apiURL('/api/v1/messages/' + encodeURIComponent(x.id) + '/packets', { sensor: x.sensor }),
    }, 'pcap'), ' ', el('a', {
      class: 'merged', download: '', href: mergedURL(x),
      title: 'the connection at every sensor that holds it, merged in time order',
    }, 'all sensors'), acrossLink ? [' ', el('a', {
      class: 'across', href: acrossLink(x),
      title: 'the exchange at every other sensor that saw it: one ladder with a lane per sensor, and the time between them',
    }, 'across')] : null)));
  return el('table', { id: 'fleet-exchanges', class: 'grid' },
    el('thead', {}, el('tr', {}, ['Sensor', 'Time', 'Proto', 'Client', 'Server', 'Latency', 'Network', 'Server time', 'Class', 'Packets'].map((h) => el('th', {}, h)))),
    el('tbody', {}, rows));
}

// latencyTable: exact quantiles per sensor and protocol. Each latency is
// measured on one sensor's clock, so comparing rows carries no clock
// offset between sensors.
function latencyTable(a) {
  return el('table', { id: 'fleet-latency', class: 'grid' },
    el('thead', {}, el('tr', {}, ['Sensor', 'Proto', 'Exchanges', 'p50', 'p90', 'p99', 'Max', 'Network p50', 'Server p50'].map((h) => el('th', {}, h)))),
    el('tbody', {}, a.groups.map((g) => el('tr', { 'data-sensor': g.sensor, 'data-proto': g.proto },
      el('td', {}, g.sensor), el('td', {}, g.proto), el('td', { class: 'num' }, fmtCount(g.count)),
      el('td', { class: 'num' }, fmtDur(g.p50)), el('td', { class: 'num' }, fmtDur(g.p90)), el('td', { class: 'num' }, fmtDur(g.p99)),
      el('td', { class: 'num' }, fmtDur(g.max)), el('td', { class: 'num' }, fmtDur(g.network_p50)), el('td', { class: 'num' }, fmtDur(g.server_time_p50))))));
}

// transitTable: exchanges seen by two sensors, how much later the second
// saw the request, and whether the two clocks' errors allow saying so.
function transitTable(a) {
  if (a.transits.length === 0) return el('p', { class: 'muted', id: 'fleet-transit' }, 'No exchange was seen by two sensors in this selection.');
  return el('table', { id: 'fleet-transit', class: 'grid' },
    el('thead', {}, el('tr', {}, ['First', 'Second', 'Proto', 'Client', 'Server', 'Later by', 'Clocks allow ±', ''].map((h) => el('th', {}, h)))),
    el('tbody', {}, a.transits.map((x) => el('tr', { 'data-uncertain': String(x.uncertain) },
      el('td', {}, x.first), el('td', {}, x.second), el('td', {}, x.proto), el('td', {}, x.client), el('td', {}, x.server),
      el('td', { class: 'num' }, fmtDur(x.delta_ns)),
      el('td', { class: 'num' }, x.uncertainty_known ? fmtDur(x.uncertainty_ns) : 'unknown'),
      el('td', {}, x.uncertain ? el('span', { class: 'error', title: 'not larger than the clocks\' combined error: not established' }, 'uncertain') : '')))));
}

// locationsSection: the verdict across locations from the probe exchanges
// (/api/v1/fleet/locations, docs/probes.md): slow from every location is
// the provider's, from some only their networks'. Each location's numbers,
// and its slowest exchanges' packets from the sensor that holds them.
function locationsSection(a) {
  if (!a.samples) {
    return el('p', { class: 'muted', id: 'fleet-verdict' }, 'No probe exchanges in this window: configure probes per location (docs/probes.md, "In the fleet configuration").');
  }
  const slow = new Set(a.slow || []);
  const rows = (a.locations || []).map((l) => el('tr', { 'data-location': l.location, 'data-slow': String(slow.has(l.location)) },
    el('td', {}, l.location),
    el('td', { class: 'num' }, fmtCount(l.exchanges)),
    el('td', { class: 'num' }, l.network_p50_ns >= 0 ? fmtDur(l.network_p50_ns) : '-'),
    el('td', { class: 'num' }, l.network_p90_ns >= 0 ? fmtDur(l.network_p90_ns) : '-'),
    el('td', { class: 'num' }, l.server_p50_ns >= 0 ? fmtDur(l.server_p50_ns) : '-'),
    el('td', {}, !l.judged ? el('span', { class: 'muted' }, 'too few to judge') : [
      l.slow_network ? el('span', { class: 'error' }, 'slow network') : 'network ok',
      l.slow_server ? ', slow service' : '']),
    el('td', {}, (l.slowest || []).map((id) => {
      const sensor = (a.slowest_sensor || {})[id] || '';
      return el('a', {
        class: 'pcap', download: '', 'data-sensor': sensor, title: `exchange ${id} on ${sensor}: its packets`,
        href: apiURL('/api/v1/messages/' + encodeURIComponent(id) + '/packets', { sensor }),
      }, id, ' ');
    }))));
  return el('div', {},
    el('p', { id: 'fleet-verdict', 'data-blame': a.blame || '' }, a.text || ''),
    a.cut ? el('p', { class: 'muted' }, `Only the first ${fmtCount(a.samples)} probe exchanges were read: narrow the time range.`) : null,
    el('table', { id: 'fleet-locations', class: 'grid' },
      el('thead', {}, el('tr', {}, ['Location', 'Probe exchanges', 'Network p50', 'Network p90', 'Server p50', 'Verdict', 'Slowest (packets)'].map((h) => el('th', {}, h)))),
      el('tbody', {}, rows)));
}

// acrossView: one exchange across the sensors that saw it
// (/api/v1/fleet/across): for each, the ladder across.js draws for a
// server's peer stores, with a lane per sensor between the client's and
// the server's, the time by hop and the two clocks' uncertainty.
async function acrossView(main, params) {
  const a = parseJSON(await (await api('/api/v1/fleet/across', { id: params.get('across'), sensor: params.get('at') })).text());
  const r = a.record;
  // replaceChildren, unlike el(), would write null and arrays as text.
  main.replaceChildren(...[
    el('h1', {}, `Exchange ${a.id} at ${a.sensor}, across sensors`),
    el('p', {}, el('a', { href: link('fleet', { tz: params.get('tz') }), id: 'fleet-back' }, '← fleet')),
    missingNote(a.missing),
    el('p', { id: 'fleet-across-record' }, `${r.proto} ${r.client} → ${r.server} at ${fmtTime(r.req_first)}, latency ${fmtDur(r.latency)}.`),
    a.across.length === 0 ? el('p', { class: 'muted', id: 'fleet-across-none' }, 'No other sensor that answered holds a record of this exchange.') : null,
    acrossAnswerSections(a),
    a.not_found.length ? el('p', { class: 'muted', id: 'fleet-not-found' }, 'Not seen by ', a.not_found.join(', '), '.') : null,
  ].flat().filter((c) => c !== null));
  setStatus(`seen by ${a.across.length + 1} sensors`);
}

export async function fleet(main, params) {
  if (params.get('across')) return acrossView(main, params);
  const q = {};
  for (const k of ['sensor', 'proto', 'server', 'client', 'from', 'to']) q[k] = params.get(k) || '';
  const offset = Math.max(0, Number(params.get('offset')) || 0);
  const [sr, xr, lr, tr, lo] = await Promise.all([
    api('/api/v1/fleet/sensors'),
    api('/api/v1/fleet/exchanges', { ...q, sort: '-latency', offset, limit: PAGE }),
    api('/api/v1/fleet/latency', { ...q, by: 'sensor,proto' }),
    api('/api/v1/fleet/transit', { ...q, limit: 20 }),
    api('/api/v1/fleet/locations', { from: q.from, to: q.to }),
  ]);
  const sensors = parseJSON(await sr.text());
  const xs = parseJSON(await xr.text());
  const lat = parseJSON(await lr.text());
  const tra = parseJSON(await tr.text());
  const locs = parseJSON(await lo.text());
  const total = Number(xs.total);
  const page = (off) => link('fleet', { ...q, offset: off, tz: params.get('tz') });
  const nav = el('p', { class: 'pager' },
    offset > 0 ? el('a', { href: page(Math.max(0, offset - PAGE)), id: 'fleet-prev' }, '← previous') : null, ' ',
    `${fmtCount(total ? offset + 1 : 0)}–${fmtCount(offset + xs.exchanges.length)} of ${fmtCount(total)}, slowest first`, ' ',
    offset + PAGE < total ? el('a', { href: page(offset + PAGE), id: 'fleet-next' }, 'next →') : null);
  main.replaceChildren(...[
    el('h1', {}, 'Fleet'),
    missingNote(sensors.missing.length ? sensors.missing : xs.missing),
    sensors.metadata_error ? el('p', { class: 'error', id: 'fleet-metadata-error' }, 'ClickHouse: ', sensors.metadata_error) : null,
    el('h2', {}, 'Sensors'),
    sensorsTable(sensors),
    el('h2', {}, 'Exchanges across sensors'),
    filterForm(params, sensors.sensors),
    nav,
    exchangesTable(xs, sensors.sensors.length > 1 ? (x) => link('fleet', { across: x.id, at: x.sensor, tz: params.get('tz') }) : null),
    el('h2', {}, 'Latency by sensor'),
    latencyTable(lat),
    el('h2', {}, 'Locations'),
    el('p', { class: 'muted' }, 'The probes\' exchanges from each location: a slow network from every location is the provider\'s (or the path all share), from some only their own networks\'.'),
    locationsSection(locs),
    el('h2', {}, 'Seen by two sensors'),
    el('p', { class: 'muted' }, 'The same exchange at two capture points: how much later the second saw its request. The clocks\' combined error bounds what this can tell; a figure within it is marked uncertain.'),
    transitTable(tra),
  ].filter((c) => c !== null));
  setStatus(`${sensors.sensors.length} sensors, ${sensors.missing.length} not answering`);
}
