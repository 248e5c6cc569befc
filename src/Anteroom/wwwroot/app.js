'use strict';
// Anteroom's chat page: sends each message to POST /chat/stream and follows its events. Model output is
// only ever written with textContent, so nothing it says can become markup.

const chat = document.getElementById('chat');
const form = document.getElementById('composer');
const input = document.getElementById('message');
const modelPicker = document.getElementById('model');
const RECONNECT_GRACE_MS = 15000;
const PENDING_KEY = 'anteroom.pending';

function formatSeconds(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 90 ? `about ${s} s` : `about ${Math.round(s / 60)} min`;
}

function addTurn(role, text) {
  const turn = document.createElement('div');
  turn.className = `turn ${role}`;
  const body = document.createElement('div');
  body.className = 'body';
  body.textContent = text;
  turn.append(body);
  chat.append(turn);
  chat.scrollTop = chat.scrollHeight;
  return turn;
}

function answerView() {
  const turn = addTurn('assistant', '');
  const body = turn.querySelector('.body');
  const status = document.createElement('div');
  status.className = 'status';
  const label = document.createElement('span');
  label.textContent = 'Sending…';
  const stop = document.createElement('button');
  stop.type = 'button';
  stop.className = 'secondary';
  stop.textContent = 'Stop';
  status.append(label, stop);
  turn.append(status);
  return { body, label, stop, status };
}

// Reads an SSE response body and calls onEvent(name, id, data) for each event.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message', id = null, data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') name = val;
        else if (field === 'id') id = val;
        else if (field === 'data') data += val;
      }
      if (data) onEvent(name, id, JSON.parse(data));
    }
  }
}

function follow(view, response, state) {
  view.stop.onclick = () => {
    if (state.id) fetch(`/queue/requests/${state.id}`, { method: 'DELETE' });
  };
  return readEvents(response, (name, id, data) => {
    if (id) state.lastEventId = id;
    if (data.request_id) state.id = data.request_id;
    sessionStorage.setItem(PENDING_KEY, JSON.stringify(state));
    switch (name) {
      case 'queued':
        view.label.textContent = `In queue: position ${data.position} of ${data.queue_length} · ${formatSeconds(data.eta_ms)}`;
        break;
      case 'started':
        view.label.textContent = `Running on ${data.backend} · waited ${(data.waited_ms / 1000).toFixed(1)} s`;
        break;
      case 'token':
        view.body.textContent += data.text;
        chat.scrollTop = chat.scrollHeight;
        break;
      case 'done': {
        const t = data.timings;
        const parts = [`waited ${(t.waited_ms / 1000).toFixed(1)} s`];
        if (t.time_to_first_token_ms != null) parts.push(`first token ${t.time_to_first_token_ms} ms`);
        if (t.tokens_per_second != null) parts.push(`${t.tokens_per_second} tokens/s`);
        finish(view, parts.join(' · '));
        break;
      }
      case 'error':
        finish(view, `Error: ${data.message}`);
        break;
      case 'cancelled':
        finish(view, `Stopped (${data.reason.replaceAll('_', ' ')})`);
        break;
    }
  });
}

function finish(view, text) {
  view.label.textContent = text;
  view.stop.remove();
  sessionStorage.removeItem(PENDING_KEY);
}

async function send(message) {
  addTurn('user', message);
  const view = answerView();
  const state = { id: null, lastEventId: null, message };
  try {
    const response = await fetch('/chat/stream', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ message, model: modelPicker.value || undefined, reconnect_grace_ms: RECONNECT_GRACE_MS }),
    });
    if (!response.ok) {
      const problem = await response.json().catch(() => ({ error: { message: response.statusText } }));
      const retry = response.headers.get('Retry-After');
      finish(view, `Not accepted: ${problem.error.message}${retry ? ` Try again in ${retry} s.` : ''}`);
      return;
    }
    state.id = response.headers.get('X-Request-Id');
    await follow(view, response, state);
  } catch (err) {
    await resume(view, state);
  }
}

// Picks a request back up after a dropped connection or a reload: the server replays what was missed.
async function resume(view, state) {
  if (!state.id) { finish(view, 'Connection lost.'); return; }
  const headers = state.lastEventId ? { 'Last-Event-ID': state.lastEventId } : {};
  const response = await fetch(`/queue/requests/${state.id}/events`, { headers });
  if (!response.ok) { finish(view, 'Connection lost; the request is gone.'); return; }
  await follow(view, response, state);
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const message = input.value.trim();
  if (!message) return;
  input.value = '';
  input.focus();
  send(message); // not awaited: the input stays free while answers stream
});

input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey) {
    event.preventDefault();
    form.requestSubmit();
  }
});

async function start() {
  const response = await fetch('/models');
  const info = await response.json();
  for (const model of info.models) {
    const option = document.createElement('option');
    option.value = option.textContent = model;
    option.selected = model === info.default_model;
    modelPicker.append(option);
  }
  document.getElementById('simulated').hidden = !info.simulated;
  const pending = sessionStorage.getItem(PENDING_KEY);
  if (pending) {
    const state = JSON.parse(pending);
    addTurn('user', state.message || '');
    const view = answerView();
    view.body.textContent = '';
    state.lastEventId = null; // replay the whole answer into the new page
    resume(view, state).catch(() => finish(view, 'Connection lost.'));
  }
}

start();
