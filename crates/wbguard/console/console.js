// The analysts' console: pages over the public API, as the signed-in account (the session cookie stands for
// its token). Every value from the server is put in the page as text (never as HTML), so nothing an attacker
// planted in a record can run here; the Content-Security-Policy forbids inline script as a second lock.
import { loadTrust, verifyEntry, unpin } from './verify.js';

const $ = (sel) => document.querySelector(sel);
let session = null;
let leaving = []; // what the current page must stop when another opens (event streams, timers)

// ───── building blocks ─────

function el(tag, attrs = {}, ...children) {
  const svg = ['svg', 'rect', 'g', 'text', 'line', 'title', 'polyline'].includes(tag);
  const e = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.setAttribute('class', v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k === 'value' && !svg) e.value = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error.message : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error ? body.error.code : undefined;
  }
}

async function api(method, path, body) {
  const headers = {};
  if (method !== 'GET' && session) headers['X-CSRF-Token'] = session.csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (r.status === 401 && session) {
    signedOut('Your session has ended (idle, signed out elsewhere, or the credential no longer works): sign in again.');
  }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

const query = (params) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
};

let timeFormat = null;
function formatTime(ms) {
  if (ms === undefined || ms === null) return '—';
  if (!timeFormat) {
    const zone = (session && session.time_zone) || 'Asia/Shanghai';
    try {
      timeFormat = new Intl.DateTimeFormat('sv-SE', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit',
        hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'longOffset' });
    } catch {
      timeFormat = new Intl.DateTimeFormat('sv-SE', { timeZone: 'UTC', timeZoneName: 'longOffset',
        year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
    }
  }
  return timeFormat.format(new Date(ms)).replace(' GMT', '').replace(/([+-]\d\d:\d\d)$/, '$1');
}

function duration(ms) {
  const s = Math.floor(Math.abs(ms) / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const two = (n) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${two(m)}:${two(r)}` : `${m}:${two(r)}`;
}

function fail(where, err) {
  where.replaceChildren(el('p', { class: 'error', role: 'alert' }, err.message || String(err)));
}

function notice(text, cls = 'notice') {
  return el('p', { class: cls, role: 'status' }, text);
}

function link(href, text) {
  return el('a', { href }, text);
}

// ───── reason codes (the API's; the labels are the console's) ─────

const REASONS = {
  new: [['reopened', 'Reopened']],
  investigating: [['needs_investigation', 'Needs investigation'], ['reassigned', 'Reassigned']],
  confirmed: [['confirmed_leak', 'Confirmed leak'], ['policy_violation', 'Policy violation']],
  false_positive: [['legitimate_work', 'Legitimate work'], ['misattributed', 'Misattributed'],
    ['duplicate', 'Duplicate'], ['test_activity', 'Test activity']],
};
const STATES = ['new', 'investigating', 'confirmed', 'false_positive'];

function reasonPicker(stateSelect, reasonSelect, current) {
  const fill = () => {
    const state = stateSelect.value;
    const options = [...(REASONS[state] || [])];
    if (state === current && state !== 'new') options.push(['note', 'Note only']);
    reasonSelect.replaceChildren(el('option', { value: '' }, '— reason (required) —'),
      ...options.map(([v, t]) => el('option', { value: v }, t)));
  };
  stateSelect.addEventListener('change', fill);
  fill();
}

// ───── SLA ─────

function slaDeadline(alert) {
  const minutes = session.sla_minutes[alert.severity] ?? session.sla_minutes.info;
  return alert.at + minutes * 60_000;
}

function slaCell(alert) {
  if (alert.state !== 'new') return el('td', { class: 'sla-ok' }, 'triaged');
  return el('td', { dataset: { deadline: String(slaDeadline(alert)) } }, '…');
}

function tickSla() {
  const now = Date.now();
  for (const td of document.querySelectorAll('[data-deadline]')) {
    const left = Number(td.dataset.deadline) - now;
    td.textContent = left >= 0 ? `${duration(left)} left` : `overdue ${duration(left)}`;
    td.className = left < 0 ? 'sla-overdue' : left < 5 * 60_000 ? 'sla-soon' : 'sla-ok';
  }
}

// ───── session ─────

function signedOut(message) {
  session = null;
  for (const stop of leaving) stop();
  leaving = [];
  $('#top').hidden = true;
  $('#view').replaceChildren();
  $('#sign-in').hidden = false;
  $('#sign-in-error').textContent = message || '';
}

function signedIn(info) {
  session = info;
  timeFormat = null;
  $('#sign-in').hidden = true;
  $('#top').hidden = false;
  $('#who').textContent = `${info.account} · ${info.role}`;
  const pages = oversight() ? [['#/overview', 'Overview'], ['#/alerts', 'Alerts'], ['#/accounts', 'Accounts'],
    ['#/cases', 'Cases'], ['#/audit', 'Audit log'], ['#/forensics', 'Forensics'], ['#/exports', 'Exports']] : [];
  $('#nav').replaceChildren(...pages.map(([h, t]) => el('a', { href: h }, t)));
  route();
}

const oversight = () => session && (session.role === 'auditor' || session.role === 'admin');

async function signIn(ev) {
  ev.preventDefault();
  const token = $('#token').value;
  $('#sign-in-error').textContent = '';
  try {
    const info = await api('POST', '/console/session', { token });
    $('#token').value = '';
    signedIn(info);
  } catch (err) {
    $('#sign-in-error').textContent = err.status === 401 ? 'That token is not valid.' : err.message;
  }
}

async function signOut() {
  try { await api('DELETE', '/console/session'); } catch { /* the session is gone either way */ }
  signedOut('Signed out.');
}

// ───── router ─────

function route() {
  if (!session) return;
  for (const stop of leaving) stop();
  leaving = [];
  const hash = location.hash || '#/overview';
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('here', hash.startsWith(a.getAttribute('href')));
  const view = $('#view');
  view.replaceChildren();
  if (!oversight()) {
    view.append(el('section', { class: 'card' }, el('h1', {}, 'Nothing here for this role'),
      el('p', {}, `The console is for the carrier's auditors and admins. A ${session.role} account works through its own `
        + 'applications; it has no alerts, audit search or accounts to oversee.')));
    return;
  }
  const parts = hash.slice(2).split('/').map(decodeURIComponent);
  const page = {
    overview: () => overviewPage(view),
    alerts: () => (parts[1] ? alertPage(view, parts[1]) : alertsPage(view)),
    accounts: () => (parts[1] ? accountPage(view, parts[1]) : accountsPage(view)),
    audit: () => auditPage(view),
    exports: () => exportsPage(view),
    forensics: () => forensicsPage(view),
    cases: () => (parts[1] ? casePage(view, parts[1]) : casesPage(view)),
  }[parts[0]];
  (page || (() => overviewPage(view)))();
}

// ───── overview ─────

function hourlyChart(title, series, hours) {
  // series: [{name, cls, colour, counts: Map(hourStart → n)}]; stacked bars, one per hour.
  const now = Date.now();
  const start = Math.floor(now / 3_600_000) * 3_600_000 - (hours - 1) * 3_600_000;
  const totals = [];
  for (let i = 0; i < hours; i++) totals.push(series.reduce((n, s) => n + (s.counts.get(start + i * 3_600_000) || 0), 0));
  const max = Math.max(1, ...totals);
  const w = 480; const h = 140; const bw = w / hours;
  const bars = [];
  for (let i = 0; i < hours; i++) {
    let y = h;
    const hour = start + i * 3_600_000;
    for (const s of series) {
      const n = s.counts.get(hour) || 0;
      if (!n) continue;
      const bh = (n / max) * (h - 10);
      y -= bh;
      bars.push(el('rect', { x: i * bw + 1, y, width: bw - 2, height: bh, fill: s.colour },
        el('title', {}, `${formatTime(hour)}: ${n} ${s.name}`)));
    }
  }
  return el('section', { class: 'card' }, el('h2', {}, title),
    el('svg', { class: 'chart', viewBox: `0 0 ${w} ${h + 14}`, role: 'img', 'aria-label': title }, bars,
      el('text', { x: 0, y: h + 12, 'font-size': 11, fill: '#667085' }, formatTime(start).slice(11, 16)),
      el('text', { x: w - 24, y: h + 12, 'font-size': 11, fill: '#667085' }, 'now'),
      el('text', { x: 2, y: 10, 'font-size': 11, fill: '#667085' }, `max ${max}/h`)),
    el('p', { class: 'muted' }, series.map((s) => `${s.name}: ${[...s.counts.values()].reduce((a, b) => a + b, 0)}`).join(' · ')));
}

/** An account's replayed score path (`GET /v1/accounts/{id}/scores`): both scores over time, the alert
 * thresholds as dashed rules, each detector's share, and the live standing beside it. */
