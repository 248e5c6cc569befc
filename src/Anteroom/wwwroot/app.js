// One file over the usual length for now: the sidebar, the key form, the model picker and the composer all read and
// write the page's one state (the signed-in caller, the open conversation, the answers in flight) held below; the
// pieces with no such state already live apart (turn.js, markdown.js, sse.js, api.js, format.js).
// Anteroom's chat page: who you are, your conversations, and answers that wait their turn in the queue.
// Plain ES modules, no build step. Model text is only ever written as text (see markdown.js).

import { json, onUnauthorized, request } from './api.js';
import { Turn, inflight, storedMessage, userBubble } from './turn.js';

const $ = (id) => document.getElementById(id);
const ui = {
  toggle: $('sidebar-toggle'),
  modelPicker: $('model-picker'),
  model: $('model'),
  badge: $('user-badge'),
  signOut: $('sign-out'),
  banner: $('simulator-banner'),
  layout: $('layout'),
  list: $('conversation-list'),
  listEmpty: $('conversations-empty'),
  newChat: $('new-conversation'),
  title: $('chat-title'),
  scroller: $('scroller'),
  emptyState: $('empty-state'),
  messages: $('messages'),
  composer: $('composer'),
  input: $('composer-input'),
  signIn: $('sign-in'),
  keyForm: $('key-form'),
  keyInput: $('key-input'),
  keyError: $('key-error'),
  keySubmit: $('key-submit'),
  keyForget: $('key-forget'),
  unreachable: $('unreachable'),
  unreachableMessage: $('unreachable-message'),
  unreachableRetry: $('unreachable-retry'),
  toast: $('toast'),
};

const VIEW_KEY = 'anteroom.conversation'; // sessionStorage: the conversation this tab shows
const MODEL_KEY = 'anteroom.model'; // localStorage: the model last picked
const narrow = window.matchMedia('(max-width: 700px)');

const app = {
  session: null,
  identity: 0, // bumped when the page forgets everything (sign-in, sign-out): late answers for before are dropped
  conversations: [], // as the server lists them, newest first
  current: null, // the conversation on screen; null for a new chat not yet sent
  view: 0, // bumped on every change of view, so answers for a view already left are dropped
  creating: null, // the new chat's conversation while it is being created, shared by quick successive sends
  sending: new Map(), // conversation id → the latest send's admission, which the next send waits for
  turns: [], // every exchange this page has sent or picked up, oldest first
  editing: null, // the conversation whose title is being edited; the list is not redrawn under it
};

function storage(kind) {
  return {
    get(key) {
      try {
        return window[kind].getItem(key);
      } catch {
        return null;
      }
    },
    set(key, value) {
      try {
        if (value == null) window[kind].removeItem(key);
        else window[kind].setItem(key, value);
      } catch {
        // Storage disabled: only conveniences are lost.
      }
    },
  };
}
const session = storage('sessionStorage');
const local = storage('localStorage');

// ---------------------------------------------------------------------------------------------------------
// What turns ask of the page

const host = {
  changed(turn) {
    markBusyConversations();
    // An ended answer moves its conversation up; a refused first message still gave it its title.
    if (turn.finished && turn.conversationId) refreshConversations();
  },
  admitted(turn) {
    // The server titles a new conversation from its first message and moves it to the top.
    if (turn.conversationId) refreshConversations();
  },
  dispatch(turn) {
    dispatch(turn);
  },
  /** Runs update; if the reader was at the bottom of this turn's conversation, keeps them there. */
  keepInView(turn, update) {
    const visible = ui.messages.contains(turn.el);
    const atBottom = visible && ui.scroller.scrollHeight - ui.scroller.scrollTop - ui.scroller.clientHeight < 80;
    update();
    if (atBottom) scrollToBottom();
  },
};

function scrollToBottom() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
}

// ---------------------------------------------------------------------------------------------------------
// Signing in and out

onUnauthorized((error) => {
  // Keys mode, and the key is missing, wrong, expired or revoked: everything stops until a key is given.
  if (!ui.signIn.hidden) {
    ui.keyError.textContent = error.message;
    return;
  }
  forgetEverything();
  showSignIn(error.message);
});

