// The live room page: signs in, connects, and keeps the views in step with
// the room's state. Rendering is batched: many events in a burst cost one
// redraw.

import { Actions } from './actions.js';
import { Announcer } from './announcer.js';
import * as auth from './auth.js';
import { ChatView } from './chat-view.js';
import { Connection } from './connection.js';
import { ControlsView } from './controls-view.js';
import { byId } from './dom.js';
import { sentence, shorten } from './format.js';
import { QuestionsView } from './questions-view.js';
import { ModerationView } from './reports-view.js';
import { PollsView } from './room-polls.js';
import { offerSignIn, roomsInfo } from './signin.js';
import { RoomState } from './state.js';
import { StatusView, muteMessage } from './status-view.js';

const slug = document.querySelector('main').dataset.room;
const state = new RoomState();
const status = new StatusView();
const chat = new ChatView({
  list: byId('messages'), pinnedList: byId('pinned-list'), pinnedSection: byId('pinned'),
  empty: byId('messages-empty'), scroller: byId('messages-scroll'),
});
const questions = new QuestionsView({
  stage: byId('stage-body'), queue: byId('questions'), queueEmpty: byId('questions-empty'),
  pending: byId('pending-list'), pendingSection: byId('pending'),
});
const controls = new ControlsView();
const moderation = new ModerationView();
const announcer = new Announcer(byId('announcer'));

let conn = null;
let actions = null;
let polls = null;
let credentials = null; // {token, shared} or {name}
let everOnline = false;
let drawPending = false;

function redraw() {
  if (drawPending) return;
  drawPending = true;
  setTimeout(draw, 0);
}

function draw() {
  drawPending = false;
  if (!state.me) return;
  const ctx = { state, errors: actions.errors, connected: conn.online };
  status.render(ctx, redraw);
  chat.render(ctx);
  questions.render(ctx);
  controls.render(ctx);
  polls.render();
  moderation.render(ctx);
}

// --- gates: who may come in, and how ----------------------------------------------

function show(section) {
  for (const id of ['join', 'signin-needed', 'room']) byId(id).hidden = id !== section;
  byId('jump').hidden = section !== 'room';
  status.skipTo(
    section === 'room' ? 'message' : section === 'join' ? 'guest-name' : null,
    section === 'room' ? 'Skip to the message box' : 'Skip to the join form',
  );
}

function gate(heading, text) {
  byId('signin-heading').textContent = heading;
  byId('signin-text').textContent = text;
  byId('room-state').textContent = '';
  show('signin-needed');
}

async function offerGuestJoin(problem = '') {
  let guests = true;
  // Unknown (null): offer the form; the server has the last word.
  const room = (await roomsInfo())?.rooms?.find((r) => r.id === slug);
  if (room) guests = room.settings.guests;
  if (!guests) {
    gate('Sign-in needed', `${problem}This session is for signed-in participants. Open the sign-in link you were sent by the organisers.`);
    return;
  }
  byId('room-state').textContent = '';
  byId('guest-name').value ||= auth.lastGuestName() || '';
  byId('guest-name-error').textContent = problem;
  show('join');
}

byId('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = byId('guest-name');
  const name = input.value.trim();
  const error = byId('guest-name-error');
  if (!name || Array.from(name).length > 50) {
    error.textContent = name ? 'Your name can be at most 50 characters.' : 'Enter your name to join.';
    input.setAttribute('aria-invalid', 'true');
    input.focus();
    return;
  }
  input.removeAttribute('aria-invalid');
  error.textContent = '';
  auth.rememberGuest(slug, name);
  connect({ name });
});

// --- the connection -----------------------------------------------------------------

