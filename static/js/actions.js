// What people do in the room, turned into requests. Errors are shown next to
// the control that caused them: in the composer's error line, or on the post
// or question acted on.

import { byId, fill } from './dom.js';
import { sentence } from './format.js';
import { replyLabel } from './chat-view.js';
import { confirmBan } from './controls-view.js';
import { delegate } from './parts.js';
import { askReport } from './reports-view.js';

const ERROR_SHOWN_MS = 10_000;

export class Actions {
  constructor({ conn, state, controls, redraw }) {
    Object.assign(this, { conn, state, controls, redraw });
    this.errors = new Map(); // mid/qid -> message, shown on that post or question
    this.replyTo = null;
  }

  // --- errors ------------------------------------------------------------------

  itemError(key, err) {
    this.noteMute(err);
    this.errors.set(key, sentence(err.message) || 'That did not work. Please try again.');
    setTimeout(() => {
      this.errors.delete(key);
      this.redraw();
    }, ERROR_SHOWN_MS);
    this.redraw();
  }

  lineError(id, err) {
    this.noteMute(err);
    byId(id).textContent = err ? sentence(err.message) || 'That did not work. Please try again.' : '';
  }

  /** A `muted` refusal tells us of a mute we may have missed (say, before a reload). */
  noteMute(err) {
    if (err?.code !== 'muted' || !this.state.me) return;
    const when = /until (\d{12,})/.exec(err.message || '');
    this.state.mutes.set(this.state.me.uid, { until: when ? Number(when[1]) : null, name: this.state.me.name });
    err.message = 'You are muted, so this was not sent.';
  }

  /** Send a request whose failure belongs to a post or question. */
  act(frame, key) {
    this.errors.delete(key);
    return this.conn.request(frame).catch((err) => {
      this.itemError(key, err);
      throw err;
    });
  }

  // --- composers ---------------------------------------------------------------