async function boot() {
  ui.unreachable.hidden = true;
  try {
    app.session = await json('/session');
  } catch (error) {
    showUnreachable(error.message);
    return;
  }

  if (app.session.mode === 'keys' && !app.session.signed_in) {
    showSignIn(problemText(app.session.problem));
    return;
  }

  await enter();
}

function problemText(code) {
  switch (code) {
    case null:
    case undefined:
    case 'missing_api_key':
      return '';
    case 'revoked_api_key':
      return 'The key this browser had was revoked. Ask the operator for a new one.';
    case 'expired_api_key':
      return 'The key this browser had has expired. Ask the operator for a new one.';
    default:
      return 'The key this browser had is no longer accepted. Enter it again, or a new one.';
  }
}

function showSignIn(message) {
  ui.layout.hidden = true;
  ui.modelPicker.hidden = true;
  ui.badge.hidden = true;
  ui.signOut.hidden = true;
  ui.banner.hidden = true;
  ui.toggle.hidden = true;
  ui.unreachable.hidden = true;
  ui.signIn.hidden = false;
  ui.keyError.textContent = message ?? '';
  // In open mode a key is optional: a broken key cookie can simply be dropped.
  ui.keyForget.hidden = app.session?.mode !== 'open';
  ui.keyInput.focus();
}

function showUnreachable(message) {
  ui.layout.hidden = true;
  ui.signIn.hidden = true;
  ui.unreachable.hidden = false;
  ui.unreachableMessage.textContent = message;
  ui.unreachableRetry.focus();
}

ui.unreachableRetry.addEventListener('click', boot);

ui.keyForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const key = ui.keyInput.value.trim();
  if (!key) {
    ui.keyError.textContent = 'Paste your key first; it starts with “ant_”.';
    ui.keyInput.focus();
    return;
  }

  ui.keySubmit.disabled = true;
  ui.keyError.textContent = '';
  try {
    // The server keeps the key in an HttpOnly cookie; the page never stores it.
    app.session = await json('/session', { method: 'POST', body: { key } });
  } catch (error) {
    ui.keyError.textContent = error.message;
    ui.keyInput.select();
    return;
  } finally {
    ui.keySubmit.disabled = false;
  }

  ui.keyInput.value = '';
  forgetEverything();
  await enter();
  ui.input.focus();
});

ui.keyForget.addEventListener('click', signOut);
ui.signOut.addEventListener('click', signOut);

async function signOut() {
  // Answers still running belong to the identity being left: stop them rather than leave them running unseen.
  await Promise.all(app.turns.map((turn) => turn.discard()));
  try {
    await request('/session', { method: 'DELETE' });
  } catch (error) {
    showToast(`Could not sign out: ${error.message}`);
    return;
  }

  forgetEverything();
  session.set(VIEW_KEY, null);
  await boot();
}

/** Drops this page's state: a different identity sees different conversations and requests. */
function forgetEverything() {
  for (const turn of app.turns) turn.detach();
  app.turns = [];
  inflight.clear();
  app.conversations = [];
  app.current = null;
  app.creating = null;
  app.sending.clear();
  app.editing = null;
  app.view++;
  app.identity++;
  ui.list.replaceChildren();
  ui.messages.replaceChildren();
}

async function enter() {
  ui.signIn.hidden = true;
  ui.unreachable.hidden = true;
  showBadge(app.session);

  let models;
  let list;
  try {
    [models, list] = await Promise.all([json('/models'), json('/conversations')]);
  } catch (error) {
    if (error.status !== 401) showUnreachable(error.message); // a 401 has already brought up the key form
    return;
  }

  fillModels(models);
  ui.banner.hidden = !models.simulated;
  ui.layout.hidden = false;
  ui.toggle.hidden = false;
  app.conversations = list.conversations;
  renderConversationList();
  resumeInflight();

  const saved = session.get(VIEW_KEY);
  if (saved && app.conversations.some((c) => c.id === saved)) await openConversation(saved);
  else showNewChat({ focus: true });
}

function showBadge(who) {
  const parts = [who.user ?? 'anonymous', who.tier].filter(Boolean);
  if (who.admin) parts.push('admin');
  ui.badge.textContent = parts.join(' · ');
  ui.badge.title = who.signed_in ? `Signed in as ${who.user}, tier ${who.tier}` : `Using this browser’s session, tier ${who.tier}`;
  ui.badge.hidden = false;
  ui.signOut.hidden = !who.signed_in;
}

