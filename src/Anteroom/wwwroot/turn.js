// One exchange: the user's message and the answer streaming back for it, from the queue to its end.
//
// A turn owns its two bubbles. It keeps following its request while the page shows another conversation (the
// bubbles are then simply not in the document), survives dropped connections by reconnecting with the last
// event id it saw, and keeps what a reload needs in sessionStorage so the next page can pick it up.

import { ApiError, json, request } from './api.js';
import { answerStats, queueStatus, retryHint } from './format.js';
import { renderMarkdownInto } from './markdown.js';
import { readEventStream } from './sse.js';

// How long the server keeps a request alive for us after the connection drops (it caps this itself).
const RECONNECT_GRACE_MS = 15000;
// If a stopped request's `cancelled` event has not arrived by then (the stream is down), end the bubble anyway.
const STOP_CONFIRM_MS = 3000;
const MAX_BACKOFF_MS = 10000;
const TERMINAL = new Set(['done', 'stopped', 'error', 'refused']);

/** In-flight requests of this tab, kept in sessionStorage by request id so a reload can resume them. */
export const inflight = {
  key: 'anteroom.inflight',

  all() {
    try {
      return JSON.parse(sessionStorage.getItem(this.key)) ?? {};
    } catch {
      return {};
    }
  },

  write(records) {
    try {
      if (Object.keys(records).length === 0) sessionStorage.removeItem(this.key);
      else sessionStorage.setItem(this.key, JSON.stringify(records));
    } catch {
      // Storage full or disabled: the answer still streams, it just cannot survive a reload.
    }
  },

  save(record) {
    const records = this.all();
    records[record.request_id] = record;
    this.write(records);
  },

  remove(requestId) {
    const records = this.all();
    if (requestId in records) {
      delete records[requestId];
      this.write(records);
    }
  },

  clear() {
    this.write({});
  },
};