function scoreChart(p) {
  const w = 480; const h = 140;
  const pts = p.points;
  const t = p.thresholds;
  const max = Math.max(1, t.burst.alert, t.drift.alert, ...pts.map((x) => Math.max(x.burst, x.drift))) * 1.1;
  const X = (at) => ((at - p.from) / Math.max(1, p.to - p.from)) * w;
  const Y = (v) => h - (v / max) * (h - 10);
  const line = (key, colour) => el('polyline', { fill: 'none', stroke: colour, 'stroke-width': 1.5,
    points: pts.map((x) => `${X(x.at).toFixed(1)},${Y(x[key]).toFixed(1)}`).join(' ') });
  const rule = (v, colour, name) => (v < max ? [el('line', { x1: 0, x2: w, y1: Y(v), y2: Y(v), stroke: colour, 'stroke-dasharray': '4 3' }),
    el('text', { x: w - 90, y: Y(v) - 2, 'font-size': 10, fill: colour }, name)] : []);
  const last = pts[pts.length - 1];
  const live = p.live ? `Live on this node: ${p.live.level}, fast ${p.live.burst_score.toFixed(1)}, slow ${p.live.drift_score.toFixed(1)}.` : '';
  return el('section', { class: 'card', id: 'scores' }, el('h2', {}, 'Risk scores over time (its reads replayed from the log, 7 days)'),
    pts.length ? el('svg', { class: 'chart', viewBox: `0 0 ${w} ${h + 14}`, role: 'img', 'aria-label': 'risk scores over time' },
      line('burst', '#b42318'), line('drift', '#1a56db'), rule(t.burst.alert, '#b42318', `fast alert ${t.burst.alert}`),
      rule(t.drift.alert, '#1a56db', `slow alert ${t.drift.alert}`),
      el('text', { x: 0, y: h + 12, 'font-size': 11, fill: '#667085' }, formatTime(p.from).slice(0, 10)),
      el('text', { x: w - 24, y: h + 12, 'font-size': 11, fill: '#667085' }, 'now'))
      : el('p', { class: 'muted' }, 'No reads in the window.'),
    el('p', { class: 'muted', id: 'scores-summary' }, `${pts.length} reads replayed; fast score (red) ${last ? last.burst : 0}, `
      + `slow score (blue) ${last ? last.drift : 0} at the end, ${last ? last.level : 'normal'}. ${live} `
      + 'The replay sees this account alone: detectors that compare with peers see none.'),
    p.detectors.length ? el('table', { id: 'score-detectors' }, el('tr', {}, ['detector', 'signals', 'points'].map((x) => el('th', {}, x))),
      p.detectors.map((d) => el('tr', {}, el('td', {}, d.detector), el('td', {}, d.signals), el('td', {}, d.points))))
      : el('p', { class: 'muted' }, 'No detector gave a signal.'));
}

function byHour(items, at) {
  const m = new Map();
  for (const it of items) {
    const hour = Math.floor(at(it) / 3_600_000) * 3_600_000;
    m.set(hour, (m.get(hour) || 0) + 1);
  }
  return m;
}

/** Every entry a search selects, following `next`, at most `cap`. */
async function searchAll(params, cap) {
  const out = [];
  let cursor;
  do {
    const page = await api('GET', `/v1/audit/entries${query({ ...params, cursor, limit: 500 })}`);
    out.push(...page.entries);
    cursor = page.next;
  } while (cursor && out.length < cap);
  return { entries: out, complete: !cursor };
}

async function overviewPage(view) {
  view.append(el('h1', {}, 'Overview · last 24 hours'));
  const body = el('div', {}, notice('Loading…'));
  view.append(body);
  try {
    const [alerts, accounts, refusals, reads] = await Promise.all([
      api('GET', `/v1/alerts${query({ since: 'now-1d', limit: 1000 })}`),
      api('GET', '/v1/accounts'),
      searchAll({ decision: 'deny', from: 'now-1d' }, 20_000),
      api('GET', `/v1/audit/hourly${query({ action: 'view', from: 'now-1d' })}`),
    ]);
    const readsBy = (decision) => new Map(reads.filter((h) => h.decision === decision).map((h) => [h.hour, h.count]));
    const day = Date.now() - 86_400_000;
    const suspensions = accounts.filter((a) => a.status === 'suspended' && a.status_since >= day);
    const sev = (s) => alerts.filter((a) => a.severity === s);
    const charts = el('div', { class: 'grid', id: 'charts' },
      hourlyChart('Guarded reads per hour (every waybill read, from the audit index)', [
        { name: 'allowed', colour: '#1a56db', counts: readsBy('allow') },
        { name: 'refused', colour: '#b42318', counts: readsBy('deny') }], 24),
      hourlyChart('Alerts per hour', [
        { name: 'critical', colour: '#b42318', counts: byHour(sev('critical'), (a) => a.at) },
        { name: 'warning', colour: '#dc6803', counts: byHour(sev('warning'), (a) => a.at) },
        { name: 'info', colour: '#1a56db', counts: byHour(sev('info'), (a) => a.at) }], 24),
      hourlyChart('Refusals per hour (every denied request, from the audit log)', [
        { name: 'refused', colour: '#b42318', counts: byHour(refusals.entries, (e) => e.time) }], 24),
      hourlyChart('Suspensions per hour (accounts suspended now, by when)', [
        { name: 'suspended', colour: '#101828', counts: byHour(suspensions, (a) => a.status_since) }], 24));
    // Riskiest: open alerts weighted by severity, per account and per outlet.
    const weight = { critical: 10, warning: 3, info: 1 };
    const open = alerts.filter((a) => a.state === 'new' || a.state === 'investigating');
    const outletOf = new Map(accounts.map((a) => [a.id, a.outlet || '—']));
    const score = (key) => {
      const m = new Map();
      for (const a of open) m.set(key(a), (m.get(key(a)) || 0) + (weight[a.severity] || 1));
      return [...m.entries()].sort((x, y) => y[1] - x[1]).slice(0, 10);
    };
    const ranking = (title, rows, href) => el('section', { class: 'card' }, el('h2', {}, title),
      rows.length ? el('table', {}, el('tr', {}, el('th', {}, 'who'), el('th', {}, 'weighted open alerts')),
        rows.map(([k, n]) => el('tr', {}, el('td', {}, href ? link(href(k), k) : k), el('td', {}, n))))
        : el('p', { class: 'muted' }, 'No open alerts.'));
    body.replaceChildren(
      el('p', { class: 'muted' }, `${alerts.length} alerts raised, ${open.length} open, ${refusals.entries.length}`
        + `${refusals.complete ? '' : '+'} requests refused, ${suspensions.length} accounts suspended in the last 24 hours.`),
      charts,
      el('div', { class: 'grid' },
        ranking('Riskiest accounts', score((a) => a.account), (k) => `#/accounts/${encodeURIComponent(k)}`),
        ranking('Riskiest outlets', score((a) => outletOf.get(a.account) || '—'))));
  } catch (err) {
    fail(body, err);
  }
}

// ───── the alert queue ─────