function fillModels({ models, default_model: fallback }) {
  const saved = local.get(MODEL_KEY);
  const options = models.map((name) => {
    const option = document.createElement('option');
    option.value = name;
    option.textContent = name;
    return option;
  });
  if (options.length === 0) {
    const option = document.createElement('option');
    option.value = '';
    option.textContent = 'Server default';
    options.push(option);
  }
  ui.model.replaceChildren(...options);
  ui.model.value = models.includes(saved) ? saved : models.includes(fallback) ? fallback : (models[0] ?? '');
  ui.modelPicker.hidden = false;
}

ui.model.addEventListener('change', () => local.set(MODEL_KEY, ui.model.value));

// ---------------------------------------------------------------------------------------------------------
// Conversations in the sidebar

let refreshing = null;
let refreshAgain = false;

/** Reloads the list (titles and order change as people chat); overlapping calls are merged. */
function refreshConversations() {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }

  const identity = app.identity;
  refreshing = (async () => {
    do {
      refreshAgain = false;
      try {
        const { conversations } = await json('/conversations');
        if (identity !== app.identity) return;
        app.conversations = conversations;
      } catch {
        return; // the list stays as it was; the next change refreshes it again
      }
    } while (refreshAgain);
    renderConversationList();
    const current = app.conversations.find((c) => c.id === app.current);
    if (current) setTitle(current.title);
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

function renderConversationList() {
  if (app.editing) return; // redrawn when the edit ends

  // Redrawing must not lose the keyboard user's place.
  const focused = document.activeElement;
  const focusedItem = ui.list.contains(focused) ? focused.closest('[data-conversation-id]')?.dataset.conversationId : null;
  const focusedRole = focusedItem ? focused.dataset.testid ?? 'open' : null;

  ui.list.replaceChildren(...app.conversations.map(conversationItem));
  ui.listEmpty.hidden = app.conversations.length > 0;
  markBusyConversations();

  if (focusedItem) focusInItem(focusedItem, focusedRole);
}

function focusInItem(id, role) {
  const item = ui.list.querySelector(`[data-conversation-id="${CSS.escape(id)}"]`);
  const target = item?.querySelector(role === 'open' ? '.open' : `[data-testid="${role}"]`);
  target?.focus();
}

const ICONS = {
  rename: 'M4 20h4L19 9l-4-4L4 16v4zM14 6l4 4',
  delete: 'M5 7h14M10 7V4h4v3M7 7l1 13h8l1-13M10 11v6M14 11v6',
};

function iconButton(testid, label, icon) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'icon-button';
  button.dataset.testid = testid;
  button.setAttribute('aria-label', label);
  button.title = label;
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '16');
  svg.setAttribute('height', '16');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', icon);
  svg.append(path);
  button.append(svg);
  return button;
}

function conversationItem(conversation) {
  const item = document.createElement('li');
  item.className = 'conversation';
  item.dataset.testid = 'conversation';
  item.dataset.conversationId = conversation.id;

  const open = document.createElement('button');
  open.type = 'button';
  open.className = 'open';
  open.textContent = conversation.title;
  if (conversation.id === app.current) open.setAttribute('aria-current', 'page');
  open.addEventListener('click', () => {
    if (narrow.matches) setSidebar(false);
    openConversation(conversation.id, { focus: true });
  });

  const rename = iconButton('rename-conversation', `Rename “${conversation.title}”`, ICONS.rename);
  rename.addEventListener('click', () => startRename(item, conversation));
  const remove = iconButton('delete-conversation', `Delete “${conversation.title}”`, ICONS.delete);
  remove.addEventListener('click', () => deleteConversation(conversation));

  item.append(open, rename, remove);
  return item;
}

/** A dot on conversations with an answer still on its way. */
function markBusyConversations() {
  const busy = new Set(app.turns.filter((t) => t.live && t.conversationId).map((t) => t.conversationId));
  for (const item of ui.list.children) item.classList.toggle('busy', busy.has(item.dataset.conversationId));
}