function connect(how) {
  credentials = how;
  byId('room-state').textContent = 'Connecting…';
  conn = new Connection(slug, {
    credentials: () => {
      if (credentials.token) return { token: credentials.token };
      // A guest returns with the token its first welcome gave it: same id, same posts.
      return credentials.guestToken ? { token: credentials.guestToken } : { name: credentials.name };
    },
    onWelcome,
    onEvent,
    onStatus: (s, info) => {
      status.connection(s, { ...info, everOnline });
      if (state.me) redraw();
    },
    onFatal,
  });
  if (!actions) {
    actions = new Actions({ conn, state, controls, redraw });
    actions.wireComposers();
    actions.wireLists({ chat: byId('messages'), pinned: byId('pinned-list'), questions: byId('questions-panel') });
    actions.wireControls();
    polls = new PollsView({ conn, state, redraw });
  }
  actions.conn = conn;
  polls.conn = conn;
  conn.start();
}

function onWelcome(w) {
  const first = !state.me;
  if (w.me.token && !credentials.token) {
    credentials.guestToken = w.me.token;
    auth.rememberGuestToken(slug, w.me.token);
  }
  state.welcome(w);
  if (first) {
    show('room');
    if (credentials.name) byId('message').focus();
  }
  everOnline = true;
  redraw();
}

function onEvent(ev) {
  if (ev.t === 'error') {
    console.warn('livehub:', ev.code, ev.message);
    return;
  }
  const note = state.apply(ev);
  redraw();
  if (!note) return;
  const me = state.me;
  if (note.kind === 'msg' && note.msg.uid !== me.uid) announcer.message(note.msg.name, note.msg.text);
  else if (note.kind === 'stage') announcer.note(`On stage now: ${shorten(note.q.text)}`);
  else if (note.kind === 'poll') announcer.note(`New poll: ${shorten(note.poll.question)}`);
  else if (note.kind === 'pollstate') announcer.note(`Poll ${note.poll.state === 'open' ? 'reopened' : 'closed'}: ${shorten(note.poll.question)}`);
  else if (note.kind === 'room') announcer.note(`The room is now ${note.state}.`);
  else if (note.kind === 'unmuted') announcer.note('You can post again.');
  else if (note.kind === 'report' && me.role === 'moderator') announcer.note(`New report from ${note.report.name}.`);
  else if (note.kind === 'muted' && state.myMute) announcer.note(muteMessage(state.myMute));
}

function onFatal(kind, message) {
  status.connection('idle', {});
  const problem = message ? `${sentence(message)}. ` : '';
  if (kind === 'auth') {
    if (credentials.token) {
      auth.tokenRefused(slug, credentials);
      offerSignIn(true);
      offerGuestJoin(`Your sign-in link was not accepted here (${message || 'no reason given'}). `);
    } else if (credentials.guestToken) {
      // The guest token expired, or the room stopped admitting guests: try the name.
      auth.rememberGuestToken(slug, null);
      connect({ name: credentials.name });
    } else {
      auth.forgetGuest(slug);
      offerGuestJoin(problem);
    }
  } else if (kind === 'hello') {
    auth.forgetGuest(slug);
    offerGuestJoin(problem);
  } else if (kind === 'banned') {
    auth.forgetGuest(slug); // a reload should not quietly join again
    gate('You cannot take part in this session', 'A moderator has removed you from this session.');
  } else {
    gate('Session not found', 'This session no longer exists. See the programme for the others.');
  }
  state.me = null;
  state.outbox.clear();
}

byId('reconnect').addEventListener('click', () => conn?.retryNow());

const announce = byId('announce');
try {
  announce.checked = localStorage.getItem('livehub.announce') !== 'off';
} catch {
  // storage disabled: keep the default
}
announcer.enabled = announce.checked;
announce.addEventListener('change', () => {
  announcer.enabled = announce.checked;
  try {
    localStorage.setItem('livehub.announce', announce.checked ? 'on' : 'off');
  } catch {
    // not remembered
  }
});

// A sign-in link opened in this tab while the page is up only changes the
// fragment: keep the token, then start afresh with it.
window.addEventListener('hashchange', () => {
  if (new URLSearchParams(location.hash.slice(1)).has('token')) {
    auth.takeToken(slug);
    location.reload();
  }
});

// --- start ---------------------------------------------------------------------------

const token = auth.takeToken(slug);
const guest = auth.guestName(slug);
offerSignIn(!token);
if (token) connect(token);
else if (guest) connect({ name: guest, guestToken: auth.guestToken(slug) });
else offerGuestJoin();
