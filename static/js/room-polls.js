// Polls in the room page: every poll with live bars, a ballot while it is
// open, "Close poll" / "Reopen poll" and the "New poll" form for speakers and
// moderators. Each poll's results are redrawn as counts change, but its
// ballot only when what it offers changes, so a person choosing an option
// keeps their choice and their focus while others vote.

import { byId, fill, h } from './dom.js';
import { sentence } from './format.js';
import { ballot, chosen, pollControls, pollResults, pollState } from './polls-view.js';

const MAX_OPTIONS = 10;

export class PollsView {
  constructor({ conn, state, redraw }) {
    Object.assign(this, { conn, state, redraw });
    this.section = byId('polls');
    this.list = byId('polls-list');
    this.cards = new Map(); // pid -> {el, results, ballot, controls, sigs}
    this.errors = new Map(); // pid -> message
    this.form = byId('poll-form');
    this.options = byId('poll-options');
    this.wire();
  }

  get staff() {
    const me = this.state.me;
    return Boolean(me && !me.watch && (me.role === 'speaker' || me.role === 'moderator'));
  }

  render() {
    const { state } = this;
    const polls = [...state.polls.values()].reverse(); // newest first
    this.section.hidden = polls.length === 0 && !this.staff;
    this.form.hidden = !this.staff;
    byId('present-link').hidden = !this.staff;
    byId('polls-empty').hidden = polls.length > 0;
    const wanted = [];
    for (const poll of polls) {
      let card = this.cards.get(poll.pid);
      if (!card) {
        const headingId = `poll-q-${poll.pid}`;
        card = { results: h('div'), ballot: h('div'), controls: h('div'), sigs: {} };
        card.el = h('article', { class: 'poll', 'aria-labelledby': headingId, dataset: { pid: poll.pid } },
          h('h4', { id: headingId, class: 'poll__question' }, h('bdi', {}, poll.question)),
          card.results, card.ballot, card.controls);
        this.cards.set(poll.pid, card);
      }
      card.el.className = `poll poll--${poll.state}`;
      const canVote = poll.state === 'open' && !state.me?.watch;
      this.update(card, 'results', JSON.stringify([poll.counts, poll.state]),
        () => [pollState(poll), pollResults(poll)]);
      this.update(card, 'ballot', JSON.stringify([canVote, state.myBallots.get(poll.pid), this.errors.get(poll.pid)]),
        () => (canVote ? ballot(poll, state, this.errors.get(poll.pid)) : null));
      this.update(card, 'controls', JSON.stringify([this.staff, poll.state]),
        () => (this.staff ? pollControls(poll) : null));
      wanted.push(card.el);
    }
    // Keep the order (newest first) without moving what is already in place.
    wanted.forEach((el, i) => {
      if (this.list.children[i] !== el) this.list.insertBefore(el, this.list.children[i] || null);
    });
    while (this.list.children.length > wanted.length) this.list.lastElementChild.remove();
  }

  update(card, part, sig, build) {
    if (card.sigs[part] === sig) return;
    card.sigs[part] = sig;
    fill(card[part], build());
  }

  // --- requests ----------------------------------------------------------------------

  wire() {
    this.list.addEventListener('submit', (e) => {
      const form = e.target.closest('form.poll__ballot');
      if (!form) return;
      e.preventDefault();
      this.vote(form.dataset.pid, chosen(form));
    });
    this.list.addEventListener('click', (e) => {
      const button = e.target.closest('button[data-action="pollstate"]');
      if (!button) return;
      const { pid, state } = button.dataset;
      this.conn.request({ t: 'pollstate', pid, state }).catch((err) => this.fail(pid, err));
    });
    byId('poll-add-option').addEventListener('click', () => {
      const input = this.addOption();
      if (input) input.focus();
    });
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.open();
    });
    this.addOption();
    this.addOption();
  }

  vote(pid, choices) {
    this.errors.delete(pid);
    if (!choices.length) {
      this.fail(pid, { message: 'Choose an option first' });
      return;
    }
    this.conn.request({ t: 'ballot', pid, choices }).then(() => {
      this.state.myBallots.set(pid, choices);
      this.redraw();
    }, (err) => this.fail(pid, err));
  }

  fail(pid, err) {
    this.errors.set(pid, sentence(err?.message) || 'That did not work. Please try again.');
    this.redraw();
  }

  addOption() {
    const count = this.options.children.length;
    if (count >= MAX_OPTIONS) {
      byId('poll-error').textContent = `A poll has at most ${MAX_OPTIONS} options.`;
      return null;
    }
    const id = `poll-option-${count + 1}`;
    const input = h('input', { id, type: 'text', maxlength: '100', autocomplete: 'off' });
    this.options.append(h('div', { class: 'poll-new__option' }, h('label', { for: id }, `Option ${count + 1}`), input));
    byId('poll-add-option').hidden = count + 1 >= MAX_OPTIONS;
    return input;
  }

  open() {
    const error = byId('poll-error');
    const question = byId('poll-question');
    const options = [...this.options.querySelectorAll('input')].map((i) => i.value.trim()).filter(Boolean);
    if (!question.value.trim()) {
      error.textContent = 'Write the poll question first.';
      question.focus();
      return;
    }
    if (options.length < 2) {
      error.textContent = 'A poll needs at least two options.';
      this.options.querySelector('input').focus();
      return;
    }
    error.textContent = '';
    const frame = { t: 'poll', question: question.value.trim(), options, multi: byId('poll-multi').checked };
    this.conn.request(frame).then(() => {
      question.value = '';
      byId('poll-multi').checked = false;
      fill(this.options);
      this.addOption();
      this.addOption();
      byId('poll-status').textContent = 'The poll is open.';
    }, (err) => {
      error.textContent = sentence(err?.message) || 'The poll was not opened. Please try again.';
    });
  }
}
