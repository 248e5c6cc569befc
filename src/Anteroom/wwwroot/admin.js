// One file over the usual length for now: every panel of the dashboard is redrawn from the same snapshot event and
// the same metrics series held below; the chart drawing itself lives apart (chart.js).
// The operator dashboard. Everything live comes from one EventSource on /admin/events (the HttpOnly session cookie
// goes along, same-origin); the page fetches the last hour of metrics once, then merges the minute of points each
// snapshot carries, and reads usage at load, on a button, and at most once a minute after requests end.

import { LineChart, formatNumber } from './chart.js';

const HOUR = 3_600_000;
const RECONNECT_MS = 3_000;
// The server sends a snapshot at least every 5 s; this much silence means the connection is gone even if the
// browser has not noticed (a sleeping laptop, a proxy holding the socket).
const SILENCE_MS = 15_000;
const USAGE_MIN_INTERVAL_MS = 60_000;

const $ = (id) => document.getElementById(id);
const waitingBody = document.querySelector('[data-testid="waiting-table"] tbody');
const runningBody = document.querySelector('[data-testid="running-table"] tbody');
const backendsBody = document.querySelector('[data-testid="backends-table"] tbody');
const usageBody = document.querySelector('[data-testid="usage-table"] tbody');
const liveIndicator = document.querySelector('[data-testid="live-indicator"]');

const state = {
  source: null,
  silence: null,
  retry: null,
  snapshot: null,
  // performance.now() when the snapshot arrived: waited and elapsed times tick on from there, in the page.
  receivedAt: 0,
  points: new Map(),
  charts: null,
  usageAt: 0,
  usageStale: false,
  usageLoading: false,
};

// ---- formatting ----

function duration(ms) {
  if (!(ms >= 0)) return '–';
  const seconds = ms / 1000;
  if (seconds < 10) return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)} s`;
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} m ${String(Math.floor(seconds % 60)).padStart(2, '0')} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} m`;
}

const whole = (value) => Number(value ?? 0).toLocaleString();

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function setLive(kind) {
  const text = { live: 'live', reconnecting: 'reconnecting…', connecting: 'connecting…', offline: 'not connected' }[kind];
  liveIndicator.dataset.state = kind;
  if (liveIndicator.textContent !== text) liveIndicator.textContent = text;
}

