// Polite screen-reader announcements that do not flood: new messages are
// gathered and read out as one short summary at most every few seconds.

import { plural, shorten } from './format.js';

export class Announcer {
  constructor(region, { gather = 1500, interval = 5000 } = {}) {
    this.region = region;
    this.gather = gather; // wait this long for more before speaking
    this.interval = interval; // and never speak more often than this
    this.enabled = true;
    this.messages = [];
    this.notes = [];
    this.timer = null;
    this.last = 0;
  }

  /** A new chat message from someone else. */
  message(name, text) {
    if (!this.enabled) return;
    this.messages.push({ name, text });
    this.schedule();
  }

  /** Something that matters whether or not chat is announced (a question on stage). */
  note(text) {
    this.notes.push(text);
    this.schedule();
  }

  schedule() {
    if (this.timer) return;
    const wait = Math.max(this.gather, this.last + this.interval - Date.now());
    this.timer = setTimeout(() => this.flush(), wait);
  }

  flush() {
    this.timer = null;
    const parts = [...this.notes];
    const n = this.messages.length;
    if (n === 1) {
      const { name, text } = this.messages[0];
      parts.push(`${name}: ${shorten(text)}`);
    } else if (n > 1) {
      const { name, text } = this.messages[n - 1];
      parts.push(`${plural(n, 'new message')}. Latest from ${name}: ${shorten(text)}`);
    }
    this.messages = [];
    this.notes = [];
    if (!parts.length) return;
    this.last = Date.now();
    this.region.textContent = parts.join('. ');
  }
}
