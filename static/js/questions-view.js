// Questions: the one on stage now, those awaiting approval (speakers and
// moderators), then the queue ranked by votes and age.

import { h, reconcile } from './dom.js';
import { clock } from './format.js';
import { actionsMenu, menuItem, muteItems } from './actions-menu.js';
import { action, byline, errorLine } from './parts.js';
import { reportButton } from './reports-view.js';

export class QuestionsView {
  constructor({ stage, queue, queueEmpty, pending, pendingSection }) {
    Object.assign(this, { stage, queue, queueEmpty, pending, pendingSection });
    this.placeholder = h('p', { class: 'empty' }, 'No question is on stage.');
  }

  render(ctx) {
    const { state } = ctx;
    const onStage = state.stage;
    reconcile(this.stage, onStage ? [onStage] : ['placeholder'], {
      key: (q) => (q === 'placeholder' ? q : q.qid),
      sig: (q) => (q === 'placeholder' ? q : signature(q, ctx)),
      build: (q) => (q === 'placeholder' ? this.placeholder : question(q, ctx, 'stage')),
    });
    const queue = state.queue;
    reconcile(this.queue, queue, { key: (q) => q.qid, sig: (q) => signature(q, ctx), build: (q) => question(q, ctx, 'queue') });
    this.queueEmpty.hidden = queue.length > 0;
    const pending = state.awaitingApproval;
    this.pendingSection.hidden = pending.length === 0;
    reconcile(this.pending, pending, { key: (q) => q.qid, sig: (q) => signature(q, ctx), build: (q) => question(q, ctx, 'pending') });
  }
}

function signature(q, ctx) {
  const { state } = ctx;
  return JSON.stringify([
    q.text, q.name, q.votes, q.state, q.answers.length, state.myVotes.has(q.qid),
    q.uid && state.isMuted(q.uid), state.me.uid, state.me.role, ctx.errors.get(q.qid),
  ]);
}

function asker(q) {
  // Participants get anonymous questions with no uid and a neutral name;
  // moderators get the asker, so that abuse can be acted on.
  if (q.anonymous && !q.uid) {
    return h('p', { class: 'byline' }, 'Asked anonymously',
      h('time', { class: 'byline__time', datetime: new Date(q.ts).toISOString() }, clock(q.ts)));
  }
  return byline(q, { prefix: q.anonymous ? 'Asked anonymously by ' : 'Asked by ' });
}

function answers(q) {
  if (!q.answers.length) return null;
  return h('ol', { class: 'answers', 'aria-label': 'Answers' },
    q.answers.map((a) => h('li', { class: 'answer' },
      h('p', { class: 'answer__text' }, a.text),
      byline(a, { prefix: 'Answer from ' }))));
}

function question(q, ctx, where) {
  const { state } = ctx;
  const role = state.me.role;
  const staff = role === 'speaker' || role === 'moderator';
  const moderator = role === 'moderator';
  const mine = q.uid !== null && q.uid === state.me.uid;
  const textId = `q-${where}-${q.qid}`;
  const data = { qid: q.qid };
  const tag = where === 'stage' ? 'article' : 'li';
  return h(tag, { class: `question question--${where}`, 'aria-labelledby': where === 'stage' ? textId : null },
    h('p', { class: 'question__count' },
      h('span', { class: 'question__votes' }, String(q.votes)),
      h('span', { class: 'question__votes-label' }, q.votes === 1 ? 'vote' : 'votes')),
    h('div', { class: 'question__main' },
      h('p', { class: 'question__text', id: textId }, q.text),
      asker(q),
      where === 'pending' ? h('p', { class: 'badge badge--pending' }, 'Awaiting approval') : null,
      answers(q),
      h('div', { class: 'actions' },
        action('Vote', null, { ...data, action: 'vote' }, { pressed: state.myVotes.has(q.qid), describedby: textId }),
        staff && q.state === 'pending' ? action('Approve', 'question', { ...data, action: 'approve' }) : null,
        staff && q.state === 'open' ? action('Put on stage', null, { ...data, action: 'stage' }, { describedby: textId }) : null,
        staff && q.state === 'answering' ? action('Mark answered', null, { ...data, action: 'answered' }, { describedby: textId }) : null,
        staff && !moderator ? action('Dismiss', 'question', { ...data, action: 'dismiss' }) : null,
        !moderator && mine ? action('Delete', 'your question', { ...data, action: 'delete-q' }, { variant: 'button--warning' }) : null,
        // A moderator's removal and muting sit behind one "Actions" menu per question. Through
        // an anonymous question they act by the question: the room never learns who asked.
        moderator ? actionsMenu(`q-${where}-${q.qid}`, 'this question', [
          menuItem('Dismiss', 'question', { ...data, action: 'dismiss' }),
          menuItem('Delete', mine ? 'your question' : 'question', { ...data, action: 'delete-q' }, { variant: 'actions-menu__item--warning' }),
          q.uid && !mine && !q.anonymous ? muteItems(q.uid, q.name) : null,
          q.uid && !mine && q.anonymous ? muteItems(q.uid, 'the asker', { qid: q.qid, anon: '1' }) : null,
          q.uid && !mine && q.anonymous
            ? menuItem('Ban', 'the asker', { action: 'ban', qid: q.qid, uid: q.uid, name: 'the asker', anon: '1' }, { variant: 'actions-menu__item--warning' })
            : null,
        ]) : null,
        mine ? null : reportButton(data, 'question'),
        staff && q.state !== 'pending' ? answerForm(q, where) : null),
      moderator && q.anonymous && q.uid && !mine
        ? h('p', { class: 'note' }, 'Asked anonymously: only moderators see who asked. Mute and Ban here act without the room learning who it was.')
        : null,
      errorLine(ctx.errors.get(q.qid))));
}

function answerForm(q, where) {
  const id = `answer-${where}-${q.qid}`;
  return h('details', { class: 'menu menu--wide', dataset: { key: `answer-menu:${q.qid}` } },
    h('summary', { class: 'button button--small', dataset: { key: `answer-summary:${q.qid}` } }, 'Answer in text'),
    h('form', { class: 'answer-form stack', dataset: { action: 'answer', qid: q.qid } },
      h('label', { for: id }, 'Your answer'),
      h('textarea', { id, rows: '2', maxlength: '2000', dataset: { key: `answer-text:${q.qid}` } }),
      h('button', { type: 'submit', class: 'button button--small button--primary', dataset: { key: `answer-send:${q.qid}` } },
        'Send answer')));
}