async function alertsPage(view) {
  const state = el('select', { id: 'filter-state' }, el('option', { value: '' }, 'any state'),
    STATES.map((s) => el('option', { value: s }, s)));
  state.value = 'new';
  const severity = el('select', { id: 'filter-severity' }, el('option', { value: '' }, 'any severity'),
    ['critical', 'warning', 'info'].map((s) => el('option', { value: s }, s)));
  const text = el('input', { id: 'filter-text', placeholder: 'account or detector', size: 18 });
  const rows = el('tbody', { id: 'alert-rows' });
  const status = el('p', { class: 'muted', id: 'queue-status' });
  const all = el('input', { type: 'checkbox', id: 'select-all', 'aria-label': 'select all' });
  const bulkState = el('select', { id: 'bulk-state' }, STATES.map((s) => el('option', { value: s }, s)));
  bulkState.value = 'investigating';
  const bulkReason = el('select', { id: 'bulk-reason' });
  reasonPicker(bulkState, bulkReason, null);
  const bulkNote = el('input', { id: 'bulk-note', placeholder: 'note (optional, sealed)', size: 30, maxlength: 500 });
  const bulkResult = el('p', { id: 'bulk-result', role: 'status' });
  let alerts = [];

  const shown = (a) => (!state.value || a.state === state.value) && (!severity.value || a.severity === severity.value)
    && (!text.value || a.account.includes(text.value) || a.kind.includes(text.value));
  const row = (a, fresh) => el('tr', { class: fresh ? 'fresh' : null, dataset: { id: String(a.id) } },
    el('td', {}, el('input', { type: 'checkbox', class: 'pick', value: a.id, 'aria-label': `select alert ${a.id}` })),
    el('td', {}, link(`#/alerts/${a.id}`, `#${a.id}`)),
    el('td', {}, formatTime(a.at)),
    el('td', { class: `sev-${a.severity}` }, a.severity),
    el('td', {}, a.kind),
    el('td', {}, link(`#/accounts/${encodeURIComponent(a.account)}`, a.account)),
    el('td', { class: 'state' }, a.state),
    el('td', {}, a.assignee || '—'),
    slaCell(a));
  const render = () => {
    const list = alerts.filter(shown);
    rows.replaceChildren(...list.map((a) => row(a, false)));
    status.textContent = `${list.length} shown of ${alerts.length} loaded · live`;
    tickSla();
  };
  const load = async () => {
    alerts = await api('GET', `/v1/alerts${query({ state: state.value, limit: 500 })}`);
    render();
  };
  for (const f of [state, severity]) f.addEventListener('change', () => load().catch((e) => fail(status, e)));
  text.addEventListener('input', render);
  all.addEventListener('change', () => { for (const c of rows.querySelectorAll('.pick')) c.checked = all.checked; });

  const applyBulk = async (ev) => {
    ev.preventDefault();
    const ids = [...rows.querySelectorAll('.pick:checked')].map((c) => Number(c.value));
    if (!ids.length) { bulkResult.textContent = 'Select alerts first.'; return; }
    if (!bulkReason.value) { bulkResult.textContent = 'A reason code is required.'; return; }
    let done = 0; const failed = [];
    for (const id of ids) {
      const a = alerts.find((x) => x.id === id);
      try {
        await api('POST', `/v1/alerts/${id}/triage`, { state: bulkState.value, reason: bulkReason.value,
          note: bulkNote.value || undefined, revision: a ? a.revision : undefined });
        done++;
      } catch (err) { failed.push(`#${id}: ${err.message}`); }
    }
    bulkResult.textContent = `${done} changed${failed.length ? `; ${failed.length} not: ${failed.join('; ')}` : ''}.`;
    all.checked = false;
    await load();
  };

  view.append(el('h1', {}, 'Alert queue'),
    el('form', { class: 'inline', id: 'filters' }, el('label', {}, 'State', state), el('label', {}, 'Severity', severity),
      el('label', {}, 'Filter', text)),
    el('form', { class: 'inline', id: 'bulk', onsubmit: applyBulk }, el('label', {}, 'Move selected to', bulkState),
      el('label', {}, 'Reason', bulkReason), el('label', {}, 'Note', bulkNote),
      el('button', { type: 'submit', id: 'bulk-apply' }, 'Apply to selected')),
    bulkResult, status,
    el('table', { id: 'alerts' }, el('thead', {}, el('tr', {}, el('th', {}, all), el('th', {}, 'alert'), el('th', {}, 'raised'),
      el('th', {}, 'severity'), el('th', {}, 'detector'), el('th', {}, 'account'), el('th', {}, 'state'),
      el('th', {}, 'assignee'), el('th', {}, `SLA to triage (critical ${session.sla_minutes.critical} min, warning `
        + `${session.sla_minutes.warning}, info ${session.sla_minutes.info})`))), rows));
  try { await load(); } catch (err) { fail(status, err); return; }
  const sups = el('tbody', { id: 'suppression-rows' });
  const loadSups = async () => {
    const now = Date.now();
    const list = (await api('GET', '/v1/suppressions')).filter((x) => !x.lifted_at && x.expires_at > now);
    sups.replaceChildren(...list.map((x) => el('tr', {}, el('td', {}, x.id), el('td', {}, x.detector), el('td', {}, `${x.scope} ${x.value}`),
      el('td', {}, x.reason), el('td', {}, x.created_by), el('td', {}, formatTime(x.expires_at)),
      el('td', {}, `${x.backtest.alerts} (${x.backtest.confirmed} confirmed)`),
      el('td', {}, session.role === 'auditor' ? el('button', { type: 'button', class: 'secondary lift', onclick: async () => {
        try { await api('POST', `/v1/suppressions/${x.id}/lift`); await loadSups(); } catch (err) { fail(status, err); }
      } }, 'Lift') : ''))));
    if (!list.length) sups.replaceChildren(el('tr', {}, el('td', { colspan: 8, class: 'muted' }, 'None in force.')));
  };
  view.append(el('h2', {}, 'Suppressions in force'), el('table', { id: 'suppressions' }, el('thead', {}, el('tr', {},
    ['suppression', 'detector', 'for', 'reason', 'by', 'until', 'would have hidden (30 days)', ''].map((h) => el('th', {}, h)))), sups));
  loadSups().catch((err) => fail(status, err));

  // Score thresholds: what is in force, and a change measured before it is applied (auditors apply).
  const inForce = el('p', { id: 'thresholds-now', class: 'muted' });
  const num = (id) => el('input', { id, type: 'number', min: '0.1', step: '0.1', size: 6, required: true });
  const fields = { burst: ['alert', 'mask', 'suspend'].map((k) => num(`th-burst-${k}`)),
    drift: ['alert', 'mask', 'suspend'].map((k) => num(`th-drift-${k}`)) };
  const thReason = el('select', { id: 'th-reason' }, el('option', { value: '' }, 'reason…'),
    ['too_many_false_positives', 'missed_confirmed_leaks', 'workload_changed', 'policy_changed'].map((r) => el('option', { value: r }, r)));
  const thAccept = el('input', { type: 'checkbox', id: 'th-accept' });
  const thResult = el('div', { id: 'th-result', role: 'status' });
  const proposalOf = () => {
    const t = ([a, m, x]) => ({ alert: Number(a.value), mask: Number(m.value), suspend: Number(x.value) });
    return { burst: t(fields.burst), drift: t(fields.drift) };
  };
  const loadThresholds = async () => {
    const t = await api('GET', '/v1/risk/thresholds');
    for (const k of ['burst', 'drift']) ['alert', 'mask', 'suspend'].forEach((x, i) => { fields[k][i].value = t.score[k][x]; });
    inForce.textContent = `In force: fast score ${t.score.burst.alert}/${t.score.burst.mask}/${t.score.burst.suspend}, `
      + `slow score ${t.score.drift.alert}/${t.score.drift.mask}/${t.score.drift.suspend} (alert/mask/suspend) — `
      + (t.source === 'change' ? `changed by ${t.by} at ${formatTime(t.at)} (${t.reason}).` : 'from the configuration file.');
  };
  const showBacktest = (b) => thResult.replaceChildren(
    el('p', { id: 'th-summary' }, `Over the last 30 days (${b.reads} reads replayed) it would have hidden ${b.hidden} alerts, `
      + `${b.hidden_confirmed} of them later confirmed and ${b.hidden_false_positive} false positives, and added ${b.added}.`),
    el('table', { id: 'th-compare' }, el('tr', {}, ['', 'alerts', 'reads masked', 'suspensions', 'accounts alerted on'].map((h) => el('th', {}, h))),
      [['in force', b.under_current], ['proposed', b.under_proposal]].map(([n, o]) => el('tr', {}, el('td', {}, n), el('td', {}, o.alerts),
        el('td', {}, o.masked_reads), el('td', {}, o.suspensions), el('td', {}, o.accounts_alerted)))),
    b.hidden_sample.length ? el('p', { class: 'muted' }, 'Hidden, for example: ', b.hidden_sample.map((h) =>
      [link(`#/accounts/${encodeURIComponent(h.account)}`, h.account), ` ${h.kind} ${formatTime(h.at)}${h.state ? ` (${h.state})` : ''}; `])) : '');
  const backtest = async (ev) => {
    ev.preventDefault();
    try { showBacktest(await api('POST', '/v1/risk/thresholds/backtest', proposalOf())); } catch (err) { fail(thResult, err); }
  };
  const applyThresholds = async () => {
    if (!thReason.value) { thResult.replaceChildren(notice('A reason code is required.')); return; }
    try {
      await api('POST', '/v1/risk/thresholds', { ...proposalOf(), reason: thReason.value, accept_confirmed: thAccept.checked });
      await loadThresholds();
      thResult.replaceChildren(notice('Applied: in force on this node now, on every other within seconds.'));
    } catch (err) { fail(thResult, err); }
  };
  const triple = (k, name) => el('fieldset', {}, el('legend', {}, name),
    ['alert', 'mask', 'suspend'].map((x, i) => el('label', {}, x, fields[k][i])));
  view.append(el('h2', {}, 'Score thresholds'), inForce,
    el('form', { class: 'inline', id: 'thresholds', onsubmit: backtest }, triple('burst', 'fast score'), triple('drift', 'slow score'),
      el('button', { type: 'submit', id: 'th-backtest' }, 'Backtest over 30 days'),
      session.role === 'auditor' ? [el('label', {}, 'Reason', thReason), el('label', {}, thAccept, ' hide even confirmed alerts'),
        el('button', { type: 'button', id: 'th-apply', class: 'secondary', onclick: applyThresholds }, 'Apply')] : ''),
    thResult);
  loadThresholds().catch((err) => fail(inForce, err));

  const timer = setInterval(tickSla, 1000);
  const stream = new EventSource('/v1/alerts/stream');
  stream.addEventListener('alert', (ev) => {
    const a = JSON.parse(ev.data);
    if (alerts.some((x) => x.id === a.id)) return;
    alerts.unshift(a);
    if (shown(a)) { rows.prepend(row(a, true)); tickSla(); }
    status.textContent = `${alerts.filter(shown).length} shown of ${alerts.length} loaded · live · newest #${a.id}`;
  });
  stream.addEventListener('end', () => { stream.close(); signedOut('Your credential stopped working: sign in again.'); });
  leaving.push(() => { clearInterval(timer); stream.close(); });
}

// ───── one alert: explanation, triage, containment, evidence ─────

function kv(pairs) {
  return el('dl', { class: 'kv' }, pairs.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v ?? '—')]));
}

function scopeBadge(r) {
  if (!r.exists) return el('span', { class: 'badge out-of-scope' }, 'no such waybill');
  if (r.assigned_to_it) return el('span', { class: 'badge in-scope' }, 'its own delivery');
  if (r.at_own_outlet === true) return el('span', { class: 'badge in-scope' }, 'its outlet');
  if (r.at_own_outlet === false) return el('span', { class: 'badge out-of-scope' }, 'OUT OF SCOPE');
  return el('span', { class: 'badge' }, 'no outlet bound');
}

function describe(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v !== 'object') return String(v);
  return Object.entries(v).map(([k, x]) => `${k}: ${typeof x === 'object' ? JSON.stringify(x) : x}`).join(' · ');
}

/** A verification's badge and its reason, as page nodes. */
function verdict(v) {
  return [el('span', { class: `badge ${v.status}`, title: v.why || v.root }, v.status), v.why ? ` ${v.why}` : ''];
}

