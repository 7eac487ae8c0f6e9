// One "Actions" menu button per post or question, for a busy room: the same
// plain words (Pin, Delete, Ban, Mute...) as menu items behind one button,
// following the WAI-ARIA menu button pattern. Enter, Space or Down opens it
// on the first item (Up: the last); Up, Down, Home and End move; Escape closes
// it and returns to the button; Tab closes it and moves on. Items keep their
// data-action, so the lists' delegated click handlers run them as before.

import { h, hidden } from './dom.js';

/** A menu item: visible `word`, `context` for screen readers ("Pin post by Ann"). */
export function menuItem(word, context, data, { after = '', variant = '' } = {}) {
  const key = `item:${data.action}${data.seconds ?? ''}:${data.mid || data.qid || data.uid || ''}`;
  return h('button', {
    type: 'button', role: 'menuitem', tabindex: '-1',
    class: `actions-menu__item ${variant}`.trim(), dataset: { ...data, key },
  }, word, context ? hidden(` ${context}`) : null, after);
}

/** Mute for 5 minutes, for 1 hour, until lifted, and Unmute, as menu items. */
export function muteItems(uid, name, extra = {}) {
  return [
    menuItem('Mute', name, { action: 'mute', uid, name, seconds: '300', ...extra }, { after: ' for 5 minutes' }),
    menuItem('Mute', name, { action: 'mute', uid, name, seconds: '3600', ...extra }, { after: ' for 1 hour' }),
    menuItem('Mute', name, { action: 'mute', uid, name, seconds: '', ...extra }, { after: ' until lifted' }),
    menuItem('Unmute', name, { action: 'unmute', uid, name }),
  ];
}

/** The "Actions" button and its menu; `id` must be unique and stable across redraws. */
export function actionsMenu(id, context, items) {
  const kept = items.flat().filter(Boolean);
  if (!kept.length) return null;
  const menuId = `actions-${id}`;
  return h('div', { class: 'actions-menu' },
    h('button', {
      type: 'button', class: 'button button--small actions-menu__button', id: `${menuId}-button`,
      'aria-haspopup': 'menu', 'aria-expanded': 'false', 'aria-controls': menuId,
      dataset: { key: `menu:${id}` },
    }, 'Actions', hidden(` for ${context}`)),
    h('div', { id: menuId, role: 'menu', class: 'actions-menu__items', 'aria-labelledby': `${menuId}-button`, hidden: true },
      kept));
}

function items(menu) {
  return [...menu.querySelectorAll('[role="menuitem"]')];
}

function open(button, where = 'first') {
  closeAll(button);
  const menu = document.getElementById(button.getAttribute('aria-controls'));
  if (!menu) return;
  menu.hidden = false;
  button.setAttribute('aria-expanded', 'true');
  const list = items(menu);
  const item = where === 'last' ? list[list.length - 1] : list[0];
  if (item) item.focus();
}

function close(button, { focus = true } = {}) {
  const menu = document.getElementById(button.getAttribute('aria-controls'));
  if (menu) menu.hidden = true;
  button.setAttribute('aria-expanded', 'false');
  if (focus && button.isConnected) button.focus();
}

function closeAll(except = null) {
  for (const b of document.querySelectorAll('.actions-menu__button[aria-expanded="true"]')) {
    if (b !== except) close(b, { focus: false });
  }
}

function buttonOf(menu) {
  return document.getElementById(`${menu.id}-button`);
}

document.addEventListener('click', (e) => {
  const button = e.target.closest?.('.actions-menu__button');
  if (button) {
    if (button.getAttribute('aria-expanded') === 'true') close(button);
    else open(button);
    return;
  }
  const item = e.target.closest?.('[role="menuitem"]');
  const menu = item?.closest('[role="menu"]');
  if (menu) {
    // The list's own handler has run the action (this listener is further up).
    const owner = buttonOf(menu);
    if (owner) close(owner);
    return;
  }
  closeAll();
});

document.addEventListener('keydown', (e) => {
  const button = e.target.closest?.('.actions-menu__button');
  if (button && (e.key === 'ArrowDown' || e.key === 'ArrowUp')) {
    e.preventDefault();
    open(button, e.key === 'ArrowUp' ? 'last' : 'first');
    return;
  }
  const menu = e.target.closest?.('[role="menu"]');
  if (!menu) return;
  const list = items(menu);
  const at = list.indexOf(document.activeElement);
  const move = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: list.length - 1 }[e.key];
  if (move !== undefined) {
    e.preventDefault();
    list[(move + list.length) % list.length].focus();
  } else if (e.key === 'Escape') {
    e.preventDefault();
    const owner = buttonOf(menu);
    if (owner) close(owner);
  } else if (e.key === 'Tab') {
    const owner = buttonOf(menu);
    if (owner) {
      close(owner, { focus: false });
      owner.focus(); // Tab then moves on from the button, as from a closed menu
    }
  }
});