function element(tag, properties = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(properties)) {
    if (name === 'className' || name === 'textContent' || name === 'type' || name === 'hidden') node[name] = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

/** A user's message: plain text, exactly as typed. */
export function userBubble(text) {
  return element('article', { className: 'message user', 'data-testid': 'message', 'data-role': 'user', 'aria-label': 'You said' },
    element('div', { className: 'bubble', textContent: text }));
}

/** A stored message of a conversation, as it was when it ended. */
export function storedMessage(message) {
  if (message.role !== 'assistant') return userBubble(message.content);
  const state = message.finish_reason === 'cancelled' ? 'stopped' : message.finish_reason === 'error' ? 'error' : 'done';
  const answer = element('div', { className: 'answer markdown', 'data-testid': 'answer' });
  renderMarkdownInto(answer, message.content);
  const article = element('article', {
    className: 'message assistant', 'data-testid': 'message', 'data-role': 'assistant', 'data-state': state, 'aria-label': 'Answer',
  }, element('div', { className: 'bubble' }, answer));
  if (message.request_id) article.dataset.requestId = message.request_id;
  const note = state === 'stopped' ? 'Stopped.' : state === 'error' ? 'This answer failed before it finished.'
    : message.finish_reason === 'length' ? 'Cut off at the length limit.' : '';
  if (note) article.querySelector('.bubble').append(element('p', { className: 'notice', textContent: note }));
  return article;
}

export class Turn {
  /**
   * host: the page, told of changes — changed(turn), admitted(turn), dispatch(turn) (send, creating the
   * conversation first if needed), keepInView(turn, update) (runs update, then scrolls if the reader was at
   * the bottom).
   */
  constructor(host, {
    message, conversationId = null, model = null, requestId = null, lastEventId = 0, text = '', state = 'queued', queued = null,
    sentAt = Date.now(),
  }) {
    this.host = host;
    this.message = message;
    this.conversationId = conversationId;
    this.model = model;
    this.requestId = null;
    this.lastEventId = lastEventId;
    this.text = text;
    this.queued = queued; // the latest `queued` event's data while waiting
    this.sentAt = sentAt;
    this.finished = false;
    this.stopRequested = false;
    this.stopSent = false;
    this.controller = new AbortController();
    this.frame = 0;

    this.userEl = message == null ? null : userBubble(message);
    this.noteEl = element('span', { className: 'note' });
    this.stopButton = element('button', { type: 'button', className: 'stop', 'data-testid': 'stop', textContent: 'Stop' });
    this.stopButton.addEventListener('click', () => this.stop());
    this.statusEl = element('div', { className: 'status' }, this.noteEl, this.stopButton);
    this.answerEl = element('div', { className: 'answer markdown', 'data-testid': 'answer' });
    this.noticeEl = element('p', { className: 'notice', hidden: true });
    // The answer first, then its status (queue place, Stop) where the next words will appear.
    this.bubble = element('div', { className: 'bubble' }, this.answerEl, this.statusEl, this.noticeEl);
    this.el = element('article', {
      className: 'message assistant', 'data-testid': 'message', 'data-role': 'assistant', 'aria-label': 'Answer',
    }, this.bubble);

    this.setState(TERMINAL.has(state) ? 'queued' : state);
    this.setRequestId(requestId);
    if (text) renderMarkdownInto(this.answerEl, text);
    if (queued && state === 'queued') this.showQueued(queued);
    else if (!requestId) this.setNote('Sending…');
  }

  get live() {
    return !this.finished;
  }

  // ----- Talking to the server ------------------------------------------------------------------------

  /**
   * Sends the message. Resolves once the server has admitted or refused it; the answer then streams into the
   * bubble on its own.
   */
  async send() {
    let response;
    try {
      response = await request('/chat/stream', {
        method: 'POST',
        body: { message: this.message, model: this.model || undefined, conversation_id: this.conversationId, reconnect_grace_ms: RECONNECT_GRACE_MS },
        signal: this.controller.signal,
      });
    } catch (error) {
      if (error.name !== 'AbortError') this.refuse(error);
      return;
    }

    this.setRequestId(response.headers.get('X-Request-Id'));
    this.host.admitted(this);
    this.follow(response);
  }

  /** Picks the request back up after a reload, from the last event this tab saw. */
  resume() {
    this.setNote(this.queued ? '' : 'Reconnecting…');
    return this.follow(null);
  }

  /** Reads events until the request ends, reconnecting (with backoff) whenever the connection drops. */
  async follow(response) {
    let attempt = 0;
    while (!this.finished && !this.controller.signal.aborted) {
      try {
        response ??= await request(`/queue/requests/${encodeURIComponent(this.requestId)}/events`, {
          headers: this.lastEventId > 0 ? { 'Last-Event-ID': String(this.lastEventId) } : {},
          signal: this.controller.signal,
        });
        this.connected();
        await readEventStream(response, (event) => {
          attempt = 0;
          this.receive(event);
        });
      } catch (error) {
        if (error.name === 'AbortError' || this.finished) return;
        if (error instanceof ApiError && error.status === 404) {
          await this.recover();
          return;
        }
        if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
          this.finish('error', { message: error.message });
          return;
        }
        // Anything else — the network, a restarting proxy, a 5xx — is worth another try.
      }

      response = null;
      if (this.finished) return;
      // The stream ended or broke before the request did: the server keeps it for us while we reconnect.
      this.setNote('Connection lost. Reconnecting…');
      await this.backoff(attempt++);
    }
  }

  /** The stream is (back) up: the note says what is happening now, not what went wrong before. */
  connected() {
    if (this.stopRequested) {
      this.setNote('Stopping…');
      if (!this.stopSent) this.sendStop();
    } else {
      this.setNote(this.state === 'running' && !this.text ? 'Running…' : '');
    }
  }

  backoff(attempt) {
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** attempt) * (0.75 + Math.random() * 0.5);
    return new Promise((resolve) => {
      const signal = this.controller.signal;
      const wake = () => {
        clearTimeout(timer);
        window.removeEventListener('online', wake);
        signal.removeEventListener('abort', wake);
        resolve();
      };
      const timer = setTimeout(wake, delay);
      window.addEventListener('online', wake); // the network is back: no need to wait out the delay
      signal.addEventListener('abort', wake);
    });
  }

  /**
   * The server no longer knows the request (it restarted, or we were away longer than it keeps ended ones).
   * A conversation keeps its answers, so the stored one is shown if there is one.
   */
  async recover() {
    if (this.conversationId) {
      try {
        const conversation = await json(`/conversations/${encodeURIComponent(this.conversationId)}`);
        const stored = conversation.messages.find((m) => m.role === 'assistant' && m.request_id === this.requestId);
        if (stored) {
          this.text = stored.content;
          const state = stored.finish_reason === 'cancelled' ? 'stopped' : stored.finish_reason === 'error' ? 'error' : 'done';
          this.finish(state, { finish_reason: stored.finish_reason, message: 'This answer failed before it finished.' });
          return;
        }
      } catch {
        // Fall through: say it is lost.
      }
    }

    this.finish('error', { message: 'The connection was lost, and Anteroom no longer has this answer.' });
  }

  receive({ event, id, data }) {
    if (this.finished) return;
    const eventId = Number(id);
    if (id !== null && Number.isFinite(eventId)) {
      if (eventId <= this.lastEventId) return; // already shown (a replay after reconnecting)
      this.lastEventId = eventId;
    }

    let body;
    try {
      body = JSON.parse(data);
    } catch {
      return;
    }

    if (body.request_id) this.setRequestId(body.request_id);
    switch (event) {
      case 'queued':
        this.showQueued(body);
        this.persist();
        break;
      case 'started':
        this.queued = null;
        this.queueEl?.remove();
        this.queueEl = null;
        this.setState('running');
        this.setNote(this.text ? '' : `Running on ${body.backend}…`);
        this.persist();
        break;
      case 'token':
        this.text += body.text;
        if (this.noteEl.textContent && !this.stopRequested) this.setNote('');
        this.scheduleRender();
        break;
      case 'done':
        this.finish('done', body);
        break;
      case 'error':
        this.finish('error', body);
        break;
      case 'cancelled':
        this.finish('stopped', body);
        break;
      default:
        break;
    }
  }

  // ----- Stopping -------------------------------------------------------------------------------------

  /** Stops the answer, queued or running; what was written so far stays. */
  stop() {
    if (this.finished || this.stopRequested) return;
    this.stopRequested = true;
    this.setNote('Stopping…');
    this.stopButton.setAttribute('aria-disabled', 'true');
    // Before the server has named the request there is nothing to cancel yet; setRequestId() sends it then.
    if (this.requestId) this.sendStop();
  }

  async sendStop() {
    this.stopSent = true;
    try {
      await request(`/queue/requests/${encodeURIComponent(this.requestId)}`, { method: 'DELETE' });
    } catch (error) {
      if (error.status === 0) {
        this.stopSent = false; // offline: follow() asks again once it reconnects
        return;
      }
      if (error.status === 404) this.finish('stopped', { reason: 'cancelled_by_user' });
      // 409: it had already ended, and its own ending event says how.
      return;
    }

    // The server has appended `cancelled` to the stream; if the stream is down, do not wait for it.
    this.stopTimer = setTimeout(() => this.finish('stopped', { reason: 'cancelled_by_user' }), STOP_CONFIRM_MS);
  }

  /** Stops a live answer for good and lets go of it (its conversation is being deleted, or the user leaves). */
  async discard() {
    const stopping = this.live && this.requestId ? request(`/queue/requests/${encodeURIComponent(this.requestId)}`, { method: 'DELETE' }) : null;
    this.detach();
    await stopping?.catch(() => {});
  }

  /** Stops following the request without cancelling it, and forgets it. */
  detach() {
    this.finished = true;
    this.controller.abort();
    cancelAnimationFrame(this.frame);
    clearTimeout(this.stopTimer);
    if (this.requestId) inflight.remove(this.requestId);
  }

  // ----- The bubble -----------------------------------------------------------------------------------

  setRequestId(id) {
    if (!id || this.requestId) return;
    this.requestId = id;
    this.el.dataset.requestId = id;
    this.persist();
    if (this.stopRequested && !this.stopSent) this.sendStop();
  }

  setState(state) {
    this.state = state;
    this.el.dataset.state = state;
    // While the answer streams, assistive technology waits for it rather than reading every few words.
    this.answerEl.setAttribute('aria-busy', String(!TERMINAL.has(state)));
  }

  setNote(text) {
    this.noteEl.textContent = text;
  }

  showQueued(data) {
    this.queued = { position: data.position, queue_length: data.queue_length, eta_ms: data.eta_ms };
    if (this.state !== 'queued') this.setState('queued');
    if (!this.queueEl) {
      this.queueEl = element('span', { className: 'queue-status', 'data-testid': 'queue-status' });
      this.noteEl.before(this.queueEl);
    }
    this.queueEl.textContent = queueStatus(this.queued);
    if (!this.stopRequested) this.setNote('');
  }

  /** Re-renders the growing answer at most once per frame, however fast tokens arrive. */
  scheduleRender() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render() {
    this.host.keepInView(this, () => renderMarkdownInto(this.answerEl, this.text));
    this.persist();
  }

  /** Ends the bubble in its final state: done, stopped or error. */
  finish(state, detail = {}) {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.stopTimer);
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.controller.abort();
    if (this.requestId) inflight.remove(this.requestId);

    this.host.keepInView(this, () => {
      renderMarkdownInto(this.answerEl, this.text);
      this.statusEl.remove();
      this.queueEl = null;
      const notice = this.noticeFor(state, detail);
      this.noticeEl.textContent = notice;
      this.noticeEl.hidden = !notice;
      if (state === 'done' && detail.timings) {
        this.bubble.append(element('p', { className: 'stats', 'data-testid': 'answer-stats', textContent: answerStats(detail.timings) }));
      }
      this.setState(state);
    });
    this.host.changed(this);
  }

  noticeFor(state, detail) {
    switch (state) {
      case 'done':
        return detail.finish_reason === 'length' ? 'Cut off at the length limit.' : '';
      case 'stopped': {
        const why = {
          cancelled_by_user: 'Stopped.',
          client_disconnected: 'Stopped: the connection was lost for too long.',
        }[detail.reason] ?? `Stopped (${String(detail.reason ?? 'no reason given').replaceAll('_', ' ')}).`;
        return this.text ? `${why} The answer so far is kept.` : why;
      }
      default:
        return [detail.message ?? 'The answer failed.', retryHint(detail.retry_after_ms)].filter(Boolean).join(' ');
    }
  }

  /** The server refused the message (or could not be reached): say why and when to try again, and offer to. */
  refuse(error) {
    this.finished = true;
    this.statusEl.remove();
    const reason = error.status === 0 ? error.message : `Not accepted: ${error.message}`;
    this.noticeEl.textContent = [reason, retryHint(error.retryAfterMs)].filter(Boolean).join(' ');
    this.noticeEl.hidden = false;
    this.noticeEl.classList.add('refusal');
    const retry = element('button', { type: 'button', className: 'retry', textContent: 'Send again' });
    retry.addEventListener('click', () => this.retry());
    this.retryButton = retry;
    this.bubble.append(retry);
    this.setState('refused');
    this.host.changed(this);
  }

  /** Sends a refused message again, in the same bubbles. */
  retry() {
    const hadFocus = document.activeElement === this.retryButton;
    this.retryButton.remove();
    this.noticeEl.hidden = true;
    this.noticeEl.classList.remove('refusal');
    this.finished = false;
    this.stopRequested = false;
    this.stopSent = false;
    this.controller = new AbortController();
    this.stopButton.removeAttribute('aria-disabled');
    this.answerEl.after(this.statusEl);
    this.setNote('Sending…');
    this.setState('queued');
    if (hadFocus) this.stopButton.focus();
    this.host.changed(this);
    this.host.dispatch(this);
  }

  /** Saves what a reload needs to resume this answer exactly where it is. */
  persist() {
    if (this.finished || !this.requestId) return;
    inflight.save({
      request_id: this.requestId,
      last_event_id: this.lastEventId,
      conversation_id: this.conversationId,
      text: this.text,
      message: this.message,
      model: this.model,
      state: this.state,
      queued: this.queued,
      sent_at: this.sentAt,
    });
  }
}