function markCurrentConversation() {
  for (const item of ui.list.children) {
    const open = item.querySelector('.open');
    if (item.dataset.conversationId === app.current) open.setAttribute('aria-current', 'page');
    else open.removeAttribute('aria-current');
  }
}

function startRename(item, conversation) {
  app.editing = conversation.id;
  const open = item.querySelector('.open');
  const input = document.createElement('input');
  input.type = 'text';
  input.className = 'rename-input';
  input.value = conversation.title;
  input.maxLength = 200;
  input.setAttribute('aria-label', 'Conversation title');
  open.hidden = true;
  open.after(input);
  input.focus();
  input.select();

  let ended = false;
  const end = async (save) => {
    if (ended) return;
    ended = true;
    const title = input.value.trim();
    if (save && title && title !== conversation.title) {
      try {
        const renamed = await json(`/conversations/${encodeURIComponent(conversation.id)}`, { method: 'PATCH', body: { title } });
        app.conversations = app.conversations.map((c) => (c.id === renamed.id ? renamed : c));
        if (renamed.id === app.current) setTitle(renamed.title);
      } catch (error) {
        showToast(`Could not rename: ${error.message}`);
      }
    }
    const refocus = document.activeElement === input || document.activeElement === document.body;
    app.editing = null;
    renderConversationList();
    if (refocus) focusInItem(conversation.id, 'rename-conversation');
  };

  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      end(true);
    } else if (event.key === 'Escape') {
      event.preventDefault();
      event.stopPropagation(); // Escape here cancels the edit, it does not stop an answer
      end(false);
    }
  });
  input.addEventListener('blur', () => end(true));
}

async function deleteConversation(conversation) {
  const index = app.conversations.findIndex((c) => c.id === conversation.id);
  // Its answers still on their way would have nowhere to be kept: stop them first.
  const turns = app.turns.filter((t) => t.conversationId === conversation.id);
  await Promise.all(turns.map((turn) => turn.discard()));
  app.turns = app.turns.filter((t) => t.conversationId !== conversation.id);

  try {
    await request(`/conversations/${encodeURIComponent(conversation.id)}`, { method: 'DELETE' });
  } catch (error) {
    if (error.status !== 404) {
      showToast(`Could not delete: ${error.message}`);
      return;
    }
  }

  app.conversations = app.conversations.filter((c) => c.id !== conversation.id);
  renderConversationList();
  showToast(`Deleted “${conversation.title}”.`);
  if (app.current === conversation.id) showNewChat({ focus: false });

  // Keep the keyboard where the deleted item was: on the next one, else the previous, else New chat.
  const next = app.conversations[Math.min(index, app.conversations.length - 1)];
  if (next) focusInItem(next.id, 'open');
  else ui.newChat.focus();
}

// ---------------------------------------------------------------------------------------------------------
// The conversation on screen

function setView(id) {
  app.current = id;
  app.creating = null;
  app.view++;
  session.set(VIEW_KEY, id);
  markCurrentConversation();
  return app.view;
}

function setTitle(title) {
  ui.title.textContent = title;
  document.title = `${title} · Anteroom`;
}

function showEmptyState() {
  ui.emptyState.hidden = ui.messages.childElementCount > 0;
}

function showNewChat({ focus }) {
  setView(null);
  setTitle('New chat');
  ui.messages.replaceChildren();
  showEmptyState();
  if (focus) ui.input.focus();
}

ui.newChat.addEventListener('click', () => {
  if (narrow.matches) setSidebar(false);
  showNewChat({ focus: true });
});

async function openConversation(id, { focus = false } = {}) {
  const view = setView(id);
  const known = app.conversations.find((c) => c.id === id);
  setTitle(known?.title ?? 'Conversation');
  ui.messages.replaceChildren();
  ui.emptyState.hidden = true;
  ui.messages.setAttribute('aria-busy', 'true');

  let detail;
  try {
    detail = await json(`/conversations/${encodeURIComponent(id)}`);
  } catch (error) {
    if (view !== app.view) return;
    ui.messages.removeAttribute('aria-busy');
    if (error.status === 404) {
      app.conversations = app.conversations.filter((c) => c.id !== id);
      renderConversationList();
      showNewChat({ focus });
      showToast('That conversation no longer exists.');
    } else if (error.status !== 401) {
      showToast(`Could not open the conversation: ${error.message}`);
    }
    return;
  }

  if (view !== app.view) return;
  setTitle(detail.title);
  const unanswered = renderConversation(detail);
  ui.messages.removeAttribute('aria-busy');
  scrollToBottom();
  if (focus) ui.input.focus();
  await adoptLiveAnswers(detail, unanswered, view);
}