async function evidenceTable(seqs) {
  const body = el('tbody', { id: 'evidence-rows' });
  const head = el('p', { id: 'trust', class: 'muted' }, 'Checking the signed checkpoint in this browser…');
  const table = el('div', {}, head, el('table', { id: 'evidence' }, el('thead', {}, el('tr', {}, el('th', {}, 'seq'),
    el('th', {}, 'time'), el('th', {}, 'action'), el('th', {}, 'decision'), el('th', {}, 'view'), el('th', {}, 'waybill'),
    el('th', {}, 'detail'), el('th', {}, 'proof'))), body));
  (async () => {
    let trust;
    try {
      trust = await loadTrust();
    } catch (err) {
      head.replaceChildren(el('span', { class: 'badge failed' }, 'not verified'), ` ${err.message}`);
      trust = null;
    }
    if (trust && trust.pin === 'changed') {
      head.replaceChildren(el('span', { class: 'badge failed' }, 'key changed'),
        ' The node\'s verifier key is not the one this browser pinned: nothing it signs is trusted here.');
      trust = null;
    } else if (trust) {
      head.replaceChildren(el('span', { class: 'badge verified' }, 'checkpoint verified'),
        ` Signed checkpoint of ${trust.checkpoint.size} entries checked with Ed25519 in this browser; key ${trust.key.name}`
        + ` (fingerprint ${trust.fingerprint}${trust.pin === 'new' ? ', pinned now' : ', as pinned'}).`);
    }
    for (const seq of seqs) {
      const cell = el('td', {}, '…');
      const tr = el('tr', { dataset: { seq: String(seq) } }, el('td', {}, String(seq)), el('td', {}), el('td', {}), el('td', {}),
        el('td', {}), el('td', {}), el('td', {}), cell);
      body.append(tr);
      let v;
      try {
        v = trust ? await verifyEntry(seq, trust) : { status: 'failed', why: 'no trusted checkpoint' };
      } catch (err) { v = { status: 'failed', why: err.message }; }
      const e = v.entry || {};
      const tds = tr.children;
      tds[1].textContent = formatTime(e.time);
      tds[2].textContent = e.action || '';
      tds[3].textContent = e.decision || '';
      tds[4].textContent = e.view || '';
      tds[5].textContent = e.waybill || '';
      tds[6].textContent = e.detail || '';
      cell.replaceChildren(...verdict(v));
    }
  })();
  return table;
}

async function alertPage(view, id) {
  view.append(el('p', {}, link('#/alerts', '← alert queue')));
  const body = el('div', {}, notice('Loading…'));
  view.append(body);
  let detail; let why;
  try {
    [detail, why] = await Promise.all([api('GET', `/v1/alerts/${encodeURIComponent(id)}`),
      api('GET', `/v1/alerts/${encodeURIComponent(id)}/explanation`)]);
  } catch (err) { fail(body, err); return; }
  const a = detail;
  const stateSel = el('select', { id: 'triage-state' }, STATES.map((s) => el('option', { value: s }, s)));
  stateSel.value = a.state === 'new' ? 'investigating' : a.state;
  const reasonSel = el('select', { id: 'triage-reason' });
  reasonPicker(stateSel, reasonSel, a.state);
  const assignee = el('select', { id: 'triage-assignee' }, el('option', { value: '' }, '— unchanged —'));
  api('GET', '/v1/accounts').then((accounts) => {
    for (const x of accounts.filter((x) => x.role === 'auditor' && x.status === 'active')) {
      assignee.append(el('option', { value: x.id }, x.id));
    }
  }).catch(() => {});
  const note = el('textarea', { id: 'triage-note', rows: 2, cols: 50, maxlength: 500 });
  const result = el('p', { id: 'triage-result', role: 'status' });
  const triage = async (ev) => {
    ev.preventDefault();
    if (!reasonSel.value) { result.textContent = 'A reason code is required.'; return; }
    try {
      await api('POST', `/v1/alerts/${a.id}/triage`, { state: stateSel.value, reason: reasonSel.value,
        assignee: assignee.value || undefined, note: note.value || undefined, revision: a.revision });
      route();
    } catch (err) { result.textContent = err.status === 409 ? 'Someone else changed this alert meanwhile: reload it.' : err.message; }
  };
  const containReason = el('input', { id: 'contain-reason', placeholder: 'reason (required)', size: 40, maxlength: 200 });
  const containResult = el('p', { id: 'contain-result', role: 'status' });
  const contain = async () => {
    if (!containReason.value.trim()) { containResult.textContent = 'A reason is required to suspend.'; return; }
    try {
      await api('POST', `/v1/accounts/${encodeURIComponent(a.account)}/suspend`, { reason: containReason.value.trim() });
      containResult.textContent = `${a.account} is suspended: every credential it holds stops working now.`;
    } catch (err) { containResult.textContent = err.message; }
  };
  const ent = why.entitlement || {};
  const acct = ent.account || {};
  // Tuning, measured first: what a suppression would have hidden over 30 days, then applied with a reason.
  const scopes = [['account', a.account], ['outlet', acct.outlet], ['role', acct.role]].filter(([, v]) => v);
  const scopeSel = el('select', { id: 'suppress-scope' }, scopes.map(([k, v]) => el('option', { value: k }, `this ${k}: ${v}`)));
  const suppressReason = el('select', { id: 'suppress-reason' }, el('option', { value: '' }, '— reason (required) —'),
    [['legitimate_work', 'Legitimate work'], ['known_noise', 'Known noise'], ['test_activity', 'Test activity'],
      ['duplicate_source', 'Duplicate source']].map(([v, t]) => el('option', { value: v }, t)));
  const suppressDays = el('input', { id: 'suppress-days', type: 'number', min: 1, max: 90, value: '30', size: 4 });
  const acceptConfirmed = el('input', { id: 'suppress-accept', type: 'checkbox' });
  const suppressResult = el('p', { id: 'suppress-result', role: 'status' });
  const applyButton = el('button', { type: 'button', id: 'suppress-apply', disabled: true }, 'Apply');
  const suppression = () => ({ detector: a.kind, scope: scopeSel.value, value: Object.fromEntries(scopes)[scopeSel.value] });
  const backtest = async () => {
    try {
      const bt = await api('POST', '/v1/suppressions/backtest', suppression());
      suppressResult.textContent = `Over the last 30 days it would have hidden ${bt.alerts} ${a.kind} alerts: ${bt.confirmed} later `
        + `confirmed, ${bt.false_positive} false positives, ${bt.open} still open.`;
      applyButton.disabled = false;
    } catch (err) { suppressResult.textContent = err.message; }
  };
  scopeSel.addEventListener('change', () => { applyButton.disabled = true; suppressResult.textContent = ''; });
  applyButton.addEventListener('click', async () => {
    if (!suppressReason.value) { suppressResult.textContent = 'A reason code is required.'; return; }
    try {
      const sup = await api('POST', '/v1/suppressions', { ...suppression(), reason: suppressReason.value,
        days: Number(suppressDays.value), accept_confirmed: acceptConfirmed.checked });
      suppressResult.textContent = `Suppression ${sup.id} in force until ${formatTime(sup.expires_at)}: new ${sup.detector} alerts `
        + `of ${sup.scope} ${sup.value} leave the queue (the engine still refuses and suspends).`;
      applyButton.disabled = true;
    } catch (err) { suppressResult.textContent = err.message; }
  });
  const sla = a.state === 'new' ? el('span', { dataset: { deadline: String(slaDeadline(a)) } }, '…')
    : el('span', { class: 'sla-ok' }, 'triaged');
  body.replaceChildren(
    el('h1', {}, `Alert #${a.id} · `, el('span', { class: `sev-${a.severity}` }, a.severity), ` · ${a.kind}`),
    el('section', { class: 'card' }, kv([
      ['account', link(`#/accounts/${encodeURIComponent(a.account)}`, a.account)], ['raised', formatTime(a.at)],
      ['state', el('span', { id: 'alert-state' }, a.state)], ['assignee', a.assignee], ['SLA', sla],
      ['detail', a.detail]])),
    el('div', { class: 'grid' },
      el('section', { class: 'card' }, el('h2', {}, 'Triage'),
        el('form', { id: 'triage', onsubmit: triage }, el('div', { class: 'inline' }, el('label', {}, 'State', stateSel),
          el('label', {}, 'Reason', reasonSel), el('label', {}, 'Assign to', assignee)),
        el('label', {}, 'Note (sealed in the store; no personal data)', note),
        el('p', {}, el('button', { type: 'submit', id: 'triage-apply' }, 'Record'))), result),
      el('section', { class: 'card' }, el('h2', {}, 'Contain'), session.role === 'admin' ? [
        el('p', { class: 'muted' }, 'Suspending stops every token of the account at once; it is audited under your own account.'),
        el('div', { class: 'inline' }, containReason, el('button', { type: 'button', class: 'danger', id: 'contain', onclick: contain },
          'Suspend account')), containResult]
        : el('p', { class: 'muted' }, 'Suspending an account is an admin\'s action (auditors decide what an alert was, admins act on '
          + 'accounts): an admin opening this alert can suspend from here. The risk engine suspends by itself past its threshold.'))),
    session.role === 'auditor' ? caseCard(a) : null,
    session.role === 'auditor' ? el('section', { class: 'card', id: 'suppress' }, el('h2', {}, `Tune: hide ${a.kind} alerts`),
      el('p', { class: 'muted' }, 'Backtested over the last 30 days before it can be applied; it hides alerts from the queue, never '
        + 'from the engine, and lasts at most 90 days.'),
      el('div', { class: 'inline' }, el('label', {}, 'For', scopeSel),
        el('button', { type: 'button', class: 'secondary', id: 'suppress-backtest', onclick: backtest }, 'Backtest')),
      suppressResult,
      el('div', { class: 'inline' }, el('label', {}, 'Reason', suppressReason), el('label', {}, 'Days', suppressDays),
        el('label', {}, 'Hide even confirmed kinds', acceptConfirmed), applyButton)) : null,
    el('section', { class: 'card' }, el('h2', {}, 'Why: the signals and scores'),
      why.signals && why.signals.length ? el('ul', {}, why.signals.map((s) => el('li', {}, describe(s))))
        : el('p', { class: 'muted' }, 'No signal detail was recorded with this alert.'),
      why.scores ? el('p', {}, 'Scores: ', describe(why.scores)) : null),
    el('section', { class: 'card' }, el('h2', {}, 'Entitlement beside what it read'),
      kv([['role', acct.role], ['outlet', acct.outlet], ['status', acct.status]]),
      el('table', {}, el('tr', {}, el('th', {}, 'purpose'), el('th', {}, 'richest view'), el('th', {}, 'when')),
        (ent.sees || []).map((p) => el('tr', {}, el('td', {}, p.purpose), el('td', {}, p.view || 'none'), el('td', {}, p.when)))),
      el('h2', {}, 'Reads behind the alert'),
      el('p', { class: 'muted' }, describe(why.summary)),
      el('table', { id: 'reads' }, el('tr', {}, ['time', 'waybill', 'decision', 'view', 'purpose', 'from → to outlet', 'courier',
        'status', 'scope'].map((h) => el('th', {}, h))),
      (why.reads || []).map((r) => el('tr', {}, el('td', {}, formatTime(r.at)), el('td', {}, r.waybill), el('td', {}, r.decision),
        el('td', {}, r.view || '—'), el('td', {}, r.purpose || '—'),
        el('td', {}, `${r.origin_outlet || '?'} → ${r.destination_outlet || '?'}`), el('td', {}, r.courier || '—'),
        el('td', {}, r.status || '—'), el('td', {}, scopeBadge(r)))))),
    el('section', { class: 'card' }, el('h2', {}, 'Triage history'),
      detail.history.length ? el('table', {}, el('tr', {}, ['when', 'by', 'state', 'reason', 'assignee', 'note'].map((h) => el('th', {}, h))),
        detail.history.map((h) => el('tr', {}, el('td', {}, formatTime(h.at)), el('td', {}, h.by), el('td', {}, h.state),
          el('td', {}, h.reason), el('td', {}, h.assignee || '—'), el('td', {}, h.note || ''))))
        : el('p', { class: 'muted' }, 'Not triaged yet.')),
    el('section', { class: 'card' }, el('h2', {}, `Evidence: the ${a.audit_seqs.length} audit entries behind it, each proven in this browser`),
      el('p', {}, el('a', { id: 'evidence-pack', href: `/v1/alerts/${a.id}/evidence-pack`, download: `alert-${a.id}-evidence.json` },
        'Download the evidence pack'), el('span', { class: 'muted' }, ' — the entries, their inclusion proofs, a checkpoint signed now and the '
        + 'verifier key; anyone checks it offline with `wbguard audit verify-pack FILE --vkey KEY`.')),
      await evidenceTable(a.audit_seqs)));
  const timer = setInterval(tickSla, 1000);
  tickSla();
  leaving.push(() => clearInterval(timer));
}

