// Helpers shared by the views. Nothing here inserts markup: el() builds
// elements and text nodes only, because record and packet text is hostile.

const SVGNS = 'http://www.w3.org/2000/svg';

// el(tag, attrs, ...children): an element; children that are not nodes
// become text nodes. Attributes starting with "on" are listeners.
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  append(e, children);
  return e;
}

// svg(tag, attrs, ...children): the same in the SVG namespace.
export function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVGNS, tag);
  setAttrs(e, attrs);
  append(e, children);
  return e;
}

function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(e, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// route() reads the view and its state from the URL's fragment:
// #/view?k=v&k=v.
export function route() {
  const h = location.hash.replace(/^#\/?/, '');
  const q = h.indexOf('?');
  const view = (q < 0 ? h : h.slice(0, q)) || 'overview';
  const params = new URLSearchParams(q < 0 ? '' : h.slice(q + 1));
  return { view, params };
}

// link(view, params): the fragment of a view with its state.
export function link(view, params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  }
  const s = p.toString();
  return '#/' + view + (s ? '?' + s : '');
}

export class HTTPError extends Error {
  constructor(status, msg) { super(msg); this.status = status; }
}

// api(path, params): fetch an API path with query parameters; the session
// cookie (off loopback) goes with it, same-origin only.
export async function api(path, params) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, String(v));
  }
  const r = await fetch(u, { credentials: 'same-origin', cache: 'no-store' });
  if (!r.ok) {
    let msg = r.status + ' ' + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
    if (r.status === 401) document.dispatchEvent(new CustomEvent('tv-unauthorized'));
    throw new HTTPError(r.status, msg);
  }
  return r;
}

// apiURL(path, params): the same URL as api() fetches, for links.
export function apiURL(path, params) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, String(v));
  }
  return u.pathname + u.search;
}

// parseJSON parses one JSON document; integers beyond 2^53 (nanosecond
// times) become BigInts, read from their source text so no digit is lost.
export function parseJSON(text) {
  return JSON.parse(text, (k, v, ctx) => {
    if (typeof v === 'number' && !Number.isSafeInteger(v) && Number.isInteger(v) && ctx && ctx.source) {
      return BigInt(ctx.source);
    }
    return v;
  });
}

// jsonLines parses an application/x-ndjson body.
export function jsonLines(text) {
  const out = [];
  for (const line of text.split('\n')) if (line.trim() !== '') out.push(parseJSON(line));
  return out;
}

// big(v): a nanosecond time as a BigInt (0n when absent).
export function big(v) {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(Math.trunc(v));
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
  return 0n;
}

// The time zone of every time shown: the URL's tz, UTC by default.
export function zone() {
  return route().params.get('tz') || 'UTC';
}

const dtfCache = new Map();
function dtf(tz) {
  if (!dtfCache.has(tz)) {
    dtfCache.set(tz, new Intl.DateTimeFormat('en-CA', {
      timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23', timeZoneName: 'shortOffset',
    }));
  }
  return dtfCache.get(tz);
}

// fmtTime(ns): a nanosecond time, to the nanosecond: RFC 3339 in UTC
// (2024-01-01T00:00:00.050290295Z), or the wall time and offset in the
// chosen zone. 0 is unknown: "-".
export function fmtTime(ns, tz) {
  ns = big(ns);
  if (ns === 0n) return '-';
  tz = tz || zone();
  let sec = ns / 1000000000n;
  let frac = ns % 1000000000n;
  if (frac < 0n) { frac += 1000000000n; sec -= 1n; }
  const f = frac.toString().padStart(9, '0');
  const d = new Date(Number(sec) * 1000);
  if (tz === 'UTC') return d.toISOString().slice(0, 19) + '.' + f + 'Z';
  let parts;
  try { parts = dtf(tz).formatToParts(d); } catch (e) { return d.toISOString().slice(0, 19) + '.' + f + 'Z'; }
  const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}.${f} ${p.timeZoneName}`;
}

// fmtDur(ns): a duration, exact to the nanosecond; -1 (unknown) is "-".
export function fmtDur(ns) {
  if (ns === undefined || ns === null) return '-';
  const n = Number(ns);
  if (n < 0) return '-';
  if (n < 1e3) return n + ' ns';
  if (n < 1e6) return (n / 1e3).toFixed(3) + ' µs';
  if (n < 1e9) return (n / 1e6).toFixed(6) + ' ms';
  return (n / 1e9).toFixed(9) + ' s';
}

// fmtCount: thousands separated by thin spaces, exact.
export function fmtCount(n) {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, '\u2009');
}

// fmtBytes: binary units with the exact count in a title.
export function fmtBytes(n) {
  n = Number(n);
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(2)) + ' ' + u[i];
}

// fmtRate: a per-second rate with SI prefixes.
export function fmtRate(v, unit) {
  const p = ['', 'k', 'M', 'G', 'T'];
  let i = 0;
  while (Math.abs(v) >= 1000 && i < p.length - 1) { v /= 1000; i++; }
  return v.toFixed(i === 0 ? 0 : 2) + ' ' + p[i] + unit;
}

export function setStatus(msg, isError) {
  const s = document.getElementById('status');
  s.textContent = msg || '';
  s.className = isError ? 'error' : '';
}

// errorBox shows an error message as text.
export function errorBox(err) {
  return el('pre', { class: 'error' }, err && err.message ? err.message : String(err));
}
