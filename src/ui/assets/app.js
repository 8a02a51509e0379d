// Keelson dashboard: plain JavaScript, no dependencies. It talks to the API only (same origin).
// Live updates come from the server-sent event stream, read with fetch so the bearer token stays in a header.

const tokenKey = 'keelson.token';
const state = { who: null, view: null, timer: 0, logAbort: null, matrixQuery: { q: '', sync: '', health: '', env: '', offset: 0 } };
const main = document.getElementById('main');

/** Creates an element: h('a', { href: '#' }, 'text', child). Text is always text (never parsed as HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

function announce(text) {
  const el = document.getElementById('announce');
  el.textContent = '';
  setTimeout(() => (el.textContent = text), 50);
}

function authHeaders() {
  const t = sessionStorage.getItem(tokenKey);
  return t ? { authorization: `Bearer ${t}` } : {};
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, init = {}) {
  const res = await fetch(path, { ...init, headers: { ...authHeaders(), ...(init.headers || {}) } });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new ApiError(res.status, body.message || `${res.status} ${res.statusText}`);
  }
  return res.json();
}

const short = (rev) => (rev ? rev.slice(0, 7) : '—');

function ago(iso) {
  if (!iso) return '';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

const badge = (kind, value) => h('span', { class: `badge ${kind}-${value}` }, value);
const canOperate = () => state.who && (state.who.role === 'operator' || state.who.role === 'admin');

// ---- login ---------------------------------------------------------------------------------------------------

/** One certificate of an app's hosts: state, expiry, issuer and the last error (never key material). */
function certificateText(c) {
  const days = c.notAfter ? Math.floor((Date.parse(c.notAfter) - Date.now()) / 86_400_000) : null;
  const parts = [c.state, c.serving ? 'served' : 'not served yet (plain HTTP)'];
  if (c.notAfter) parts.push(`expires ${c.notAfter.slice(0, 10)} (in ${days} days)`);
  if (c.issuer) parts.push(`issuer ${c.issuer}`);
  if (c.lastError) parts.push(`last error: ${c.lastError}`);
  return parts.join(' · ');
}

function renderLogin(message) {
  document.getElementById('who').textContent = '';
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'current-password', required: true });
  const form = h(
    'form',
    {
      class: 'login',
      onsubmit: async (e) => {
        e.preventDefault();
        sessionStorage.setItem(tokenKey, input.value.trim());
        await start();
      },
    },
    h('h1', {}, 'Sign in'),
    message ? h('p', { class: 'error', role: 'alert' }, message) : null,
    h('label', { for: 'token' }, 'API token'),
    input,
    h('button', { type: 'submit' }, 'Sign in'),
  );
  main.replaceChildren(form);
  input.focus();
}

function renderWho() {
  const el = document.getElementById('who');
  const w = state.who;
  const parts = [w.anonymous ? 'read-only (no tokens configured)' : `${w.name} · ${w.role}`];
  el.replaceChildren(...parts);
  if (!w.anonymous) {
    el.append(
      ' ',
      h('button', { class: 'secondary', type: 'button', onclick: () => { sessionStorage.removeItem(tokenKey); location.hash = '#/'; start(); } }, 'Sign out'),
    );
  }
  document.getElementById('nav-audit').hidden = !canOperate();
}

// ---- live updates --------------------------------------------------------------------------------------------

let events;
async function connectEvents() {
  if (events) events.abort();
  const ac = new AbortController();
  events = ac;
  const live = document.getElementById('live');
  try {
    const res = await fetch('/api/v1/events', { headers: authHeaders(), signal: ac.signal });
    if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
    live.textContent = 'live';
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const type = /^event: ?(.*)$/m.exec(block)?.[1];
        const data = /^data: ?(.*)$/m.exec(block)?.[1];
        if (type && type !== 'ping' && data) onEvent(JSON.parse(data));
      }
    }
  } catch (err) {
    if (ac.signal.aborted) return;
  }
  if (ac.signal.aborted) return;
  live.textContent = 'disconnected; reconnecting…';
  setTimeout(connectEvents, 2000);
}

function onEvent(e) {
  if (e.type === 'sync.completed') announce(`sync of ${e.env} ${e.result}`);
  // Coalesce bursts of events into one refresh of what is on screen.
  clearTimeout(state.timer);
  state.timer = setTimeout(() => state.view?.refresh(e), 250);
}

// ---- matrix --------------------------------------------------------------------------------------------------