/**
 * Shows a conversation's stored messages. Each answer goes right under its question (the server stores an
 * answer when it ends, so with several in flight the stored order interleaves them), and this page's own
 * turns stand in for the stored exchange (they carry live state and timings); turns with nothing stored yet
 * come last. A question without a stored answer gets a note; the notes are returned by request id, because an
 * answer found to be still live afterwards takes its note's place.
 */
function renderConversation(detail) {
  const turns = app.turns.filter((t) => t.conversationId === detail.id);
  const turnOf = new Map(turns.filter((t) => t.requestId).map((t) => [t.requestId, t]));
  const questions = new Set(detail.messages.filter((m) => m.role === 'user' && m.request_id).map((m) => m.request_id));
  const answerOf = new Map(detail.messages.filter((m) => m.role === 'assistant' && m.request_id).map((m) => [m.request_id, m]));
  const placed = new Set();
  const unanswered = new Map();
  const nodes = [];
  for (const message of detail.messages) {
    const id = message.request_id;
    if (message.role === 'assistant' && questions.has(id)) continue; // shown under its question
    const turn = id ? turnOf.get(id) : null;
    if (turn) {
      placed.add(turn);
      const question = turn.userEl ?? (message.role === 'user' ? userBubble(message.content) : null);
      nodes.push(...[question, turn.el].filter(Boolean));
      continue;
    }

    nodes.push(storedMessage(message));
    if (message.role !== 'user' || !id) continue;
    if (answerOf.has(id)) {
      nodes.push(storedMessage(answerOf.get(id)));
    } else {
      // The server keeps an answer only once it has text: this one was stopped or failed before that.
      const note = document.createElement('p');
      note.className = 'no-answer';
      note.textContent = 'No answer was kept: it was stopped or failed before it began.';
      unanswered.set(id, note);
      nodes.push(note);
    }
  }
  for (const turn of turns) {
    if (!placed.has(turn)) nodes.push(...[turn.userEl, turn.el].filter(Boolean));
  }

  ui.messages.replaceChildren(...nodes);
  showEmptyState();
  return unanswered;
}

/**
 * Follows this conversation's requests that are still live but that this page does not know: sent from
 * another tab, or by this one just before a reload that lost them. They replay from their first event.
 */
async function adoptLiveAnswers(detail, unanswered, view) {
  // A send whose request id has not come back yet may be one of them: leave it to that send.
  if (app.turns.some((t) => t.conversationId === detail.id && t.live && !t.requestId)) return;

  let requests;
  try {
    ({ requests } = await json('/queue/requests'));
  } catch {
    return;
  }

  if (view !== app.view) return;
  for (const live of requests) {
    if (live.conversation_id !== detail.id || (live.state !== 'waiting' && live.state !== 'running')) continue;
    if (app.turns.some((t) => t.requestId === live.request_id)) continue;

    const turn = new Turn(host, {
      message: null, conversationId: detail.id, model: live.model, requestId: live.request_id, state: live.state === 'running' ? 'running' : 'queued',
    });
    app.turns.push(turn);
    const note = unanswered.get(live.request_id);
    if (note) note.replaceWith(turn.el);
    else ui.messages.append(turn.el);
    showEmptyState();
    turn.resume();
  }
  markBusyConversations();
}

/** Picks up, after a reload, every answer this tab was following. */
function resumeInflight() {
  const records = Object.values(inflight.all()).sort((a, b) => (a.sent_at ?? 0) - (b.sent_at ?? 0));
  for (const record of records) {
    const turn = new Turn(host, {
      message: record.message,
      conversationId: record.conversation_id,
      model: record.model,
      requestId: record.request_id,
      lastEventId: record.last_event_id ?? 0,
      text: record.text ?? '',
      state: record.state,
      queued: record.queued,
      sentAt: record.sent_at,
    });
    app.turns.push(turn);
    turn.resume();
  }
  markBusyConversations();
}

