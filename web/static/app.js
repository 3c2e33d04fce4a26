// The page's entry: login when the server asks for a token, then one view
// per URL fragment (#/overview, #/exchanges, #/exchange, #/packets,
// #/latency, #/connections, #/tiers, #/diagnose). Each
// view's whole state is in the fragment, so a link reopens it.
import { el, route, setStatus, errorBox } from './util.js';
import { overview } from './overview.js';
import { exchanges } from './exchanges.js';
import { exchange } from './exchange.js';
import { packets } from './packets.js';
import { diagnose } from './diagnose.js';
import { latency } from './latency.js';
import { connections } from './connections.js';
import { tiers } from './tiers.js';
import { fleet } from './fleet.js';

const views = { overview, latency, exchanges, exchange, packets, connections, tiers, diagnose, fleet };
let cleanup = null;
let renderSeq = 0;

async function session() {
  const r = await fetch('/ui/session', { credentials: 'same-origin', cache: 'no-store' });
  if (!r.ok) throw new Error('session: ' + r.status);
  return r.json();
}

function showLogin(msg) {
  if (cleanup) { cleanup(); cleanup = null; }
  const main = document.getElementById('main');
  const input = el('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'current-password', required: true, size: 40 });
  const err = el('p', { class: 'error', id: 'login-error' }, msg || '');
  const form = el('form', { id: 'login', class: 'login' },
    el('h1', {}, 'Log in'),
    el('p', {}, 'This server needs its API token. It is exchanged for a session cookie that scripts cannot read; the token is not stored in the page.'),
    el('label', { for: 'token' }, 'Token '), input, ' ', el('button', { type: 'submit' }, 'Log in'), err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await fetch('/ui/login', {
      method: 'POST', credentials: 'same-origin', cache: 'no-store',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token: input.value }),
    });
    input.value = '';
    if (r.ok) { render(); return; }
    let m = r.status + '';
    try { m = (await r.json()).error; } catch (e) { /* not JSON */ }
    err.textContent = m;
  });
  main.replaceChildren(form);
  main.dataset.view = 'login';
  main.dataset.ready = location.hash;
  input.focus();
}

async function render() {
  const seq = ++renderSeq;
  if (cleanup) { cleanup(); cleanup = null; }
  setStatus('');
  // data-ready names the fragment a view finished rendering (tests and
  // scripts wait on it).
  document.getElementById('main').dataset.ready = '';
  let s;
  try { s = await session(); } catch (e) { document.getElementById('main').replaceChildren(errorBox(e)); return; }
  if (seq !== renderSeq) return;
  document.getElementById('logout').hidden = !s.token_required || !s.authenticated;
  if (s.token_required && !s.authenticated) { showLogin(); return; }
  let { view, params } = route();
  // A fleet centre has no store of its own: the fleet view is its only one.
  if (s.fleet) view = 'fleet';
  for (const a of document.querySelectorAll('nav a')) {
    a.hidden = !!s.fleet !== (a.dataset.view === 'fleet');
    a.classList.toggle('active', a.dataset.view === view || (view === 'exchange' && a.dataset.view === 'exchanges'));
  }
  document.getElementById('zone').textContent = 'times: ' + (params.get('tz') || 'UTC');
  const main = document.getElementById('main');
  const fn = views[view];
  if (!fn) { main.replaceChildren(errorBox('no such view: ' + view)); return; }
  main.replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
  main.dataset.view = view;
  // A view registers what must stop when it is left (live updates) through
  // onLeave, before its first await, so leaving early stops it too.
  const leave = [];
  cleanup = () => { for (const f of leave) f(); };
  const ctx = { session: s, onLeave: (f) => leave.push(f) };
  try {
    await fn(main, params, ctx);
  } catch (e) {
    if (seq === renderSeq) main.replaceChildren(errorBox(e));
  }
  if (seq === renderSeq) main.dataset.ready = location.hash;
}

document.getElementById('logout').addEventListener('click', async () => {
  await fetch('/ui/logout', { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: '{}' });
  render();
});
document.addEventListener('tv-unauthorized', () => showLogin('The session ended or the token changed: log in again.'));
window.addEventListener('hashchange', render);
render();