function matrixView() {
  const q = state.matrixQuery;
  const heading = h('h1', {}, 'Environments');
  const table = h('table', { class: 'matrix' });
  const status = h('p', { class: 'pager', role: 'status' });
  const banner = h('div');
  const pageSize = 100;

  const field = (label, el) => h('label', {}, label, el);
  const search = h('input', { type: 'search', id: 'filter-q', value: q.q, placeholder: 'app name' });
  const select = (id, values, current) => h('select', { id }, h('option', { value: '' }, 'any'), values.map((v) => h('option', { value: v, selected: v === current }, v)));
  const sync = select('filter-sync', ['Synced', 'OutOfSync', 'Failed', 'Unknown'], q.sync);
  const health = select('filter-health', ['Healthy', 'Progressing', 'Degraded', 'Missing', 'Suspended', 'Unknown'], q.health);
  const envSel = h('select', { id: 'filter-env' }, h('option', { value: '' }, 'all'));
  let debounce;
  const apply = () => {
    Object.assign(q, { q: search.value.trim(), sync: sync.value, health: health.value, env: envSel.value, offset: 0 });
    load();
  };
  search.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(apply, 200);
  });
  for (const s of [sync, health, envSel]) s.addEventListener('change', apply);
  const prev = h('button', { type: 'button', class: 'secondary', onclick: () => { q.offset = Math.max(0, q.offset - pageSize); load(); } }, 'Previous page');
  const next = h('button', { type: 'button', class: 'secondary', onclick: () => { q.offset += pageSize; load(); } }, 'Next page');
  const pageText = h('span');
  status.append(prev, pageText, next);
  const filters = h('div', { class: 'filters', role: 'search' }, field('Filter apps', search), field('Sync', sync), field('Health', health), field('Environment', envSel));
  main.replaceChildren(heading, banner, filters, status, table);

  async function envAction(env, action) {
    await api(`/api/v1/environments/${encodeURIComponent(env)}/${action}`, { method: 'POST' }).then(
      () => announce(`${env} ${action === 'sync' ? 'synced' : action + 'd'}`),
      (err) => announce(`${action} failed: ${err.message}`),
    );
    load();
  }

  async function load() {
    const params = new URLSearchParams({ offset: String(q.offset), limit: String(pageSize) });
    for (const k of ['q', 'sync', 'health', 'env']) if (q[k]) params.set(k, q[k]);
    let m;
    try {
      m = await api(`/api/v1/matrix?${params}`);
    } catch (err) {
      return handleError(err);
    }
    document.getElementById('revision').textContent = m.revision ? `revision ${short(m.revision)} — ${(m.commit?.message || '').split('\n')[0]}` : 'no revision yet';
    if (envSel.options.length === 1 || envSel.dataset.envs !== m.environments.map((e) => e.name).join()) {
      // Keep the list of every environment, even when filtered to one.
      if (!q.env) {
        envSel.replaceChildren(h('option', { value: '' }, 'all'), ...m.environments.map((e) => h('option', { value: e.name }, e.name)));
        envSel.dataset.envs = m.environments.map((e) => e.name).join();
      }
    }
    banner.replaceChildren(...m.environments.filter((e) => e.error).map((e) => h('p', { class: 'error', role: 'alert' }, `${e.name}: ${e.error}`)));
    // Another engine runs these environments (README: "Several engines on one ops repository").
    for (const e of m.environments.filter((x) => x.standby)) banner.append(h('p', { class: 'notice' }, `${e.name}: ${e.standby}`));
    if (state.who?.anonymous) banner.append(h('p', { class: 'notice' }, 'Read-only: no API tokens are configured, so actions are disabled.'));
    const from = m.total === 0 ? 0 : m.offset + 1;
    pageText.textContent = `apps ${from}–${m.offset + m.rows.length} of ${m.total}`;
    prev.disabled = m.offset === 0;
    next.disabled = m.offset + m.rows.length >= m.total;
    const head = h('tr', {}, h('th', { scope: 'col' }, 'App'), m.environments.map((e) =>
      h('th', { scope: 'col' }, h('div', { class: 'envhead' },
        h('span', {}, `${e.name} `, h('span', { class: 'meta' }, `${e.target}${e.syncing ? ' · syncing…' : ''}`)),
        e.paused ? h('span', { class: 'badge paused' }, 'Paused') : null,
        canOperate() ? h('div', { class: 'actions' },
          h('button', { type: 'button', onclick: () => envAction(e.name, 'sync') }, `Sync ${e.name}`),
          h('button', { type: 'button', class: 'secondary', onclick: () => envAction(e.name, e.paused ? 'resume' : 'pause') }, `${e.paused ? 'Resume' : 'Pause'} ${e.name}`),
        ) : null,
      )),
    ));
    const body = h('tbody');
    const rows = [];
    for (const r of m.rows) {
      const tds = m.environments.map((e) => {
        const c = r.cells[e.name];
        if (!c) return h('td', { class: 'cell' }, h('span', { class: 'meta' }, 'not in this environment'));
        const version = c.version ?? '—';
        const target = c.desiredVersion && c.version !== c.desiredVersion ? ` → ${c.desiredVersion}` : '';
        return h('td', { class: 'cell', 'data-env': e.name, 'data-app': r.app },
          h('a', { href: `#/app/${encodeURIComponent(e.name)}/${encodeURIComponent(r.app)}`, 'aria-label': `${r.app} in ${e.name}: version ${version}${target}, ${c.sync}, ${c.health}` },
            h('span', { class: 'version' }, version + target), ' ',
            badge('s', c.sync), badge('h', c.health),
            c.paused ? h('span', { class: 'badge paused' }, 'Paused') : null,
            h('span', { class: 'meta', title: c.commitMessage || '' }, `${short(c.revision)} ${c.commitMessage || ''}`),
            h('span', { class: 'meta' }, c.since ? `since ${ago(c.since)} · ${c.ready}/${c.desired} ready` : `${c.ready}/${c.desired} ready`),
          ));
      });
      rows.push(h('tr', {}, h('th', { scope: 'row' }, r.app), tds));
    }
    body.append(...rows);
    table.replaceChildren(h('caption', {}, `${m.total} app${m.total === 1 ? '' : 's'} × ${m.environments.length} environment${m.environments.length === 1 ? '' : 's'}`), h('thead', {}, head), body);
  }

  load();
  return { refresh: load };
}

