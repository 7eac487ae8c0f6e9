// The moderators' room controls: open or close the room, slow mode, pre-
// moderation, guests, and the people muted while this page was open.

import { byId, h, reconcile } from './dom.js';
import { clock } from './format.js';
import { action, errorLine } from './parts.js';

export class ControlsView {
  constructor() {
    this.section = byId('controls');
    this.stateText = byId('controls-state');
    this.toggle = byId('toggle-room');
    this.form = byId('settings-form');
    this.slow = byId('slow-mode');
    this.premoderate = byId('premoderate');
    this.guests = byId('guests');
    this.mutedList = byId('muted-list');
    this.mutedEmpty = byId('muted-empty');
    this.bannedList = byId('banned-list');
    this.bannedEmpty = byId('banned-empty');
    this.shown = null; // the settings last put in the form
  }

  render(ctx) {
    const { state } = ctx;
    const moderator = state.me.role === 'moderator';
    this.section.hidden = !moderator;
    byId('jump-controls').hidden = !moderator;
    if (!moderator) return;
    const open = state.room.state === 'open';
    this.stateText.textContent = open ? 'open' : 'closed';
    this.toggle.textContent = open ? 'Close the room' : 'Open the room';
    this.toggle.dataset.state = open ? 'closed' : 'open';
    // Only server changes overwrite the form, so a moderator's unsaved edit survives an event.
    const settings = JSON.stringify(state.room.settings);
    if (settings !== this.shown) {
      this.shown = settings;
      const { slow_mode: slow, premoderate, guests } = state.room.settings;
      if (![...this.slow.options].some((o) => o.value === String(slow))) {
        this.slow.append(h('option', { value: String(slow) }, `${slow} seconds`));
      }
      this.slow.value = String(slow);
      this.premoderate.checked = premoderate;
      this.guests.checked = guests;
    }
    const muted = [...state.mutes.entries()].filter(([uid]) => state.isMuted(uid));
    this.mutedEmpty.hidden = muted.length > 0;
    reconcile(this.mutedList, muted, {
      key: ([uid]) => uid,
      sig: ([uid, m]) => JSON.stringify([m.until, m.name, ctx.errors.get(`mute:${uid}`)]),
      build: ([uid, m]) => h('li', {},
        h('bdi', {}, m.name ?? 'someone'), `, muted ${m.until === null ? 'until lifted' : `until ${clock(m.until)}`} `,
        action('Unmute', m.name, { action: 'unmute', uid, name: m.name, scope: 'controls' }),
        errorLine(ctx.errors.get(`mute:${uid}`))),
    });
    const banned = [...state.bans.entries()];
    this.bannedEmpty.hidden = banned.length > 0;
    reconcile(this.bannedList, banned, {
      key: ([uid]) => uid,
      sig: ([uid, name]) => JSON.stringify([name, ctx.errors.get(`ban:${uid}`)]),
      build: ([uid, name]) => h('li', {}, h('bdi', {}, name ?? 'someone'), ' ',
        action('Unban', name, { action: 'unban', uid, name }),
        errorLine(ctx.errors.get(`ban:${uid}`))),
    });
  }

  settingsFrame() {
    return {
      t: 'settings',
      slow_mode: Number(this.slow.value),
      premoderate: this.premoderate.checked,
      guests: this.guests.checked,
    };
  }
}

/** Ask before banning: a <dialog> (focus is kept inside it; Escape cancels). */
export function confirmBan(name) {
  const dialog = byId('ban-dialog');
  byId('ban-text').textContent = `${name} will be disconnected from this session and cannot rejoin it.`;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ban'), { once: true });
  });
}
