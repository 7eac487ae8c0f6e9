// Sign-in: a token link (/room/slug#token=...) or a guest name.
//
// The token lives in the fragment, which browsers never send to the server,
// so it stays out of access logs; we move it to sessionStorage at once (a
// reload still works, a new tab or a closed browser forgets it) and take it
// out of the address bar so it is not bookmarked, shared or screenshotted.
// It is only ever sent inside the `hello` frame.

const LAST_TOKEN = 'livehub.token'; // the latest link opened: also tried in other rooms
const roomKey = (kind, room) => `livehub.${kind}.${room}`;

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: sign-in lasts until reload
  }
}

function read(key) {
  try {
    return storage()?.getItem(key) || null;
  } catch {
    return null;
  }
}

function write(key, value) {
  try {
    if (value === null) storage()?.removeItem(key);
    else storage()?.setItem(key, value);
  } catch {
    // quota or privacy mode: nothing to do
  }
}

/** The token to sign in with, if any: {token, fromLink} or null. */
export function takeToken(room) {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const fromLink = fragment.get('token');
  if (fromLink) {
    write(roomKey('token', room), fromLink);
    write(LAST_TOKEN, fromLink);
    fragment.delete('token');
    const rest = fragment.toString();
    history.replaceState(history.state, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`);
    return { token: fromLink, shared: false };
  }
  const own = read(roomKey('token', room));
  if (own) return { token: own, shared: false };
  const last = read(LAST_TOKEN);
  if (last && read(roomKey('refused', room)) !== last) return { token: last, shared: true };
  return null;
}

/** The token was refused here: forget it for this room (a shared one stays for others). */
export function tokenRefused(room, { token, shared }) {
  if (shared) write(roomKey('refused', room), token);
  else {
    write(roomKey('token', room), null);
    if (read(LAST_TOKEN) === token) write(LAST_TOKEN, null);
  }
}

export const guestName = (room) => read(roomKey('guest', room));
export const lastGuestName = () => read('livehub.guest');

export function rememberGuest(room, name) {
  write(roomKey('guest', room), name);
  write('livehub.guest', name);
}

/** The signed guest token the server handed out, so a reconnect is the same guest. */
export const guestToken = (room) => read(roomKey('guest-token', room));

export function rememberGuestToken(room, token) {
  write(roomKey('guest-token', room), token);
}

export function forgetGuest(room) {
  write(roomKey('guest', room), null);
  write(roomKey('guest-token', room), null);
}