// ───── accounts ─────

async function accountsPage(view) {
  view.append(el('h1', {}, 'Accounts'));
  const filter = el('input', { id: 'account-filter', placeholder: 'id, role, outlet or status', size: 30 });
  const body = el('tbody', {});
  view.append(el('form', { class: 'inline' }, el('label', {}, 'Filter', filter)),
    el('table', { id: 'accounts' }, el('thead', {}, el('tr', {}, ['account', 'role', 'outlet', 'status', 'since', 'last active']
      .map((h) => el('th', {}, h)))), body));
  let accounts;
  try { accounts = await api('GET', '/v1/accounts'); } catch (err) { fail(body, err); return; }
  const render = () => body.replaceChildren(...accounts
    .filter((a) => !filter.value || [a.id, a.role, a.outlet || '', a.status].some((v) => v.includes(filter.value)))
    .map((a) => el('tr', {}, el('td', {}, link(`#/accounts/${encodeURIComponent(a.id)}`, a.id)), el('td', {}, a.role),
      el('td', {}, a.outlet || '—'), el('td', {}, a.status), el('td', {}, formatTime(a.status_since)),
      el('td', {}, formatTime(a.last_active)))));
  filter.addEventListener('input', render);
  render();
}

function classify(e) {
  if (e.decision === 'deny') return 'refused';
  if (e.view === 'full') return 'full';
  if (e.view === 'masked' || e.view === 'routing') return 'masked';
  return 'other';
}

