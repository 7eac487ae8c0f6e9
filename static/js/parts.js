// View pieces shared by the chat and the questions: who wrote something, and
// the labelled action buttons. Buttons carry data-action and ids; the views
// listen once on their list (event delegation) rather than on every button.

import { h, hidden } from './dom.js';
import { clock } from './format.js';

const ROLE_LABEL = { moderator: 'Moderator', speaker: 'Speaker' };

/** "Name [Speaker] [Guest] 14:05": guests are always marked, so nobody passes for a councillor. */
export function byline(item, { prefix = '', muted = false } = {}) {
  return h('p', { class: 'byline' },
    prefix,
    // <bdi>: a name in another script, or one that tries bidirectional tricks, cannot
    // reorder the words around it.
    h('bdi', { class: 'byline__name' }, item.name),
    item.affiliation && !item.guest ? affiliation(item.affiliation) : null,
    ROLE_LABEL[item.role] ? h('span', { class: `badge badge--${item.role}` }, ROLE_LABEL[item.role]) : null,
    item.guest ? h('span', { class: 'badge badge--guest' }, 'Guest') : null,
    muted ? h('span', { class: 'badge badge--muted' }, 'Muted') : null,
    typeof item.ts === 'number'
      ? h('time', { class: 'byline__time', datetime: new Date(item.ts).toISOString() }, clock(item.ts))
      : null);
}

/** A signed-in person's affiliation ("Eastmere District Council"), isolated from the name. */
export function affiliation(text) {
  return h('span', { class: 'affiliation' }, h('bdi', {}, text));
}

/** A button whose visible word is the action and whose context is for screen readers. */
export function action(word, context, data, { variant = '', pressed, describedby } = {}) {
  const key = `${data.action}:${data.mid || data.qid || data.uid || data.rid || ''}`;
  return h('button', {
    type: 'button',
    class: `button button--small ${variant}`.trim(),
    dataset: { ...data, key },
    'aria-pressed': pressed === undefined ? null : String(pressed),
    'aria-describedby': describedby,
  }, word, context ? hidden(` ${context}`) : null);
}

/**
 * "Mute" opens the three durations and Unmute for one person. Unmute is
 * always offered: after a reload this page cannot know who is muted.
 */
export function muteMenu(uid, name, scope, extra = {}) {
  const key = `${scope}:${uid}`;
  const item = (before, words, after, data) => h('button', {
    type: 'button', class: 'button button--small', dataset: { ...data, key: `${data.action}${data.seconds ?? ''}:${key}` },
  }, before ? hidden(before) : null, words, after ? hidden(after) : null);
  return h('details', { class: 'menu', dataset: { key: `mute-menu:${key}` } },
    h('summary', { class: 'button button--small', dataset: { key: `mute-summary:${key}` } },
      'Mute', hidden(` ${name}`)),
    h('div', { class: 'menu__items' },
      item(`Mute ${name} for `, '5 minutes', '', { action: 'mute', uid, name, seconds: '300', ...extra }),
      item(`Mute ${name} for `, '1 hour', '', { action: 'mute', uid, name, seconds: '3600', ...extra }),
      item(`Mute ${name} `, 'until lifted', '', { action: 'mute', uid, name, seconds: '', ...extra }),
      item('', 'Unmute', ` ${name}`, { action: 'unmute', uid, name }),
    ));
}

export function errorLine(text) {
  return text ? h('p', { class: 'error', role: 'alert' }, text) : null;
}

/** Delegate clicks on [data-action] buttons inside `root` to handlers[action](dataset, button). */
export function delegate(root, handlers) {
  root.addEventListener('click', (e) => {
    const button = e.target.closest('button[data-action]');
    if (!button || !root.contains(button)) return;
    const run = handlers[button.dataset.action];
    if (run) run(button.dataset, button);
  });
}
