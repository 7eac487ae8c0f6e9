// Polls: the results as bars with their counts in words, the ballot (radio
// buttons or checkboxes labelled with each option, then "Send vote"), and for
// speakers and moderators "Close poll" / "Reopen poll" and the form that opens
// a new poll. The room page and the read-only live views share the results.

import { h, hidden } from './dom.js';
import { plural } from './format.js';

/** One poll's results: each option's count and share, in words and as a bar. */
export function pollResults(poll) {
  const total = poll.counts.reduce((a, b) => a + b, 0);
  return h('ul', { class: 'poll__results' }, poll.options.map((option, i) => {
    const count = poll.counts[i] || 0;
    const share = total ? Math.round((100 * count) / total) : 0;
    const fill = h('span', { class: 'poll__fill' });
    fill.style.width = `${share}%`; // CSSOM, not an inline style attribute: the CSP allows it
    return h('li', { class: 'poll__option' },
      h('span', { class: 'poll__row' },
        h('bdi', { class: 'poll__label' }, option),
        h('span', { class: 'poll__count' }, `${plural(count, 'vote')} (${share}%)`)),
      h('span', { class: 'poll__bar', 'aria-hidden': 'true' }, fill));
  }));
}

export function pollState(poll) {
  return h('p', { class: 'poll__state' },
    poll.state === 'open' ? 'Open: votes can still change.' : 'Closed: these are the final results.',
    ' ', plural(poll.counts.reduce((a, b) => a + b, 0), 'vote'), ' in all.');
}

/** The ballot: a fieldset whose legend is the question, then "Send vote". */
export function ballot(poll, state, error) {
  const mine = new Set(state.myBallots.get(poll.pid) || []);
  const type = poll.multi ? 'checkbox' : 'radio';
  const name = `ballot-${poll.pid}`;
  const hint = poll.multi ? 'Choose one or more.' : 'Choose one.';
  const errorId = `ballot-error-${poll.pid}`;
  return h('form', { class: 'poll__ballot stack', dataset: { pid: poll.pid }, novalidate: true },
    h('fieldset', { 'aria-describedby': errorId },
      h('legend', {}, 'Your vote', hidden(` on “${poll.question}”`)),
      h('p', { class: 'hint' }, hint, mine.size ? ' Your vote is counted; you can change it.' : ''),
      poll.options.map((option, i) => h('label', { class: 'check' },
        h('input', { type, name, value: String(i), checked: mine.has(i) }), ' ', h('bdi', {}, option)))),
    h('button', { type: 'submit', class: 'button button--primary' }, 'Send vote'),
    h('p', { class: 'error', id: errorId, role: 'alert' }, error || ''));
}

/** "Close poll" on an open poll, "Reopen poll" on a closed one. */
export function pollControls(poll) {
  const next = poll.state === 'open' ? 'closed' : 'open';
  return h('p', { class: 'actions' },
    h('button', { type: 'button', class: 'button button--small', dataset: { action: 'pollstate', pid: poll.pid, state: next } },
      poll.state === 'open' ? 'Close poll' : 'Reopen poll', hidden(` “${poll.question}”`)));
}

/** The chosen option indexes of a ballot form. */
export function chosen(form) {
  return [...form.querySelectorAll('input:checked')].map((input) => Number(input.value));
}
