// "Sign in" with the organisation's account, offered where the server has
// sign-in configured (/api/rooms says `sign_in: true`). The link leads to
// /auth/login, which comes back to this room with #token=... (auth.js takes it).

import { byId } from './dom.js';

/** /api/rooms (the guest gate reads it too), or null when it cannot be read. */
export function roomsInfo() {
  return fetch('/api/rooms', { headers: { Accept: 'application/json' } })
    .then((response) => (response.ok ? response.json() : null))
    .catch(() => null);
}

/** Show or hide the "Sign in" offer: shown to whoever is not signed in with a token. */
export async function offerSignIn(wanted) {
  const offer = byId('signin-offer');
  const info = wanted ? await roomsInfo() : null;
  offer.hidden = !(info && info.sign_in === true);
}