let noticeTimer = null;
function notify(message) {
  const notice = $('notice');
  notice.textContent = message;
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { notice.hidden = true; }, 8_000);
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body?.error?.message ?? `${response.status} ${response.statusText}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

// ---- session ----

async function readSession() {
  const response = await fetch('/session', { headers: { Accept: 'application/json' } });
  if (!response.ok) throw new Error(await errorMessage(response));
  return response.json();
}

async function start() {
  let session;
  try {
    session = await readSession();
  } catch (error) {
    setLive('reconnecting');
    notify(`Anteroom is not answering (${error.message}); trying again.`);
    setTimeout(start, RECONNECT_MS);
    return;
  }
  if (session.admin) {
    showDashboard(session);
  } else {
    showSignIn(session.signed_in ? `You are signed in as ${session.user}, who is not an admin.` : '');
  }
}

function showSignIn(message) {
  disconnect();
  setLive('offline');
  $('dashboard').hidden = true;
  $('who').hidden = true;
  $('sign-out').hidden = true;
  $('sign-in').hidden = false;
  $('sign-in-message').textContent = message;
  $('admin-key').focus();
}

function showDashboard(session) {
  $('sign-in').hidden = true;
  $('dashboard').hidden = false;
  $('who').textContent = `Signed in as ${session.user}`;
  $('who').hidden = false;
  $('sign-out').hidden = false;
  state.charts ??= createCharts();
  connect();
  loadMetrics();
  loadUsage();
}

$('admin-key-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = $('admin-key');
  const message = $('sign-in-message');
  const key = input.value.trim();
  if (!key) {
    message.textContent = 'Paste an admin key first.';
    input.focus();
    return;
  }
  message.textContent = 'Checking the key…';
  let response;
  try {
    response = await fetch('/session', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ key }),
    });
  } catch (error) {
    message.textContent = `Anteroom is not answering: ${error.message}`;
    return;
  }
  if (!response.ok) {
    message.textContent = await errorMessage(response);
    input.select();
    return;
  }
  const session = await response.json();
  input.value = '';
  if (!session.admin) {
    message.textContent = `That key belongs to ${session.user}, who is not an admin. The dashboard needs a key made with --admin.`;
    input.focus();
    return;
  }
  message.textContent = '';
  showDashboard(session);
  $('dashboard').focus();
});

$('sign-out').addEventListener('click', async () => {
  try {
    await fetch('/session', { method: 'DELETE' });
  } finally {
    showSignIn('Signed out.');
  }
});

// ---- the live feed ----

function connect() {
  disconnect();
  setLive(state.snapshot ? 'reconnecting' : 'connecting');
  const source = new EventSource('/admin/events');
  state.source = source;
  source.addEventListener('open', () => {
    setLive('live');
    expectSnapshot();
  });
  source.addEventListener('snapshot', (event) => {
    setLive('live');
    expectSnapshot();
    onSnapshot(JSON.parse(event.data));
  });
  source.addEventListener('error', () => {
    if (state.source !== source) return;
    if (source.readyState === EventSource.CLOSED) {
      // Refused outright (not an admin any more, or the server answered something else): the browser will not retry.
      recoverClosed();
    } else {
      // Dropped: the browser reconnects by itself after the server's retry interval.
      setLive('reconnecting');
    }
  });
}

function disconnect() {
  clearTimeout(state.silence);
  clearTimeout(state.retry);
  if (state.source) {
    state.source.close();
    state.source = null;
  }
}

function expectSnapshot() {
  clearTimeout(state.silence);
  state.silence = setTimeout(() => {
    setLive('reconnecting');
    connect();
  }, SILENCE_MS);
}

async function recoverClosed() {
  disconnect();
  setLive('reconnecting');
  try {
    const session = await readSession();
    if (!session.admin) {
      showSignIn('Your session no longer has admin rights (the key may have been revoked). Sign in again.');
      return;
    }
  } catch {
    // Not answering: try again below.
  }
  state.retry = setTimeout(connect, RECONNECT_MS);
}

function onSnapshot(snapshot) {
  state.snapshot = snapshot;
  state.receivedAt = performance.now();
  renderModels(snapshot);
  renderWaiting(snapshot);
  renderRunning(snapshot);
  renderBackends(snapshot);
  mergePoints(snapshot.metrics.points, true);
  renderCharts();
  if (state.usageStale && performance.now() - state.usageAt >= USAGE_MIN_INTERVAL_MS) loadUsage();
}

// ---- queue ----

function renderModels(snapshot) {
  const list = $('models');
  list.replaceChildren(...snapshot.models.map((model) => {
    const item = document.createElement('li');
    item.dataset.model = model.model;
    const name = document.createElement('strong');
    name.textContent = model.model;
    const figures = document.createElement('span');
    figures.textContent = `${whole(model.waiting)} waiting · ${whole(model.running)}/${whole(model.slots)} slots running · ~${duration(model.estimated_service_ms)} an answer`;
    item.append(name, figures);
    return item;
  }));
}

/**
 * Puts one row per item in `body`, in order, reusing the rows of items already shown so that a focused cancel
 * button keeps its focus while everything around it updates. If the focused row goes, focus moves to `heading`.
 */
function reconcile(body, items, key, create, update, heading) {
  const existing = new Map([...body.rows].map((row) => [row.dataset.key, row]));
  items.forEach((item, index) => {
    const id = key(item);
    let row = existing.get(id);
    if (row) {
      existing.delete(id);
    } else {
      row = create(item);
      row.dataset.key = id;
    }
    update(row, item);
    if (body.rows[index] !== row) body.insertBefore(row, body.rows[index] ?? null);
  });
  for (const row of existing.values()) {
    const hadFocus = row.contains(document.activeElement);
    row.remove();
    if (hadFocus) heading.focus();
  }
}

function cancelButton(request) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'danger small';
  button.dataset.testid = 'cancel';
  button.textContent = 'Cancel';
  button.setAttribute('aria-label', `Cancel ${request.user}'s request for ${request.model}`);
  button.addEventListener('click', () => cancel(button, request.request_id));
  return button;
}

async function cancel(button, id) {
  // aria-disabled rather than disabled: a disabled button drops keyboard focus.
  if (button.getAttribute('aria-disabled') === 'true') return;
  button.setAttribute('aria-disabled', 'true');
  button.textContent = 'Cancelling…';
  let response;
  try {
    response = await fetch(`/queue/requests/${encodeURIComponent(id)}`, { method: 'DELETE' });
  } catch (error) {
    response = null;
    notify(`Could not cancel: ${error.message}`);
  }
  if (response?.status === 202) return; // The next snapshot takes the row away.
  if (response?.status === 404 || response?.status === 409) {
    notify('That request had already ended.');
    return;
  }
  if (response?.status === 401 || response?.status === 403) {
    recoverClosed();
  } else if (response) {
    notify(`Could not cancel: ${await errorMessage(response)}`);
  }
  button.removeAttribute('aria-disabled');
  button.textContent = 'Cancel';
}

