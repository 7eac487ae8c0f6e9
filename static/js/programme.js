// The programme page: sessions by day from /api/rooms, each with its time,
// speakers, open or closed state and how many people are in it now. The
// counts refresh in place, so nothing moves under a reader or their focus.

import { byId, fill, h } from './dom.js';
import { plural, programmeDay, programmeDayKey, programmeTime } from './format.js';

const REFRESH_MS = 15_000;
const list = byId('programme');
const statusLine = byId('programme-status');
let shownRooms = '';

function when(room) {
  if (!room.starts) return null;
  const starts = new Date(room.starts);
  const parts = [h('time', { datetime: room.starts }, programmeTime(starts))];
  if (room.ends) parts.push(' to ', h('time', { datetime: room.ends }, programmeTime(new Date(room.ends))));
  return h('p', { class: 'session__time' }, ...parts);
}

function liveState(room) {
  const open = room.state === 'open';
  const now = Date.now();
  const onNow = room.starts && room.ends && new Date(room.starts) <= now && now < new Date(room.ends);
  return [
    h('span', { class: `badge badge--${open ? 'open' : 'closed'}` }, open ? 'Open' : 'Closed'),
    onNow ? h('span', { class: 'badge badge--now' }, 'On now') : null,
    h('span', { class: 'session__online' }, `${plural(room.online, 'person', 'people')} online`),
    open ? null : h('a', { class: 'session__record', href: `/record/${encodeURIComponent(room.id)}` },
      'Read the record', h('span', { class: 'visually-hidden' }, ` of ${room.title}`)),
  ];
}

/** "With Cllr A (Eastmere District Council); Dr B": each name and badge isolated. */
function speakers(room) {
  const parts = [];
  room.speakers.forEach((name, i) => {
    if (i) parts.push('; ');
    parts.push(h('bdi', {}, name));
    const badge = (room.affiliations || [])[i];
    if (badge) parts.push(' ', h('span', { class: 'affiliation' }, h('bdi', {}, badge)));
  });
  return h('p', { class: 'session__speakers' }, 'With ', parts);
}

function session(room) {
  return h('li', { class: 'session', dataset: { room: room.id } },
    h('h3', { class: 'session__title' }, h('a', { href: `/room/${encodeURIComponent(room.id)}` }, room.title)),
    when(room),
    room.speakers.length ? speakers(room) : null,
    room.description ? h('p', { class: 'session__description' }, room.description) : null,
    h('p', { class: 'session__live' }, liveState(room)));
}

/** Sessions grouped by UK calendar day, in time order; those without a time last. */
function byDay(rooms) {
  const days = new Map();
  const sorted = [...rooms].sort((a, b) => (a.starts && b.starts ? new Date(a.starts) - new Date(b.starts) : a.starts ? -1 : b.starts ? 1 : 0));
  for (const room of sorted) {
    const key = room.starts ? programmeDayKey(new Date(room.starts)) : 'later';
    if (!days.has(key)) days.set(key, { label: room.starts ? programmeDay(new Date(room.starts)) : 'Other sessions', rooms: [] });
    days.get(key).rooms.push(room);
  }
  return [...days.values()];
}

function render(rooms) {
  fill(list, byDay(rooms).map((day, i) => h('section', { class: 'day', 'aria-labelledby': `day-${i}` },
    h('h2', { id: `day-${i}` }, day.label),
    h('ol', { class: 'sessions' }, day.rooms.map(session)))));
}

function update(rooms) {
  for (const room of rooms) {
    const el = list.querySelector(`[data-room="${CSS.escape(room.id)}"] .session__live`);
    if (el) fill(el, liveState(room));
  }
}

async function load() {
  try {
    const response = await fetch('/api/rooms', { headers: { Accept: 'application/json' } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const { rooms } = await response.json();
    // Re-render only when the programme itself changed; otherwise update the live parts.
    const shape = JSON.stringify(rooms.map((r) => [r.id, r.title, r.starts, r.ends, r.speakers, r.affiliations, r.description]));
    if (shape !== shownRooms) {
      shownRooms = shape;
      render(rooms);
    } else {
      update(rooms);
    }
    statusLine.textContent = rooms.length ? '' : 'There are no sessions in the programme yet.';
  } catch {
    if (!shownRooms) statusLine.textContent = 'The programme could not be loaded. Trying again…';
  }
}

load();
setInterval(() => {
  if (document.visibilityState === 'visible') load();
}, REFRESH_MS);
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') load();
});