async function accountPage(view, id) {
  view.append(el('p', {}, link('#/accounts', '← accounts')));
  const body = el('div', {}, notice('Loading…'));
  view.append(body);
  let d;
  try { d = await api('GET', `/v1/accounts/${encodeURIComponent(id)}`); } catch (err) { fail(body, err); return; }
  const reason = el('input', { id: 'status-reason', placeholder: 'reason (required)', size: 40, maxlength: 200 });
  const result = el('p', { id: 'status-result', role: 'status' });
  const change = (what) => async () => {
    if (!reason.value.trim()) { result.textContent = 'A reason is required.'; return; }
    try {
      await api('POST', `/v1/accounts/${encodeURIComponent(id)}/${what}`, { reason: reason.value.trim() });
      route();
    } catch (err) { result.textContent = err.message; }
  };
  const timeline = el('div', {}, notice('Reading its last 24 hours from the audit log…'));
  const recent = el('tbody', {});
  body.replaceChildren(
    el('h1', {}, `Account ${d.id}`),
    el('div', { class: 'grid' },
      el('section', { class: 'card' }, kv([['role', d.role], ['outlet', d.outlet], ['status', el('span', { id: 'account-status' }, d.status)],
        ['reason', d.status_reason], ['since', formatTime(d.status_since)], ['created', formatTime(d.created_at)],
        ['last active', formatTime(d.last_active)], ['working tokens', d.tokens]])),
      session.role !== 'admin' ? el('section', { class: 'card' }, el('h2', {}, 'Status'),
        el('p', { class: 'muted' }, 'Suspending and reinstating are an admin\'s actions; every change is in the audit log below.')) :
      el('section', { class: 'card' }, el('h2', {}, d.status === 'suspended' ? 'Reinstate' : 'Suspend'),
        el('p', { class: 'muted' }, 'Recorded with your own account and the reason, in the audit log.'),
        el('div', { class: 'inline' }, reason, d.status === 'suspended'
          ? el('button', { type: 'button', id: 'reinstate', onclick: change('reinstate') }, 'Reinstate')
          : el('button', { type: 'button', class: 'danger', id: 'suspend', onclick: change('suspend') }, 'Suspend')), result)),
    el('section', { class: 'card' }, el('h2', {}, 'Open alerts'),
      d.open_alerts.length ? el('table', {}, d.open_alerts.map((a) => el('tr', {}, el('td', {}, link(`#/alerts/${a.id}`, `#${a.id}`)),
        el('td', { class: `sev-${a.severity}` }, a.severity), el('td', {}, a.kind), el('td', {}, formatTime(a.at)), el('td', {}, a.state))))
        : el('p', { class: 'muted' }, 'None.')),
    timeline,
    el('section', { class: 'card' }, el('h2', {}, 'Latest entries'), el('table', { id: 'account-entries' },
      el('thead', {}, el('tr', {}, ['seq', 'time', 'action', 'decision', 'view', 'purpose', 'waybill', 'detail'].map((h) => el('th', {}, h)))),
      recent)));
  try {
    const { entries, complete } = await searchAll({ account: id, from: 'now-1d' }, 20_000);
    const kinds = (k) => byHour(entries.filter((e) => classify(e) === k), (e) => e.time);
    timeline.replaceChildren(hourlyChart(`Access per hour${complete ? '' : ' (the newest 20,000 entries)'}`, [
      { name: 'full', colour: '#b42318', counts: kinds('full') },
      { name: 'masked', colour: '#1a56db', counts: kinds('masked') },
      { name: 'refused', colour: '#101828', counts: kinds('refused') },
      { name: 'other actions', colour: '#98a2b3', counts: kinds('other') }], 24));
    try {
      timeline.append(scoreChart(await api('GET', `/v1/accounts/${encodeURIComponent(id)}/scores`)));
    } catch (err) { timeline.append(el('p', { class: 'error' }, `Scores: ${err.message}`)); }
    recent.replaceChildren(...entries.slice(0, 50).map((e) => el('tr', {}, el('td', {}, e.seq), el('td', {}, formatTime(e.time)),
      el('td', {}, e.action), el('td', {}, e.decision), el('td', {}, e.view || '—'), el('td', {}, e.purpose || '—'),
      el('td', {}, e.waybill || '—'), el('td', {}, e.detail || ''))));
    // Where it worked from: devices and addresses (pseudonymised by the guard), with counts and last use.
    const seen = (key) => {
      const m = new Map();
      for (const e of entries) {
        const k = e[key];
        if (!k) continue;
        const v = m.get(k) || { n: 0, last: 0 };
        v.n++; v.last = Math.max(v.last, e.time);
        m.set(k, v);
      }
      return [...m.entries()].sort((x, y) => y[1].n - x[1].n);
    };
    const places = [...seen('device').map(([k, v]) => ['device', k, v]), ...seen('ip').map(([k, v]) => ['address', k, v])];
    timeline.append(el('section', { class: 'card' }, el('h2', {}, 'Devices and addresses (24 hours)'),
      places.length ? el('table', { id: 'places' }, el('tr', {}, ['kind', 'pseudonym or address', 'requests', 'last'].map((h) => el('th', {}, h))),
        places.map(([k, v, x]) => el('tr', {}, el('td', {}, k), el('td', { class: 'mono' }, v), el('td', {}, x.n), el('td', {}, formatTime(x.last)))))
        : el('p', { class: 'muted' }, 'None recorded.')));
    // Beside its peers: the accounts of the same outlet and role over the same 24 hours — first those of its shift
    // (active in at least half the hours it was), since a night shift and a day shift read differently.
    const all = await api('GET', '/v1/accounts');
    const peers = all.filter((x) => x.id !== d.id && x.role === d.role && (x.outlet || null) === (d.outlet || null)).slice(0, 20);
    const tally = (list) => ({ full: list.filter((e) => classify(e) === 'full').length,
      masked: list.filter((e) => classify(e) === 'masked').length, refused: list.filter((e) => classify(e) === 'refused').length,
      hours: new Set(list.map((e) => Number(formatTime(e.time).slice(11, 13)))) });
    const rows = [[d.id, tally(entries), !complete]];
    for (const p of peers) {
      const r = await searchAll({ account: p.id, from: 'now-1d' }, 2_000);
      rows.push([p.id, tally(r.entries), !r.complete]);
    }
    const own = rows[0][1].hours;
    const onShift = (t) => own.size > 0 && [...own].filter((h) => t.hours.has(h)).length * 2 >= own.size;
    const shift = (hours) => {
      // Hours as ranges, e.g. 08–11, 14.
      const hs = [...hours].sort((x, y) => x - y);
      const out = [];
      for (const h of hs) {
        const last = out[out.length - 1];
        if (last && last[1] === h - 1) last[1] = h; else out.push([h, h]);
      }
      const two = (n) => String(n).padStart(2, '0');
      return out.length ? out.map(([a, b]) => (a === b ? two(a) : `${two(a)}–${two(b)}`)).join(', ') : '—';
    };
    const same = rows.slice(1).filter(([, t]) => onShift(t));
    const compared = same.length ? same : rows.slice(1);
    const median = (xs) => { const v = [...xs].sort((x, y) => x - y); return v.length ? v[Math.floor(v.length / 2)] : 0; };
    const peerFull = median(compared.map(([, t]) => t.full));
    timeline.append(el('section', { class: 'card' }, el('h2', {}, `Beside its peers: ${d.role}s of ${d.outlet || 'no outlet'} (24 hours)`),
      peers.length ? el('p', { class: 'muted', id: 'peer-median' }, `Its shift: ${shift(own)}. `
        + `Peers' median (${same.length ? `${same.length} on its shift` : 'none on its shift: all of them'}): ${peerFull} full views. `
        + (rows[0][1].full > 3 * Math.max(1, peerFull) ? 'This account reads in full more than three times as much.' : ''))
        : el('p', { class: 'muted' }, 'No other account has this role at this outlet.'),
      el('table', { id: 'peers' }, el('tr', {}, ['account', 'shift (hours)', 'same shift', 'full', 'masked', 'refused'].map((h) => el('th', {}, h))),
        rows.map(([who, t, more], i) => el('tr', { class: i === 0 ? 'fresh' : null }, el('td', {}, i === 0 ? who : link(`#/accounts/${encodeURIComponent(who)}`, who)),
          el('td', {}, shift(t.hours)), el('td', {}, i === 0 ? '—' : (onShift(t) ? 'yes' : 'no')),
          el('td', {}, `${t.full}${more ? '+' : ''}`), el('td', {}, `${t.masked}${more ? '+' : ''}`), el('td', {}, `${t.refused}${more ? '+' : ''}`))))));
    // Its standing over time: every suspension and reinstatement of it in the log.
    const mentions = new RegExp(`(^|\\s)account=${id.replace(/[^A-Za-z0-9_.-]/g, '').replaceAll('.', '\\.')}(\\s|;|$)`);
    const changes = [];
    for (const action of ['account_suspend', 'account_reinstate']) {
      const r = await searchAll({ action }, 2_000);
      changes.push(...r.entries.filter((e) => e.decision === 'allow' && mentions.test(e.detail || '')));
    }
    changes.sort((x, y) => y.time - x.time);
    timeline.append(el('section', { class: 'card' }, el('h2', {}, 'Status history'),
      changes.length ? el('table', { id: 'status-history' }, el('tr', {}, ['when', 'change', 'by', 'detail'].map((h) => el('th', {}, h))),
        changes.map((e) => el('tr', {}, el('td', {}, formatTime(e.time)), el('td', {}, e.action === 'account_suspend' ? 'suspended' : 'reinstated'),
          el('td', {}, e.account), el('td', {}, e.detail))))
        : el('p', { class: 'muted' }, `Active since it was created (${formatTime(d.created_at)}).`)));
  } catch (err) { fail(timeline, err); }
}

// ───── the audit explorer ─────

async function auditPage(view) {
  const fields = {};
  const input = (name, placeholder) => (fields[name] = el('input', { id: `audit-${name}`, name, placeholder, size: 16 }));
  const results = el('tbody', { id: 'audit-rows' });
  const more = el('button', { type: 'button', class: 'secondary', id: 'audit-more', hidden: true }, 'Next page');
  const status = el('p', { class: 'muted', id: 'audit-status' });
  const trustLine = el('p', { id: 'trust', class: 'muted' }, 'Checking the signed checkpoint in this browser…');
  let trust = null;
  let cursor = null;
  const params = () => Object.fromEntries(Object.entries(fields).map(([k, f]) => [k, f.value.trim()]));
  const verifyCell = (seq) => {
    const cell = el('td', {});
    const go = async () => {
      cell.replaceChildren('…');
      try {
        const v = trust ? await verifyEntry(seq, trust) : { status: 'failed', why: 'no trusted checkpoint' };
        cell.replaceChildren(...verdict(v));
      } catch (err) { cell.replaceChildren(el('span', { class: 'badge failed' }, 'failed'), ` ${err.message}`); }
    };
    cell.append(el('button', { type: 'button', class: 'secondary verify', onclick: go }, 'verify'));
    return cell;
  };
  const show = (page, append) => {
    const rows = page.entries.map((e) => el('tr', {}, el('td', {}, e.seq), el('td', {}, formatTime(e.time)),
      el('td', {}, link(`#/accounts/${encodeURIComponent(e.account)}`, e.account)), el('td', {}, e.action), el('td', {}, e.decision),
      el('td', {}, e.view || '—'), el('td', {}, e.purpose || '—'), el('td', {}, e.waybill || '—'), el('td', {}, e.detail || ''),
      verifyCell(e.seq)));
    if (append) results.append(...rows); else results.replaceChildren(...rows);
    cursor = page.next || null;
    more.hidden = !cursor;
    status.textContent = `${results.children.length} entries${cursor ? ' (more below)' : ''}`;
  };
  const search = async (ev) => {
    if (ev) ev.preventDefault();
    try { show(await api('GET', `/v1/audit/entries${query({ ...params(), limit: 100 })}`), false); } catch (err) { fail(status, err); }
  };
  more.addEventListener('click', async () => {
    try { show(await api('GET', `/v1/audit/entries${query({ ...params(), cursor, limit: 100 })}`), true); } catch (err) { fail(status, err); }
  });
  const seqInput = el('input', { id: 'proof-seq', type: 'number', min: 0, placeholder: 'seq' });
  const proofResult = el('span', { id: 'proof-result' });
  const proveOne = async (ev) => {
    ev.preventDefault();
    const seq = Number(seqInput.value);
    if (!Number.isInteger(seq) || seq < 0) { proofResult.textContent = 'A seq is a whole number.'; return; }
    try {
      const v = trust ? await verifyEntry(seq, trust) : { status: 'failed', why: 'no trusted checkpoint' };
      proofResult.replaceChildren(el('span', { class: `badge ${v.status}` }, v.status), ` ${v.why || `root ${v.root}`}`);
    } catch (err) { proofResult.textContent = err.message; }
  };
  view.append(el('h1', {}, 'Audit log'),
    el('section', { class: 'card' }, el('h2', {}, 'Checkpoint'), trustLine,
      el('form', { class: 'inline', id: 'prove', onsubmit: proveOne }, el('label', {}, 'Prove entry', seqInput),
        el('button', { type: 'submit' }, 'Prove'), proofResult)),
    el('form', { class: 'inline', id: 'audit-search', onsubmit: search },
      el('label', {}, 'Account', input('account', 'c-0001')), el('label', {}, 'Waybill', input('waybill', 'YT…')),
      el('label', {}, 'Action', input('action', 'view')), el('label', {}, 'Decision', input('decision', 'allow / deny')),
      el('label', {}, 'From', input('from', 'now-1d, 2026-12-01T08:00')), el('label', {}, 'To', input('to', 'now')),
      el('button', { type: 'submit', id: 'audit-go' }, 'Search')),
    status,
    el('table', { id: 'audit' }, el('thead', {}, el('tr', {}, ['seq', 'time', 'account', 'action', 'decision', 'view', 'purpose',
      'waybill', 'detail', 'proof'].map((h) => el('th', {}, h)))), results), more);
  try {
    trust = await loadTrust();
    if (trust.pin === 'changed') {
      trustLine.replaceChildren(el('span', { class: 'badge failed' }, 'key changed'),
        ' This node\'s verifier key is not the one this browser pinned; proofs are not trusted. ',
        el('button', { type: 'button', class: 'secondary', onclick: () => { unpin(); route(); } }, 'Forget the pinned key'));
      trust = null;
    } else {
      trustLine.replaceChildren(el('span', { class: 'badge verified' }, 'verified'),
        ` Checkpoint of ${trust.checkpoint.size} entries (origin ${trust.checkpoint.origin}), its Ed25519 signature checked in `
        + `this browser against key ${trust.key.name}, fingerprint ${trust.fingerprint}${trust.pin === 'new' ? ' (pinned now)' : ' (as pinned)'}.`);
    }
  } catch (err) {
    trustLine.replaceChildren(el('span', { class: 'badge failed' }, 'not verified'), ` ${err.message}`);
  }
  await search();
}