// ---- app page ------------------------------------------------------------------------------------------------

function appView(env, app) {
  const base = `/api/v1/environments/${encodeURIComponent(env)}/apps/${encodeURIComponent(app)}`;
  const title = h('h1', {}, `${app} `, h('span', { class: 'meta', style: false }, `in ${env}`));
  const back = h('p', {}, h('a', { href: '#/' }, '← All environments'));
  const actions = h('div', { class: 'actions' });
  const summary = h('dl', { class: 'summary' });
  const replicas = h('table', { id: 'replicas' });
  const diff = h('pre', { id: 'diff', tabindex: 0, 'aria-label': 'plan and diff' });
  const history = h('table', { id: 'history' });
  const eventsList = h('ul', { class: 'events', id: 'events' });
  const logs = h('pre', { class: 'logs', id: 'logs', tabindex: 0, 'aria-label': 'live log tail', 'aria-live': 'off' });
  const errorBox = h('div');
  main.replaceChildren(
    back, title, errorBox, actions, summary,
    h('h2', {}, 'Replicas'), replicas,
    h('h2', {}, 'Plan (desired vs live)'), diff,
    h('h2', {}, 'Sync history'), history,
    h('h2', {}, 'Recent events'), eventsList,
    h('h2', {}, 'Logs (live)'), logs,
  );

  async function act(action) {
    const path = action === 'sync' ? `/api/v1/environments/${encodeURIComponent(env)}/sync` : `${base}/${action}`;
    const body = action === 'sync' ? JSON.stringify({ app }) : undefined;
    for (const b of actions.querySelectorAll('button')) b.disabled = true;
    try {
      const r = await api(path, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      announce(action === 'sync' ? `sync ${r.result}: ${r.message}` : `${app} ${r.paused ? 'paused' : 'resumed'}`);
    } catch (err) {
      announce(`${action} failed: ${err.message}`);
      errorBox.replaceChildren(h('p', { class: 'error', role: 'alert' }, `${action} failed: ${err.message}`));
    }
    load();
  }

  /** The GitOps rollback: shows the revision it restores, asks for confirmation and a reason, commits through the engine. */
  async function rollbackAction() {
    const info = await api(`${base}/rollback`).catch((err) => ({ writable: false, reason: err.message, target: null }));
    const t = info.target;
    const why = !info.writable ? info.reason : !t ? 'no earlier healthy revision of this app is known' : null;
    const label = t ? `Roll back to ${short(t.revision)}${t.version ? ` (${t.version})` : ''}` : 'Roll back';
    const button = h('button', { type: 'button', class: 'secondary', id: 'action-rollback', disabled: !!why, 'aria-describedby': why ? 'rollback-why' : null, onclick: () => confirmRollback(t) }, label);
    const box = h('span', { class: 'rollback' }, button, why ? h('span', { class: 'meta', id: 'rollback-why' }, ` Rollback unavailable: ${why}`) : null);
    // Overlapping refreshes: the newest answer replaces the older one.
    const old = actions.querySelector('.rollback');
    if (old) old.replaceWith(box);
    else actions.append(box);
  }

  function confirmRollback(t) {
    const reason = h('input', { id: 'rollback-reason', type: 'text', required: true, maxlength: 500 });
    const dialog = h('dialog', { id: 'rollback-dialog', 'aria-labelledby': 'rollback-title' });
    const form = h('form', {
      method: 'dialog',
      onsubmit: async (e) => {
        e.preventDefault();
        dialog.close();
        dialog.remove();
        for (const b of actions.querySelectorAll('button')) b.disabled = true;
        try {
          const r = await api(`${base}/rollback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ to: t.revision, reason: reason.value.trim() }) });
          announce(r.message);
          errorBox.replaceChildren(h('p', { class: 'notice', role: 'status' }, r.message));
        } catch (err) {
          announce(`rollback failed: ${err.message}`);
          errorBox.replaceChildren(h('p', { class: 'error', role: 'alert' }, `rollback failed: ${err.message}`));
        }
        load();
      },
    },
      h('h2', { id: 'rollback-title' }, `Roll back ${app} in ${env}?`),
      h('p', {}, `This commits the declaration of ${app} as at revision ${short(t.revision)}${t.version ? ` (version ${t.version})` : ''} to the ops repository; the engine then deploys it.`),
      h('label', { for: 'rollback-reason' }, 'Reason (written into the commit)'),
      reason,
      h('div', { class: 'actions' },
        h('button', { type: 'submit', id: 'rollback-confirm' }, 'Commit rollback'),
        h('button', { type: 'button', class: 'secondary', onclick: () => { dialog.close(); dialog.remove(); } }, 'Cancel'),
      ),
    );
    dialog.append(form);
    document.body.append(dialog);
    dialog.showModal();
    reason.focus();
  }

  async function load() {
    let d;
    try {
      d = await api(base);
    } catch (err) {
      return handleError(err);
    }
    const a = d.app;
    errorBox.replaceChildren();
    actions.replaceChildren();
    if (canOperate()) {
      actions.append(
        h('button', { type: 'button', id: 'action-sync', onclick: () => act('sync'), disabled: d.paused || d.environmentPaused }, 'Sync now'),
        h('button', { type: 'button', class: 'secondary', id: 'action-pause', onclick: () => act(d.paused ? 'resume' : 'pause') }, d.paused ? 'Resume' : 'Pause'),
      );
      rollbackAction();
    }
    const row = (k, ...v) => [h('dt', {}, k), h('dd', {}, ...v)];
    summary.replaceChildren(
      ...row('Version', a.version ?? '—', a.desiredVersion && a.desiredVersion !== a.version ? ` (desired ${a.desiredVersion})` : ''),
      ...row('Sync', badge('s', a.sync)),
      ...row('Health', badge('h', a.health), d.paused ? h('span', { class: 'badge paused' }, 'Paused') : null, d.environmentPaused ? h('span', { class: 'badge paused' }, 'Environment paused') : null),
      ...row('Revision', `${short(a.revision)} ${d.commitMessage ?? ''}`),
      ...row('Applied', d.appliedAt ? `${d.appliedAt} (${ago(d.appliedAt)})` : '—'),
      ...row('Replicas', `${a.replicas.ready}/${a.replicas.desired} ready, ${a.replicas.updated} updated`),
      ...row('Message', a.message),
      ...(a.certificates ?? []).flatMap((c) => row(`HTTPS ${c.hosts.join(', ')}`, certificateText(c))),
    );
    replicas.replaceChildren(
      h('caption', {}, `${a.instances.length} replicas`),
      h('thead', {}, h('tr', {}, ['Replica', 'PID', 'Version', 'State', 'Ready', 'Restarts', 'Started'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, a.instances.map((i) => h('tr', {}, h('th', { scope: 'row' }, i.id), h('td', {}, i.pid), h('td', {}, i.version), h('td', {}, i.state), h('td', {}, i.ready ? 'ready' : 'not ready'), h('td', {}, i.restarts), h('td', {}, ago(i.startedAt))))),
    );
    const [plan, hist, ev] = await Promise.all([
      api(`${base}/plan`).catch((err) => ({ text: `plan unavailable: ${err.message}`, step: null })),
      api(`/api/v1/history?env=${encodeURIComponent(env)}&app=${encodeURIComponent(app)}&limit=20`).catch(() => ({ syncs: [] })),
      api(`${base}/events`).catch(() => ({ events: [] })),
    ]);
    const changes = plan.step?.changes ?? [];
    diff.textContent = plan.text + (changes.length ? '\n\n' + changes.map((c) => `${c.path}: ${JSON.stringify(c.live)} → ${JSON.stringify(c.desired)}`).join('\n') : '');
    history.replaceChildren(
      h('caption', {}, hist.syncs.length ? 'newest first' : 'no syncs of this app yet'),
      h('thead', {}, h('tr', {}, ['Started', 'Revision', 'Result', 'Duration', 'Change'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, hist.syncs.map((s) => {
        const change = s.changes.find((c) => c.app === app);
        return h('tr', {}, h('td', {}, s.startedAt), h('td', {}, short(s.revision)), h('td', {}, badge('r', s.result)), h('td', {}, `${(s.durationMs / 1000).toFixed(1)} s`),
          h('td', {}, change ? `${change.action}${change.from && change.to && change.from !== change.to ? ` ${change.from} → ${change.to}` : ''}${change.message ? `: ${change.message.split('\n')[0]}` : ''}` : ''));
      })),
    );
    eventsList.replaceChildren(...(ev.events.length ? ev.events.slice(0, 50).map((e) => h('li', {}, h('time', { datetime: e.time }, e.time), h('strong', {}, e.type), ' ', e.data.message ?? e.data.kind ?? e.data.replica ?? '')) : [h('li', {}, 'no events yet')]));
  }

  async function tail() {
    const ac = new AbortController();
    state.logAbort = ac;
    try {
      const res = await fetch(`${base}/logs?tail=200&follow=1`, { headers: authHeaders(), signal: ac.signal });
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        logs.textContent = body.message || `no logs (${res.status})`;
        return;
      }
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      logs.textContent = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const atBottom = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
        logs.textContent = (logs.textContent + value).split('\n').slice(-1000).join('\n');
        if (atBottom) logs.scrollTop = logs.scrollHeight;
      }
    } catch {
      /* navigated away */
    }
  }

  load();
  tail();
  return {
    refresh: (e) => {
      if (!e || !e.env || e.env === env) load();
    },
    close: () => state.logAbort?.abort(),
  };
}

// ---- audit ---------------------------------------------------------------------------------------------------

function auditView() {
  const table = h('table', { id: 'audit' });
  main.replaceChildren(h('h1', {}, 'Audit log'), table);
  async function load() {
    let r;
    try {
      r = await api('/api/v1/audit?limit=200');
    } catch (err) {
      return handleError(err);
    }
    table.replaceChildren(
      h('caption', {}, 'Every action taken through the API, newest first'),
      h('thead', {}, h('tr', {}, ['When', 'Who', 'Role', 'Action', 'Target', 'Result', 'Detail'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, r.entries.map((e) => h('tr', {}, h('td', {}, e.time), h('td', {}, e.actor), h('td', {}, e.role ?? '—'), h('td', {}, e.action), h('td', {}, e.target), h('td', {}, badge('r', e.result)), h('td', {}, e.message)))),
    );
  }
  load();
  return { refresh: load };
}

// ---- routing -------------------------------------------------------------------------------------------------

function handleError(err) {
  if (err.status === 401) return renderLogin(err.message);
  main.replaceChildren(h('p', { class: 'error', role: 'alert' }, err.message), h('p', {}, h('a', { href: '#/' }, 'Back to all environments')));
}

function route() {
  state.view?.close?.();
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (parts[0] === 'app' && parts.length === 3) state.view = appView(parts[1], parts[2]);
  else if (parts[0] === 'audit') state.view = auditView();
  else state.view = matrixView();
  main.focus({ preventScroll: true });
}

async function start() {
  try {
    state.who = await api('/api/v1/whoami');
  } catch (err) {
    if (err.status === 401) return renderLogin(sessionStorage.getItem(tokenKey) ? err.message : '');
    return handleError(err);
  }
  renderWho();
  connectEvents();
  route();
}

window.addEventListener('hashchange', route);
start();