function renderWaiting(snapshot) {
  const rows = snapshot.queue;
  reconcile(waitingBody, rows, (r) => r.request_id, (r) => {
    const row = document.createElement('tr');
    row.dataset.requestId = r.request_id;
    const owner = cell(r.user);
    owner.title = r.owner;
    const actions = document.createElement('td');
    actions.append(cancelButton(r));
    row.append(cell('', 'num'), owner, cell(r.tier), cell(r.model), cell('', 'num ticking'), actions);
    return row;
  }, (row, r) => {
    row.cells[0].textContent = `${r.position}`;
    row.dataset.since = String(r.waited_ms);
    row.cells[4].textContent = duration(r.waited_ms);
  }, $('waiting-heading'));
  $('waiting-count').textContent = `(${whole(snapshot.waiting)})`;
  $('waiting-empty').hidden = snapshot.waiting > 0;
  const more = $('waiting-more');
  more.hidden = rows.length >= snapshot.waiting;
  more.textContent = `Showing the first ${rows.length} of ${whole(snapshot.waiting)} waiting requests.`;
}

function renderRunning(snapshot) {
  const rows = [...snapshot.active].sort((a, b) => a.backend.localeCompare(b.backend) || b.elapsed_ms - a.elapsed_ms);
  reconcile(runningBody, rows, (r) => r.request_id, (r) => {
    const row = document.createElement('tr');
    row.dataset.requestId = r.request_id;
    const owner = cell(r.user);
    owner.title = r.owner;
    const actions = document.createElement('td');
    actions.append(cancelButton(r));
    row.append(cell(r.backend), owner, cell(r.model), cell('', 'num ticking'), cell('', 'num'), actions);
    return row;
  }, (row, r) => {
    row.dataset.since = String(r.elapsed_ms);
    row.cells[3].textContent = duration(r.elapsed_ms);
    row.cells[4].textContent = whole(r.tokens);
  }, $('running-heading'));
  $('running-count').textContent = `(${whole(snapshot.running)})`;
  $('running-empty').hidden = rows.length > 0;
}

// Waited and elapsed times move every second between snapshots, computed here from the snapshot's figures.
setInterval(() => {
  if (!state.snapshot) return;
  const extra = performance.now() - state.receivedAt;
  for (const row of [...waitingBody.rows, ...runningBody.rows]) {
    const ticking = row.querySelector('.ticking');
    if (ticking) ticking.textContent = duration(Number(row.dataset.since) + extra);
  }
}, 1_000);

function renderBackends(snapshot) {
  const throughput = new Map(snapshot.metrics.backends.map((b) => [b.name, b.tokens_per_second]));
  reconcile(backendsBody, snapshot.backends, (b) => b.name, (b) => {
    const row = document.createElement('tr');
    row.dataset.backend = b.name;
    const name = cell(b.name);
    const protocol = document.createElement('span');
    protocol.className = 'muted';
    protocol.textContent = ` ${b.protocol}`;
    name.append(protocol);
    row.append(name, cell(''), cell(''), cell(''), cell('', 'num'), cell('', 'num'), cell('', 'num'));
    return row;
  }, (row, b) => {
    row.cells[1].textContent = `${b.running}/${b.slots}`;
    row.cells[2].textContent = b.models.join(', ');
    row.cells[3].replaceChildren(health(b.healthy));
    row.cells[4].textContent = formatNumber(throughput.get(b.name) ?? 0);
    row.cells[5].textContent = whole(b.completed);
    row.cells[6].textContent = `${Math.round(b.utilisation * 100)}%`;
  }, $('backends-heading'));
}

function health(healthy) {
  const span = document.createElement('span');
  span.className = healthy ? 'health ok' : 'health bad';
  span.textContent = healthy ? 'healthy' : 'unhealthy';
  return span;
}

// ---- charts ----