// ───── exports ─────

async function exportsPage(view) {
  const status = el('select', { id: 'export-status' }, el('option', { value: 'requested' }, 'waiting for approval'),
    el('option', { value: 'approved' }, 'approved'), el('option', { value: 'delivered' }, 'delivered'),
    el('option', { value: '' }, 'all'));
  const body = el('tbody', { id: 'export-rows' });
  const result = el('p', { role: 'status', id: 'export-result' });
  const load = async () => {
    const list = await api('GET', `/v1/exports${query({ status: status.value })}`);
    body.replaceChildren(...list.map((x) => el('tr', {}, el('td', {}, x.id), el('td', {}, x.requested_by), el('td', {}, x.merchant),
      el('td', {}, x.purpose), el('td', {}, `${formatTime(x.from)} – ${formatTime(x.to)}`), el('td', {}, x.rows),
      el('td', {}, x.status), el('td', {}, formatTime(x.requested_at)),
      el('td', {}, x.status === 'requested' ? el('button', { type: 'button', class: 'approve', onclick: async () => {
        try { await api('POST', `/v1/exports/${x.id}/approve`); result.textContent = `${x.id} approved.`; await load(); } catch (err) { result.textContent = err.message; }
      } }, 'Approve') : (x.approved_by || '—')))));
    if (!list.length) body.replaceChildren(el('tr', {}, el('td', { colspan: 9, class: 'muted' }, 'Nothing here.')));
  };
  status.addEventListener('change', () => load().catch((e) => fail(result, e)));
  view.append(el('h1', {}, 'Exports'), el('p', { class: 'muted' }, 'A merchant\'s bulk export is handed over only once a second account approves it; '
    + 'the requester cannot approve their own.'), el('form', { class: 'inline' }, el('label', {}, 'Show', status)), result,
  el('table', {}, el('thead', {}, el('tr', {}, ['export', 'requested by', 'merchant', 'purpose', 'orders between', 'rows', 'status',
    'requested', ''].map((h) => el('th', {}, h)))), body));
  try { await load(); } catch (err) { fail(result, err); }
}

// ───── forensics: a leaked file, ranked suspects, incidents ─────

function percent(x) {
  return `${(x * 100).toFixed(1)}%`;
}

async function forensicsPage(view) {
  const file = el('input', { id: 'leak-file', type: 'file', accept: '.csv,.txt,.tsv,.jsonl,.json,text/*' });
  const result = el('div', { id: 'attribution' });
  const incidents = el('tbody', { id: 'incident-rows' });
  const opened = el('p', { id: 'incident-result', role: 'status' });
  const from = el('input', { id: 'incident-from', size: 22, placeholder: 'now-30d, 2026-11-01' });
  const to = el('input', { id: 'incident-to', size: 22, placeholder: 'now' });
  const suspects = el('input', { id: 'incident-suspects', size: 30, placeholder: 'C2a, C2b' });
  const listIncidents = async () => {
    const list = await api('GET', '/v1/forensics/incidents');
    incidents.replaceChildren(...list.map((x) => el('tr', {}, el('td', {}, x.incident), el('td', {}, x.state),
      el('td', {}, x.grade),
      x.regulator_report_due && x.state === 'open' ? el('td', { dataset: { deadline: String(x.regulator_report_due) } }, '…')
        : el('td', { class: 'muted' }, x.regulator_report_due ? formatTime(x.regulator_report_due) : 'not due'),
      el('td', {}, x.suspects.join(', ')), el('td', {}, `${formatTime(x.from)} – ${formatTime(x.to)}`), el('td', {}, x.exposures),
      el('td', {}, x.created_by), el('td', {}, formatTime(x.created_at)),
      el('td', {}, ['markdown', 'csv', 'json'].map((f) => [el('a', { href: `/v1/forensics/incidents/${encodeURIComponent(x.incident)}?format=${f}`,
        download: `${x.incident}.${f === 'markdown' ? 'md' : f}` }, f), ' '])),
      // Every report the incident owes, as PDF in Chinese and English (PIPL art. 57, the regulators, the police).
      el('td', { class: 'owed' }, ['letter', 'sms', 'regulator', 'postal', 'police'].map((k) => [k, ' ', ['zh', 'en'].map((l) => [
        el('a', { href: `/v1/forensics/incidents/${encodeURIComponent(x.incident)}/reports/${k}?lang=${l}&format=pdf`,
          download: `${x.incident}-${k}-${l}.pdf` }, l), ' ']), el('br')])))));
    if (!list.length) incidents.replaceChildren(el('tr', {}, el('td', { colspan: 11, class: 'muted' }, 'No incidents.')));
    tickSla();
  };
  const attribute = async (ev) => {
    ev.preventDefault();
    const f = file.files[0];
    if (!f) { result.replaceChildren(notice('Choose the leaked file first.')); return; }
    result.replaceChildren(notice(`Matching ${f.size} bytes against the audit log…`));
    try {
      const r = await fetch('/v1/forensics/attributions', { method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'text/csv', 'X-CSRF-Token': session.csrf }, body: await f.arrayBuffer() });
      const data = await r.json();
      if (!r.ok) throw new ApiError(r.status, data);
      const top = data.suspects[0];
      if (top) {
        suspects.value = top.principal;
        from.value = new Date(top.first_access - 86_400_000).toISOString();
        to.value = 'now';
      }
      result.replaceChildren(
        el('p', {}, `${data.rows} rows (${data.format}); ${data.matched} matched waybills in the log, ${data.unmatched} did not; `
          + `${data.principals_considered} accounts considered. Recorded as audit entry ${data.audit_seq}.`),
        data.suspects.length ? el('table', { id: 'suspects' }, el('tr', {}, ['rank', 'account', 'role', 'covered', 'coverage', 'only it',
          'full views', 'posterior', 'first access', 'last access', 'evidence'].map((h) => el('th', {}, h))),
        data.suspects.map((x) => el('tr', {}, el('td', {}, x.rank), el('td', {}, link(`#/accounts/${encodeURIComponent(x.principal)}`, x.principal)),
          el('td', {}, x.role || '—'), el('td', {}, x.covered), el('td', {}, percent(x.coverage)), el('td', {}, x.exclusive),
          el('td', {}, x.shown_full), el('td', {}, percent(x.posterior)), el('td', {}, formatTime(x.first_access)),
          el('td', {}, formatTime(x.last_access)), el('td', {}, `${x.evidence.length} entries: `,
            x.evidence.slice(0, 5).map((e) => `#${e.seq} `)))))
          : el('p', { class: 'muted' }, 'No account read these waybills: the leak did not come through the guard.'));
    } catch (err) { fail(result, err); }
  };
  const open = async (ev) => {
    ev.preventDefault();
    try {
      const report = await api('POST', '/v1/forensics/incidents', {
        suspects: suspects.value.split(',').map((x) => x.trim()).filter(Boolean), from: from.value.trim(), to: to.value.trim() || 'now' });
      opened.replaceChildren(`Incident ${report.incident}: ${report.customers} customers exposed (${report.customers_full} in full) `
        + `over ${report.waybills} waybills; beyond the suspects' work: ${report.waybills_beyond_work} waybills, `
        + `${report.customers_beyond_work} customers (the notification list's default). `, link(`/v1/forensics/incidents/${encodeURIComponent(report.incident)}?format=markdown`, 'Read the report'));
      await listIncidents();
    } catch (err) { opened.textContent = err.message; }
  };
  view.append(el('h1', {}, 'Forensics'),
    el('section', { class: 'card' }, el('h2', {}, 'Who could have leaked this list?'),
      el('p', { class: 'muted' }, 'The file is matched against the audit log on this node; the answer names accounts, waybills and '
        + 'audit entries, never a person.'),
      el('form', { class: 'inline', id: 'attribute', onsubmit: attribute }, el('label', {}, 'Leaked file (CSV or JSON Lines)', file),
        el('button', { type: 'submit', id: 'attribute-go' }, 'Rank suspects')), result),
    el('section', { class: 'card' }, el('h2', {}, 'Open an incident'),
      el('form', { class: 'inline', id: 'incident', onsubmit: open }, el('label', {}, 'Suspects', suspects), el('label', {}, 'From', from),
        el('label', {}, 'To', to), el('button', { type: 'submit', id: 'incident-go' }, 'Open incident')), opened),
    el('section', { class: 'card' }, el('h2', {}, 'Incidents'), el('table', { id: 'incidents' }, el('thead', {}, el('tr', {}, ['incident',
      'state', 'grade', 'regulator report due', 'suspects', 'window', 'exposures', 'opened by', 'opened', 'report',
      'reports owed (PDF)']
      .map((h) => el('th', {}, h)))), incidents)));
  try { await listIncidents(); } catch (err) { fail(opened, err); }
  const timer = setInterval(tickSla, 1000);
  leaving.push(() => clearInterval(timer));
}

