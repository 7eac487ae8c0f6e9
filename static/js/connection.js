// One room's WebSocket, speaking livehub's wire protocol (JSON subprotocol).
//
// It signs in with `hello`, reads coalesced frames line by line, matches
// `ok`/`error` answers to requests by id, and reconnects by itself with
// exponential backoff and jitter, resuming with `since` + `epoch` so no event
// is missed. Posts and questions not yet acknowledged are re-sent with the
// same id after a reconnect: the server treats the id as an idempotency key,
// so nothing is published twice.

const SUBPROTOCOL = 'livehub.v1.json';
const RESENDABLE = new Set(['post', 'ask']);
const FATAL_CLOSES = { 4401: 'auth', 4403: 'banned', 4404: 'not_found' };
const HEARTBEAT_MS = 25_000; // an application ping finds dead links (sleeping laptops, lost Wi-Fi)
const ANSWER_WAIT_MS = 10_000; // no answer to a handshake, hello or ping in this long: the link is dead

function randomHex(bytes) {
  const a = new Uint8Array(bytes);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class OfflineError extends Error {
  constructor() {
    super('You are offline, so this was not sent. Try again when you are back online.');
    this.code = 'offline';
  }
}

export class Connection {
  /**
   * @param {string} room the room slug
   * @param {object} o
   * @param {() => object} o.credentials `{token}` or `{name}` for hello
   * @param {(welcome: object) => void} o.onWelcome
   * @param {(event: object) => void} o.onEvent every other server frame
   * @param {(status: string, info: object) => void} o.onStatus connecting, online, offline
   * @param {(kind: string, message: string) => void} o.onFatal auth, banned, not_found, hello
   */
  constructor(room, { credentials, onWelcome, onEvent, onStatus, onFatal, baseDelay = 500, maxDelay = 20_000 }) {
    Object.assign(this, { room, credentials, onWelcome, onEvent, onStatus, onFatal, baseDelay, maxDelay });
    this.since = null;
    this.epoch = null;
    this.ws = null;
    this.joined = false;
    this.stopped = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.watchdog = null;
    this.heartbeat = null;
    this.helloError = null;
    this.requests = new Map(); // id -> {frame, resolve, reject}
    // Ids are idempotency keys for 10 minutes: unique per page load, not just per socket.
    this.prefix = randomHex(6);
    this.counter = 0;
    this.onOnline = () => this.retryNow();
    this.onVisible = () => { if (document.visibilityState === 'visible') this.ping(); };
  }

  start() {
    window.addEventListener('online', this.onOnline);
    document.addEventListener('visibilitychange', this.onVisible);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    window.removeEventListener('online', this.onOnline);
    document.removeEventListener('visibilitychange', this.onVisible);
    const ws = this.ws;
    this.detach();
    if (ws) ws.close(1000);
  }

  get online() {
    return this.joined && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Send a request; resolves with its `ok` frame, rejects with its `error`
   * frame (or an OfflineError). Posts and questions wait out a disconnection
   * and are re-sent; anything else is refused at once while offline.
   */
  request(frame) {
    const id = frame.id || this.nextId();
    const full = { ...frame, id };
    return new Promise((resolve, reject) => {
      if (!this.online && !RESENDABLE.has(frame.t)) {
        reject(new OfflineError());
        return;
      }
      this.requests.set(id, { frame: full, resolve, reject });
      if (this.online) this.send(full);
    });
  }

  nextId() {
    this.counter += 1;
    return `${this.prefix}-${this.counter}`;
  }

  /** Reconnect now rather than at the next scheduled attempt. */
  retryNow() {
    if (!this.stopped && !this.ws) this.connect();
  }

  // --- the socket ------------------------------------------------------------

  url() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/ws/${encodeURIComponent(this.room)}`;
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.joined = false;
    this.helloError = null;
    this.onStatus('connecting', { attempt: this.attempt });
    let ws;
    try {
      ws = new WebSocket(this.url(), [SUBPROTOCOL]);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    this.expectAnswerWithin(ANSWER_WAIT_MS); // a handshake can hang too
    ws.onopen = () => {
      const hello = { t: 'hello', id: `${this.prefix}-hello`, ...this.credentials() };
      if (this.since !== null) {
        hello.since = this.since;
        if (this.epoch) hello.epoch = this.epoch;
      }
      this.send(hello);
      this.expectAnswerWithin(ANSWER_WAIT_MS);
    };
    ws.onmessage = (e) => this.receive(e.data);
    ws.onclose = (e) => this.closed(e.code);
  }

  send(frame) {
    this.ws.send(JSON.stringify(frame));
  }

  /** Stop listening to the current socket (it may take long to close by itself). */
  detach() {
    clearTimeout(this.watchdog);
    clearInterval(this.heartbeat);
    if (this.ws) {
      this.ws.onopen = this.ws.onmessage = this.ws.onclose = null;
    }
    this.ws = null;
    this.joined = false;
  }

  drop() {
    const ws = this.ws;
    this.closed(1006);
    if (ws) ws.close();
  }

  closed(code) {
    this.detach();
    // What was sent may or may not have arrived. Posts and questions are
    // re-sent with their ids after the next welcome; the rest cannot be
    // retried blindly (a vote or a pin might flip back), so they fail now.
    for (const [id, r] of this.requests) {
      if (!RESENDABLE.has(r.frame.t)) {
        this.requests.delete(id);
        r.reject(new OfflineError());
      }
    }
    if (this.stopped) return;
    const fatal = FATAL_CLOSES[code];
    if (fatal) {
      this.stopped = true;
      this.onFatal(fatal, this.helloError?.message || '');
      return;
    }
    this.scheduleRetry();
  }

  scheduleRetry() {
    // Exponential backoff with jitter: half the ceiling plus a random half, so
    // a room full of clients does not come back in one wave after a restart.
    const ceiling = Math.min(this.maxDelay, this.baseDelay * 2 ** this.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt += 1;
    this.onStatus('offline', { retryAt: Date.now() + delay });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  // --- frames ----------------------------------------------------------------

  receive(data) {
    if (typeof data !== 'string') return; // we only speak the JSON subprotocol
    // Several events may share one frame, one JSON object per line.
    for (const line of data.split('\n')) {
      if (!line.trim()) continue;
      let frame;
      try {
        frame = JSON.parse(line);
      } catch {
        continue;
      }
      if (frame && typeof frame.t === 'string') this.handle(frame);
      if (!this.ws) return; // a handler stopped the connection
    }
  }

  handle(frame) {
    clearTimeout(this.watchdog);
    if (frame.t === 'welcome') {
      this.welcomed(frame);
      return;
    }
    if ((frame.t === 'ok' || frame.t === 'error') && typeof frame.id === 'string') {
      if (frame.id === `${this.prefix}-hello`) {
        this.helloRefused(frame);
        return;
      }
      const r = this.requests.get(frame.id);
      if (r) {
        this.requests.delete(frame.id);
        if (frame.t === 'ok') r.resolve(frame);
        else r.reject(frame);
      }
      return;
    }
    if (typeof frame.seq === 'number' && frame.t !== 'ok' && (this.since === null || frame.seq > this.since)) {
      this.since = frame.seq;
    }
    this.onEvent(frame);
  }

  welcomed(frame) {
    this.joined = true;
    this.attempt = 0;
    this.since = frame.seq;
    this.epoch = frame.epoch;
    this.onWelcome(frame);
    this.onStatus('online', {});
    for (const r of this.requests.values()) this.send(r.frame); // same ids: no doubles
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => this.ping(), HEARTBEAT_MS);
  }

  helloRefused(frame) {
    this.helloError = frame;
    // auth_failed is followed by a 4401 close; a refused guest name leaves the
    // socket open for another hello, but the person has to choose a new name.
    // A guest name on the room's block list is refused the same way (then 1008).
    if (frame.code === 'bad_frame' || frame.code === 'blocked') {
      this.stopped = true;
      const ws = this.ws;
      this.detach();
      ws.close(1000);
      this.onFatal('hello', frame.message);
    }
  }

  expectAnswerWithin(ms) {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => this.drop(), ms);
  }

  ping() {
    if (!this.online) return;
    this.request({ t: 'ping' }).catch(() => {});
    this.expectAnswerWithin(ANSWER_WAIT_MS);
  }
}