function createCharts() {
  const figure = (id) => document.querySelector(`[data-testid="${id}"]`);
  return {
    queue: new LineChart(figure('chart-queue'), { label: 'Queue length, highest in each 10 s', series: [{ name: 'waiting' }], integer: true }),
    wait: new LineChart(figure('chart-wait'), {
      label: 'Wait for a slot of requests dispatched in each 10 s',
      series: [{ name: 'p50' }, { name: 'p95' }],
      format: duration,
      minTop: 2_000,
    }),
    throughput: new LineChart(figure('chart-throughput'), {
      label: 'Tokens generated per second, all backends',
      series: [{ name: 'tokens/s' }],
    }),
    refusals: new LineChart(figure('chart-refusals'), { label: 'Requests refused per minute', series: [{ name: 'refused/min' }] }),
  };
}

async function loadMetrics() {
  try {
    const response = await fetch('/admin/metrics?minutes=60', { headers: { Accept: 'application/json' } });
    if (!response.ok) {
      if (response.status === 401 || response.status === 403) recoverClosed();
      return;
    }
    const metrics = await response.json();
    // The snapshots that may already have arrived are newer: they win.
    mergePoints(metrics.points, false);
    renderCharts();
  } catch (error) {
    notify(`Could not load the last hour's metrics: ${error.message}`);
  }
}

function mergePoints(points, replace) {
  for (const point of points) {
    const t = Date.parse(point.at);
    const known = state.points.get(t);
    if (known && !replace) continue;
    // A request ending (or being refused) is news for the usage table.
    if (replace && (!known || point.completed + point.refusals > known.completed + known.refusals)) {
      if (point.completed + point.refusals > 0) state.usageStale = true;
    }
    state.points.set(t, point);
  }
  const newest = Math.max(...state.points.keys());
  for (const t of state.points.keys()) {
    if (t < newest - HOUR) state.points.delete(t);
  }
}

function renderCharts() {
  if (!state.charts || state.points.size === 0) return;
  const sorted = [...state.points.entries()].sort((a, b) => a[0] - b[0]);
  const to = sorted.at(-1)[0];
  const domain = { from: to - HOUR, to };
  // Rates and waits of the unfinished bucket are still filling, so those charts end at the last complete one; the
  // queue length is a sample, right from the start of its bucket.
  const complete = sorted.filter(([, p]) => p.complete);
  state.charts.queue.update(sorted.map(([t, p]) => ({ t, values: [p.queue_length] })), domain);
  state.charts.wait.update(complete.map(([t, p]) => ({
    t,
    values: p.waits > 0 ? [p.wait_p50_ms, p.wait_p95_ms] : [null, null],
  })), domain);
  state.charts.throughput.update(complete.map(([t, p]) => ({ t, values: [p.tokens_per_second] })), domain);
  state.charts.refusals.update(complete.map(([t, p]) => ({ t, values: [p.refusals_per_minute] })), domain);
}

// ---- usage ----

async function loadUsage() {
  if (state.usageLoading) return;
  state.usageLoading = true;
  state.usageStale = false;
  state.usageAt = performance.now();
  const button = $('usage-refresh');
  button.setAttribute('aria-busy', 'true');
  try {
    const response = await fetch('/admin/usage?hours=24', { headers: { Accept: 'application/json' } });
    if (!response.ok) {
      if (response.status === 401 || response.status === 403) recoverClosed();
      else notify(`Could not load usage: ${await errorMessage(response)}`);
      return;
    }
    renderUsage(await response.json());
  } catch (error) {
    notify(`Could not load usage: ${error.message}`);
  } finally {
    state.usageLoading = false;
    button.removeAttribute('aria-busy');
  }
}

function renderUsage(usage) {
  const users = [...usage.users].sort((a, b) => b.requests - a.requests || a.name.localeCompare(b.name));
  reconcile(usageBody, users, (u) => u.owner ?? u.name, (u) => {
    const row = document.createElement('tr');
    row.dataset.owner = u.owner ?? u.name;
    const name = cell(u.name);
    name.title = u.owner ?? u.name;
    row.append(name);
    for (let i = 0; i < 10; i++) row.append(cell('', 'num'));
    return row;
  }, (row, u) => {
    const refused = Object.entries(u.refused_by_reason ?? {}).map(([reason, count]) => `${reason}: ${count}`).join(', ');
    const values = [u.requests, u.completed, u.failed, u.cancelled, u.timed_out, u.refused, u.tokens_in, u.tokens_out].map(whole);
    values.push(duration(u.wait_p50_ms), duration(u.wait_p95_ms));
    values.forEach((value, i) => { row.cells[i + 1].textContent = value; });
    row.cells[6].title = refused;
  }, $('usage-heading'));
  $('usage-empty').hidden = users.length > 0;
  $('usage-updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
}

$('usage-refresh').addEventListener('click', loadUsage);

start();