// ───── cases: alerts, accounts and incidents worked together ─────

const FINDINGS = [['confirmed_leak', 'Confirmed leak'], ['policy_violation', 'Policy violation'], ['no_wrongdoing', 'No wrongdoing'],
  ['inconclusive', 'Inconclusive']];

function caseCard(alert) {
  const pick = el('select', { id: 'case-pick' }, el('option', { value: '' }, '— an open case —'));
  const title = el('input', { id: 'case-title', size: 36, maxlength: 200, placeholder: 'title of a new case' });
  const result = el('p', { id: 'case-result', role: 'status' });
  let open = [];
  api('GET', '/v1/cases').then((list) => {
    open = list.filter((c) => c.state === 'open');
    pick.append(...open.map((c) => el('option', { value: c.id }, `${c.id} · ${c.title}`)));
  }).catch(() => {});
  const add = async () => {
    const c = open.find((x) => x.id === pick.value);
    if (!c) { result.textContent = 'Choose a case.'; return; }
    try {
      await api('POST', `/v1/cases/${c.id}/changes`, { revision: c.revision, add_alerts: [alert.id], add_accounts: [alert.account] });
      result.replaceChildren('Added to ', link(`#/cases/${c.id}`, c.id), '.');
    } catch (err) { result.textContent = err.message; }
  };
  const create = async () => {
    try {
      const c = await api('POST', '/v1/cases', { title: title.value, alerts: [alert.id], accounts: [alert.account] });
      result.replaceChildren('Opened ', link(`#/cases/${c.id}`, c.id), '.');
    } catch (err) { result.textContent = err.message; }
  };
  return el('section', { class: 'card' }, el('h2', {}, 'Case'),
    el('div', { class: 'inline' }, pick, el('button', { type: 'button', class: 'secondary', id: 'case-add', onclick: add }, 'Add to case')),
    el('div', { class: 'inline' }, title, el('button', { type: 'button', id: 'case-new', onclick: create }, 'Open a case')), result);
}

async function casesPage(view) {
  const title = el('input', { id: 'new-case-title', size: 40, maxlength: 200, placeholder: 'what it is about' });
  const result = el('p', { role: 'status', id: 'new-case-result' });
  const body = el('tbody', { id: 'case-rows' });
  const create = async (ev) => {
    ev.preventDefault();
    try { const c = await api('POST', '/v1/cases', { title: title.value }); location.hash = `#/cases/${c.id}`; } catch (err) { result.textContent = err.message; }
  };
  view.append(el('h1', {}, 'Cases'),
    session.role === 'auditor' ? el('form', { class: 'inline', onsubmit: create }, el('label', {}, 'New case', title),
      el('button', { type: 'submit' }, 'Open')) : null, result,
    el('table', {}, el('thead', {}, el('tr', {}, ['case', 'title', 'state', 'alerts', 'accounts', 'checklist', 'opened by', 'changed']
      .map((h) => el('th', {}, h)))), body));
  try {
    const list = await api('GET', '/v1/cases');
    body.replaceChildren(...list.map((c) => el('tr', {}, el('td', {}, link(`#/cases/${c.id}`, c.id)), el('td', {}, c.title),
      el('td', {}, c.finding ? `closed: ${c.finding}` : c.state), el('td', {}, c.alerts.length), el('td', {}, c.accounts.length),
      el('td', {}, `${c.checklist.filter((i) => i.done).length}/${c.checklist.length}`), el('td', {}, c.created_by),
      el('td', {}, formatTime(c.updated_at)))));
    if (!list.length) body.replaceChildren(el('tr', {}, el('td', { colspan: 8, class: 'muted' }, 'No cases yet.')));
  } catch (err) { fail(result, err); }
}

async function casePage(view, id) {
  view.append(el('p', {}, link('#/cases', '← cases')));
  const body = el('div', {}, notice('Loading…'));
  view.append(body);
  let c;
  try { c = await api('GET', `/v1/cases/${encodeURIComponent(id)}`); } catch (err) { fail(body, err); return; }
  const result = el('p', { id: 'case-change-result', role: 'status' });
  const change = async (ch) => {
    try { await api('POST', `/v1/cases/${c.id}/changes`, { revision: c.revision, ...ch }); route(); } catch (err) {
      result.textContent = err.status === 409 ? `${err.message}` : err.message;
    }
  };
  const mine = session.role === 'auditor';
  const evSeq = el('input', { id: 'evidence-seq', type: 'number', min: 0, size: 8, placeholder: 'seq' });
  const evLabel = el('input', { id: 'evidence-label', size: 40, maxlength: 200, placeholder: 'why it matters' });
  const item = el('input', { id: 'new-item', size: 40, maxlength: 200, placeholder: 'a further step' });
  const finding = el('select', { id: 'case-finding' }, el('option', { value: '' }, '— finding —'),
    FINDINGS.map(([v, t]) => el('option', { value: v }, t)));
  body.replaceChildren(
    el('h1', {}, `Case ${c.id} · ${c.title}`),
    el('section', { class: 'card' }, kv([['state', el('span', { id: 'case-state' }, c.finding ? `closed: ${c.finding}` : c.state)],
      ['opened', `${formatTime(c.created_at)} by ${c.created_by}`], ['changed', formatTime(c.updated_at)],
      ['alerts', c.alerts.length ? c.alerts.map((a) => [link(`#/alerts/${a}`, `#${a}`), ' ']) : '—'],
      ['accounts', c.accounts.length ? c.accounts.map((a) => [link(`#/accounts/${encodeURIComponent(a)}`, a), ' ']) : '—'],
      ['incidents', c.incidents.length ? c.incidents.join(', ') : '—']]),
    el('p', {}, el('a', { id: 'case-pack', href: `/v1/cases/${c.id}/evidence-pack`, download: `case-${c.id}-evidence.json` },
      'Download the case\'s evidence pack'), el('span', { class: 'muted' }, ' — its locker and every alert\'s entries, with proofs.'))),
    el('section', { class: 'card' }, el('h2', {}, 'Checklist'),
      el('ul', { id: 'checklist' }, c.checklist.map((it, i) => el('li', {},
        el('label', { class: 'check' }, el('input', { type: 'checkbox', class: 'tick', checked: it.done, disabled: !mine || c.state !== 'open',
          dataset: { index: String(i) }, onchange: (ev) => change(ev.target.checked ? { check: [i] } : { uncheck: [i] }) }),
        ` ${it.text}`, it.done ? el('span', { class: 'muted' }, ` — ${it.by}, ${formatTime(it.at)}`) : '')))),
      mine && c.state === 'open' ? el('div', { class: 'inline' }, item, el('button', { type: 'button', class: 'secondary', id: 'add-item',
        onclick: () => change({ add_items: [item.value] }) }, 'Add step')) : null),
    el('section', { class: 'card' }, el('h2', {}, 'Evidence locker'),
      mine && c.state === 'open' ? el('div', { class: 'inline' }, el('label', {}, 'Audit entry', evSeq), el('label', {}, 'Label', evLabel),
        el('button', { type: 'button', id: 'add-evidence', onclick: () => change({ add_evidence: [{ seq: Number(evSeq.value), label: evLabel.value }] }) },
          'Put in the locker')) : null,
      c.evidence.length ? el('table', { id: 'locker' }, el('tr', {}, ['seq', 'label', 'added by', 'when'].map((h) => el('th', {}, h))),
        c.evidence.map((e) => el('tr', {}, el('td', {}, e.seq), el('td', {}, e.label), el('td', {}, e.added_by), el('td', {}, formatTime(e.added_at)))))
        : el('p', { class: 'muted' }, 'Empty.'),
      c.evidence.length ? await evidenceTable(c.evidence.map((e) => e.seq)) : null),
    mine ? el('section', { class: 'card' }, el('h2', {}, c.state === 'open' ? 'Close' : 'Reopen'), c.state === 'open'
      ? el('div', { class: 'inline' }, finding, el('button', { type: 'button', id: 'close-case', onclick: () => {
        if (!finding.value) { result.textContent = 'A finding is required to close a case.'; return; }
        change({ close: finding.value });
      } }, 'Close the case'))
      : el('button', { type: 'button', class: 'secondary', id: 'reopen-case', onclick: () => change({ reopen: true }) }, 'Reopen')) : null,
    result);
}

// ───── start ─────

window.addEventListener('hashchange', route);
document.addEventListener('DOMContentLoaded', async () => {
  $('#sign-in-form').addEventListener('submit', signIn);
  $('#sign-out').addEventListener('click', signOut);
  try {
    const options = await (await fetch('/console/sign-in-options', { credentials: 'same-origin' })).json();
    $('#sign-in-idp').hidden = !options.identity_provider;
  } catch { /* the token form is always there */ }
  try {
    signedIn(await api('GET', '/console/session'));
  } catch {
    signedOut('');
  }
});