  wireComposers() {
    const message = byId('message');
    const question = byId('question');
    submitOnEnter(message);
    submitOnEnter(question);
    byId('post-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.post(message);
    });
    byId('ask-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.ask(question, byId('anonymous'));
    });
    byId('cancel-reply').addEventListener('click', () => {
      this.setReply(null);
      message.focus();
    });
  }

  post(box) {
    const text = box.value;
    if (!text.trim()) {
      this.lineError('message-error', { message: 'Write a message first.' });
      box.focus();
      return;
    }
    this.lineError('message-error', null);
    const frame = { t: 'post', text, id: this.conn.nextId() };
    const reply = this.replyTo;
    if (reply) frame.reply_to = reply.mid;
    this.state.outbox.set(frame.id, { id: frame.id, text, reply_to: frame.reply_to, replyName: reply?.name, mid: null });
    box.value = '';
    this.setReply(null);
    this.redraw();
    byId('message-status').textContent = '';
    this.conn.request(frame).then((ok) => {
      this.state.acknowledged(frame.id, ok.mid);
      if (ok.held) {
        this.state.outbox.delete(frame.id);
        byId('message-status').textContent = 'Your message is waiting for a moderator to approve it.';
      }
      this.redraw();
    }, (err) => {
      this.state.outbox.delete(frame.id);
      if (!box.value) box.value = text; // nothing typed is lost
      if (reply && this.state.messages.has(reply.mid)) this.setReply(reply);
      this.lineError('message-error', err);
      this.redraw();
    });
  }

  ask(box, anonymous) {
    const text = box.value;
    const status = byId('question-status');
    if (!text.trim()) {
      this.lineError('question-error', { message: 'Write your question first.' });
      box.focus();
      return;
    }
    this.lineError('question-error', null);
    box.value = '';
    status.textContent = this.conn.online ? 'Sending your question…' : 'Your question will be sent when you are back online.';
    this.conn.request({ t: 'ask', text, anonymous: anonymous.checked }).then(() => {
      const waits = this.state.room.settings.premoderate && this.state.me.role === 'participant';
      status.textContent = waits ? 'Thank you. Your question will appear once a moderator approves it.' : '';
      anonymous.checked = false;
    }, (err) => {
      status.textContent = '';
      if (!box.value) box.value = text;
      this.lineError('question-error', err);
      this.redraw();
    });
  }

  setReply(msg) {
    this.replyTo = msg;
    const line = byId('replying');
    line.hidden = !msg;
    fill(byId('replying-text'), msg ? replyLabel(msg) : []);
  }

  // --- posts and questions ------------------------------------------------------

  wireLists({ chat, pinned, questions }) {
    const s = this.state;
    const postHandlers = {
      reply: ({ mid }) => {
        const msg = s.messages.get(mid);
        if (!msg) return;
        this.setReply(msg);
        byId('message').focus();
      },
      pin: ({ mid, scope }) => this.act({ t: 'pin', mid }, scope === 'pinned' ? `pin:${mid}` : mid),
      unpin: ({ mid, scope }) => this.act({ t: 'unpin', mid }, scope === 'pinned' ? `pin:${mid}` : mid),
      delete: ({ mid }) => this.act({ t: 'del', mid }, mid),
      react: ({ mid, emoji }) => this.react(mid, emoji),
      report: ({ mid, about }) => this.report({ mid }, about, mid),
      ...this.peopleHandlers(),
    };
    delegate(chat, postHandlers);
    delegate(pinned, postHandlers);
    delegate(questions, {
      vote: ({ qid }) => this.vote(qid),
      approve: ({ qid }) => this.act({ t: 'qstate', qid, state: 'open' }, qid),
      stage: ({ qid }) => this.act({ t: 'qstate', qid, state: 'answering' }, qid),
      answered: ({ qid }) => this.act({ t: 'qstate', qid, state: 'answered' }, qid),
      dismiss: ({ qid }) => this.act({ t: 'qstate', qid, state: 'dismissed' }, qid),
      'delete-q': ({ qid }) => this.act({ t: 'del', qid }, qid),
      report: ({ qid, about }) => this.report({ qid }, about, qid),
      ...this.peopleHandlers(),
    });
    questions.addEventListener('submit', (e) => {
      const form = e.target.closest('form[data-action="answer"]');
      if (!form) return;
      e.preventDefault();
      this.answer(form);
    });
  }

  /** Mute, unmute and ban: the same on posts, questions and the controls panel. */
  peopleHandlers() {
    const key = (d) => d.mid || d.qid || `mute:${d.uid}`;
    return {
      mute: (d, button) => {
        // Through an anonymous question, by the question: the room is not told who it was.
        const frame = d.anon ? { t: 'mute', qid: d.qid } : { t: 'mute', uid: d.uid };
        if (d.seconds) frame.seconds = Number(d.seconds);
        this.act(frame, key(d)).then(() => closeMenu(button), () => {});
      },
      unmute: (d, button) => this.act({ t: 'unmute', uid: d.uid }, key(d)).then(() => {
        this.state.mutes.delete(d.uid);
        closeMenu(button);
        this.redraw();
      }, () => {}),
      ban: async (d) => {
        const frame = d.anon ? { t: 'ban', qid: d.qid } : { t: 'ban', uid: d.uid };
        if (await confirmBan(d.name)) this.act(frame, key(d)).catch(() => {});
      },
    };
  }

  vote(qid) {
    const s = this.state;
    const up = !s.myVotes.has(qid);
    // Show the press at once; the count follows from the server.
    if (up) s.myVotes.add(qid);
    else s.myVotes.delete(qid);
    this.redraw();
    this.act({ t: 'vote', qid, up }, qid).then((ok) => {
      const q = s.questions.get(qid);
      if (q && typeof ok.votes === 'number') q.votes = ok.votes;
      this.redraw();
    }, () => {
      if (up) s.myVotes.delete(qid);
      else s.myVotes.add(qid);
      this.redraw();
    });
  }

  react(mid, emoji) {
    const key = `${mid} ${emoji}`;
    const on = !this.state.myReactions.has(key);
    if (on) this.state.myReactions.add(key);
    else this.state.myReactions.delete(key);
    this.redraw();
    this.act({ t: 'react', mid, emoji, on }, mid).catch(() => {
      if (on) this.state.myReactions.delete(key);
      else this.state.myReactions.add(key);
      this.redraw();
    });
  }

  async report(item, about, key) {
    const answer = await askReport(about === 'question' ? 'a question' : `a ${about}`);
    if (!answer) return;
    this.act({ t: 'report', ...item, ...answer }, key).then(() => {
      byId('report-status').textContent = 'Thank you. The moderators have your report.';
    }, () => {});
  }

  answer(form) {
    const box = form.querySelector('textarea');
    const { qid } = form.dataset;
    if (!box.value.trim()) {
      this.itemError(qid, { message: 'Write an answer first.' });
      return;
    }
    const text = box.value;
    this.act({ t: 'answer', qid, text }, qid).then(() => {
      box.value = '';
      closeMenu(form);
    }, () => {});
  }

  // --- moderators' controls -----------------------------------------------------

  wireControls() {
    byId('settings-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.lineError('controls-error', null);
      this.conn.request(this.controls.settingsFrame()).catch((err) => this.lineError('controls-error', err));
    });
    byId('toggle-room').addEventListener('click', (e) => {
      this.lineError('controls-error', null);
      this.conn.request({ t: 'settings', state: e.currentTarget.dataset.state })
        .catch((err) => this.lineError('controls-error', err));
    });
    delegate(byId('muted-list'), this.peopleHandlers());
    delegate(byId('moderation'), {
      resolve: ({ rid }) => this.act({ t: 'resolve', rid }, `report:${rid}`).catch(() => {}),
      release: ({ mid }) => this.act({ t: 'release', mid }, `held:${mid}`).catch(() => {}),
      'delete-held': ({ mid }) => this.act({ t: 'del', mid }, `held:${mid}`).catch(() => {}),
    });
    delegate(byId('banned-list'), {
      unban: ({ uid }) => this.act({ t: 'unban', uid }, `ban:${uid}`).catch(() => {}),
    });
  }
}

function submitOnEnter(box) {
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      box.form.requestSubmit();
    }
  });
}

/** Close the menu a control sat in, found again by key: the post may have been redrawn. */
function closeMenu(inside) {
  const key = inside?.closest?.('details')?.dataset.key;
  const menu = key && document.querySelector(`details[data-key="${CSS.escape(key)}"]`);
  if (!menu || !menu.open) return;
  const hadFocus = menu.contains(document.activeElement);
  menu.open = false;
  if (hadFocus) menu.querySelector('summary').focus();
}
