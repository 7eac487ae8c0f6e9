// The parts of the room page around the chat and questions: who you are,
// the room's state and online count, notices (closed, muted), what the
// composers allow, and the connection banner.

import { byId } from './dom.js';
import { clock, plural } from './format.js';

const ROLE_NAME = { participant: 'participant', speaker: 'speaker', moderator: 'moderator' };

export function muteMessage(mute) {
  return mute.until === null
    ? 'You are muted until a moderator lifts it. You can still read and vote.'
    : `You are muted until ${clock(mute.until)}. You can still read and vote.`;
}

export class StatusView {
  constructor() {
    this.el = Object.fromEntries([
      'room-state', 'online', 'me', 'closed-notice', 'mute-notice', 'message', 'send', 'question',
      'ask-form', 'slow-hint', 'premod-hint', 'connection', 'connection-text', 'reconnect', 'skip-link',
    ].map((id) => [id, byId(id)]));
    this.muteTimer = null;
    this.calmTimer = null;
  }

  render(ctx, redraw) {
    const { state } = ctx;
    const { room, me } = state;
    const e = this.el;
    const open = room.state === 'open';
    e['room-state'].textContent = open ? 'Open' : 'Closed';
    e['room-state'].className = `badge badge--${open ? 'open' : 'closed'}`;
    e.online.textContent = `${plural(state.online, 'person', 'people')} online.`;
    const badge = me.affiliation && !me.guest ? ` (${me.affiliation})` : me.guest ? ' (guest)' : '';
    e.me.textContent = `You are ${me.name}${badge}, ${ROLE_NAME[me.role] || me.role}.`;

    const moderator = me.role === 'moderator';
    e['closed-notice'].hidden = open;
    const mayPost = open || moderator;
    e.message.disabled = !mayPost;
    e.send.disabled = !mayPost;
    e.question.disabled = !open;
    for (const control of e['ask-form'].querySelectorAll('input, button')) control.disabled = !open;

    const participant = me.role === 'participant';
    const { slow_mode: slow, premoderate } = room.settings;
    e['slow-hint'].textContent = participant && slow > 0
      ? ` Slow mode is on: you can send one message every ${plural(slow, 'second')}.` : '';
    e['premod-hint'].textContent = participant && premoderate
      ? ' A moderator checks each question before everyone sees it.' : '';
    this.renderMute(state, redraw);
  }

  renderMute(state, redraw) {
    clearTimeout(this.muteTimer);
    const mute = state.myMute;
    const notice = this.el['mute-notice'];
    if (!mute) {
      notice.textContent = '';
      notice.hidden = true;
      return;
    }
    notice.hidden = false;
    notice.textContent = muteMessage(mute);
    if (mute.until !== null) {
      // Lift the notice when the mute runs out; setTimeout tops out near 24.8 days.
      this.muteTimer = setTimeout(redraw, Math.min(mute.until - Date.now() + 500, 2 ** 31 - 1));
    }
  }

  /**
   * The connection banner. Its text stays the same across retries, so a
   * screen reader hears "offline" once, not at every attempt.
   */
  connection(status, { everOnline }) {
    const e = this.el;
    clearTimeout(this.calmTimer);
    let text = '';
    let state = 'idle';
    if (status === 'offline' || (status === 'connecting' && everOnline)) {
      state = 'offline';
      text = 'You are offline. Reconnecting automatically: messages you send now will go when you are back.';
    } else if (status === 'online' && everOnline && e.connection.dataset.state === 'offline') {
      state = 'back';
      text = 'You are back online.';
      this.calmTimer = setTimeout(() => this.connection('idle', {}), 4000);
    }
    if (e['connection-text'].textContent !== text) e['connection-text'].textContent = text;
    e.connection.dataset.state = state;
    e.reconnect.hidden = state !== 'offline';
  }

  /** The skip link goes to whatever the person can use first. */
  skipTo(id, words) {
    const link = this.el['skip-link'];
    link.hidden = !id;
    if (id) {
      link.href = `#${id}`;
      link.textContent = words;
    }
  }
}
