// The read-only live views: /present/{room} (a projector or a stream: the
// question on stage in the largest type, the next questions by votes, the
// open poll with live bars) and /embed/{room} (the same, smaller, with the
// latest messages, for an <iframe> on a council's site). Both join as a
// watcher (`hello` with `watch: true`): no controls, not counted online.

import { takeToken, tokenRefused } from './auth.js';
import { Connection } from './connection.js';
import { byId, fill, h } from './dom.js';
import { plural } from './format.js';
import { byline } from './parts.js';
import { pollResults, pollState } from './polls-view.js';
import { RoomState } from './state.js';

const main = document.querySelector('main');
const slug = main.dataset.room;
const mode = main.dataset.mode; // 'present' or 'embed'
const NEXT = mode === 'present' ? 5 : 10;
const MESSAGES = 30;
const state = new RoomState();
let signIn = takeToken(slug);
let drawPending = false;
let status = 'Connecting…';

function redraw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(draw);
}

function asker(q) {
  if (q.anonymous && !q.uid) return h('p', { class: 'byline' }, 'Asked anonymously');
  return byline({ ...q, ts: undefined }, { prefix: 'Asked by ' });
}

function stage(q) {
  if (!q) return h('p', { class: 'empty' }, 'No question is on stage.');
  return h('div', { class: 'live__stage-body' },
    h('p', { class: 'live__stage-text' }, h('bdi', {}, q.text)),
    asker(q),
    q.answers.map((a) => h('div', { class: 'live__answer' },
      h('p', { class: 'live__answer-text' }, h('bdi', {}, a.text)),
      byline({ ...a, ts: undefined }, { prefix: 'Answer from ' }))));
}

function queued(q) {
  return h('li', { class: 'live__question' },
    h('p', { class: 'live__question-text' }, h('bdi', {}, q.text)),
    h('p', { class: 'live__votes' }, plural(q.votes, 'vote')));
}

function poll(p) {
  return [h('p', { class: 'live__poll-question' }, h('bdi', {}, p.question)), pollState(p), pollResults(p)];
}

function message(m) {
  return h('li', { class: 'post' }, byline(m), h('p', { class: 'post__text' }, m.text));
}

function draw() {
  drawPending = false;
  const closed = state.room?.state === 'closed';
  byId('live-status').textContent = closed ? `${status} This room is closed.` : status;
  fill(byId('live-stage'), stage(state.stage));
  const next = state.queue.slice(0, NEXT);
  fill(byId('live-queue'), next.map(queued));
  byId('live-queue-empty').hidden = next.length > 0;
  const current = state.currentPoll;
  byId('live-poll-section').hidden = !current;
  fill(byId('live-poll'), current ? poll(current) : null);
  const chat = byId('live-chat');
  if (chat) {
    const latest = [...state.messages.values()].slice(-MESSAGES);
    fill(chat, latest.map(message));
    byId('live-chat-empty').hidden = latest.length > 0;
  }
}

function connect() {
  const conn = new Connection(slug, {
    credentials: () => (signIn ? { token: signIn.token, watch: true } : { watch: true }),
    onWelcome: (w) => {
      state.welcome(w);
      redraw();
    },
    onEvent: (ev) => {
      state.apply(ev);
      redraw();
    },
    onStatus: (s) => {
      status = s === 'online' ? 'Live.' : s === 'offline' ? 'Reconnecting…' : 'Connecting…';
      redraw();
    },
    onFatal: (kind) => {
      if (kind === 'auth' && signIn) {
        // A sign-in link from elsewhere that is not valid here: watch without it.
        tokenRefused(slug, signIn);
        signIn = null;
        connect();
        return;
      }
      status = kind === 'auth'
        ? 'This session is for signed-in people: open this page with a sign-in link.'
        : kind === 'not_found' ? 'There is no such session.' : 'This view cannot join the session.';
      byId('live-status').textContent = status;
    },
  });
  conn.start();
}

connect();
