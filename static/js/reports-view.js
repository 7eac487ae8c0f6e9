// Reports, held posts and reactions in the page: reaction buttons and the
// "Report" button for each post and question, the report dialog, and the
// moderators' "Reports" and "Held posts" lists.

import { byId, h, reconcile } from './dom.js';
import { clock, shorten } from './format.js';
import { action, errorLine } from './parts.js';

export const EMOJI = [
  ['thumbs_up', '\u{1F44D}', 'Thumbs up'],
  ['heart', '\u2764\uFE0F', 'Heart'],
  ['laugh', '\u{1F602}', 'Laugh'],
  ['wow', '\u{1F62E}', 'Wow'],
  ['clap', '\u{1F44F}', 'Clap'],
  ['thanks', '\u{1F64F}', 'Thanks'],
];

const REASONS = { abuse: 'Abuse', spam: 'Spam', off_topic: 'Off topic', other: 'Other' };

/** The reaction buttons under a post: "Thumbs up, 3" to a screen reader. */
export function reactionBar(msg, state) {
  return h('div', { class: 'reactions', role: 'group', 'aria-label': `Reactions to ${msg.name}'s post` },
    EMOJI.map(([emoji, glyph, words]) => {
      const n = state.reactionCount(msg.mid, emoji);
      return h('button', {
        type: 'button',
        class: 'button button--small reaction',
        'aria-label': `${words}, ${n}`,
        title: words, // for sighted readers where the emoji font is missing
        'aria-pressed': String(state.myReactions.has(`${msg.mid} ${emoji}`)),
        dataset: { action: 'react', mid: msg.mid, emoji, key: `react-${emoji}:${msg.mid}` },
      }, h('span', { 'aria-hidden': 'true' }, glyph), ` ${n}`);
    }));
}

/** What the reaction buttons of a post show, for the chat's redraw signature. */
export function reactionSig(msg, state) {
  return EMOJI.map(([e]) => `${state.reactionCount(msg.mid, e)}${state.myReactions.has(`${msg.mid} ${e}`) ? '+' : ''}`).join(',');
}

export function reportButton(data, about) {
  return action('Report', about, { ...data, action: 'report', about });
}

/** Ask for a reason and an optional note in a <dialog>; resolves {reason, note} or null. */
export function askReport(about) {
  const dialog = byId('report-dialog');
  const form = byId('report-form');
  form.reset();
  byId('report-about').textContent = `You are reporting ${about} to the moderators. They will see your name; nobody else will.`;
  byId('report-error').textContent = '';
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      if (dialog.returnValue !== 'send') {
        resolve(null);
        return;
      }
      const reason = form.querySelector('input[name="reason"]:checked')?.value || 'other';
      resolve({ reason, note: byId('report-note').value });
    }, { once: true });
  });
}

export class ModerationView {
  constructor() {
    this.section = byId('moderation');
    this.reports = byId('reports-list');
    this.reportsEmpty = byId('reports-empty');
    this.held = byId('held-list');
    this.heldEmpty = byId('held-empty');
  }

  render(ctx) {
    const { state } = ctx;
    const moderator = state.me.role === 'moderator';
    this.section.hidden = !moderator;
    if (!moderator) return;
    const reports = state.openReports;
    this.reportsEmpty.hidden = reports.length > 0;
    byId('reports-count').textContent = String(reports.length);
    reconcile(this.reports, reports, {
      key: (r) => r.rid,
      sig: (r) => JSON.stringify([r.count, ctx.errors.get(`report:${r.rid}`)]),
      build: (r) => reportItem(r, state, ctx),
    });
    const held = [...state.held.values()];
    this.heldEmpty.hidden = held.length > 0;
    byId('held-count').textContent = String(held.length);
    reconcile(this.held, held, {
      key: (m) => m.mid,
      sig: (m) => JSON.stringify([m.text, ctx.errors.get(`held:${m.mid}`)]),
      build: (m) => h('li', { class: 'held' },
        h('p', {}, h('span', { class: 'byline__name' }, m.name), ` at ${clock(m.ts)}: `),
        h('p', { class: 'post__text' }, m.text),
        h('div', { class: 'actions' },
          action('Release', `post by ${m.name}`, { action: 'release', mid: m.mid }),
          action('Delete', `held post by ${m.name}`, { action: 'delete-held', mid: m.mid }, { variant: 'button--warning' })),
        errorLine(ctx.errors.get(`held:${m.mid}`))),
    });
  }
}

function reportItem(r, state, ctx) {
  const item = r.mid ? state.messages.get(r.mid) : state.questions.get(r.qid);
  const what = r.mid ? 'Post' : 'Question';
  const by = item ? ` by ${item.name}` : '';
  const others = r.count > 1 ? ` (${r.count} people have reported it)` : '';
  return h('li', { class: 'report' },
    h('p', {}, h('strong', {}, REASONS[r.reason] || r.reason), `: ${what.toLowerCase()}${by}, reported by ${r.name} at ${clock(r.ts)}${others}`),
    item ? h('p', { class: 'post__text' }, shorten(item.text, 200)) : null,
    r.note ? h('p', { class: 'report__note' }, `Note: ${r.note}`) : null,
    h('div', { class: 'actions' },
      action('Resolve', `report from ${r.name}`, { action: 'resolve', rid: r.rid })),
    errorLine(ctx.errors.get(`report:${r.rid}`)));
}