// Keep the latest of every live answer for the next page, whatever made this one go.
window.addEventListener('pagehide', () => {
  for (const turn of app.turns) turn.persist();
});

// ---------------------------------------------------------------------------------------------------------
// Sending

function send() {
  const message = ui.input.value;
  if (!message.trim()) return;
  ui.input.value = '';
  fitComposer();

  const turn = new Turn(host, { message, conversationId: app.current, model: ui.model.value || null });
  app.turns.push(turn);
  ui.messages.append(turn.userEl, turn.el);
  showEmptyState();
  scrollToBottom();
  markBusyConversations();
  dispatch(turn); // not awaited: the composer stays free while answers stream
}

/**
 * Sends a turn, first creating the conversation when it starts a new chat. Sends to one conversation go one
 * after another, each once the previous one is admitted (which takes milliseconds): messages typed quickly
 * then reach the server, the queue and the conversation's history in the order they were written.
 */
async function dispatch(turn) {
  if (!turn.conversationId) {
    try {
      turn.conversationId = await conversationForNewChat();
    } catch (error) {
      turn.refuse(error);
      return;
    }
    markBusyConversations();
  }

  const id = turn.conversationId;
  const sent = (app.sending.get(id) ?? Promise.resolve()).then(() => turn.send());
  app.sending.set(id, sent);
  await sent;
  if (app.sending.get(id) === sent) app.sending.delete(id);
}

function conversationForNewChat() {
  if (app.creating) return app.creating;

  const view = app.view;
  const creating = json('/conversations', { method: 'POST' }).then(
    (conversation) => {
      app.conversations = [conversation, ...app.conversations.filter((c) => c.id !== conversation.id)];
      if (app.view === view) {
        app.current = conversation.id;
        session.set(VIEW_KEY, conversation.id);
      }
      renderConversationList();
      return conversation.id;
    },
    (error) => {
      if (app.creating === creating) app.creating = null;
      throw error;
    });
  app.creating = creating;
  return creating;
}

ui.composer.addEventListener('submit', (event) => {
  event.preventDefault();
  send();
  ui.input.focus();
});

ui.input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
});

/** The message box grows with its text, up to a limit, then scrolls. */
function fitComposer() {
  ui.input.style.height = 'auto';
  ui.input.style.height = `${Math.min(ui.input.scrollHeight + 2, window.innerHeight * 0.4)}px`;
}

ui.input.addEventListener('input', fitComposer);

// Escape stops the latest answer still on its way in the conversation on screen.
document.addEventListener('keydown', (event) => {
  if (event.key !== 'Escape' || event.defaultPrevented || event.isComposing) return;
  if (narrow.matches && document.body.classList.contains('sidebar-open')) {
    setSidebar(false);
    ui.toggle.focus();
    return;
  }

  // The latest is the lowest on screen (turns picked up after a reload are not in the order they were sent).
  const live = new Map(app.turns.filter((t) => t.live && !t.stopRequested).map((t) => [t.el, t]));
  const latest = [...ui.messages.children].reverse().map((node) => live.get(node)).find(Boolean);
  if (latest) {
    event.preventDefault();
    latest.stop();
    showToast('Stopping the latest answer.');
  }
});

// ---------------------------------------------------------------------------------------------------------
// Small screens: the sidebar slides over the chat, behind a toggle

function setSidebar(open) {
  document.body.classList.toggle('sidebar-open', open);
  ui.toggle.setAttribute('aria-expanded', String(open));
}

ui.toggle.addEventListener('click', () => {
  const open = !document.body.classList.contains('sidebar-open');
  setSidebar(open);
  if (open) (ui.list.querySelector('[aria-current]') ?? ui.newChat).focus();
});

narrow.addEventListener('change', () => setSidebar(false));
$('backdrop').addEventListener('click', () => setSidebar(false));

// ---------------------------------------------------------------------------------------------------------

let toastTimer = 0;

function showToast(message) {
  ui.toast.textContent = message;
  ui.toast.classList.add('shown');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    ui.toast.classList.remove('shown');
    ui.toast.textContent = '';
  }, 4000);
}

boot();
