// The chat: pinned posts on top, then the posts as threads (a reply sits
// under the post it answers), then posts of ours still on their way.

import { h, hidden, reconcile } from './dom.js';
import { shorten } from './format.js';
import { actionsMenu, menuItem, muteItems } from './actions-menu.js';
import { action, byline, errorLine } from './parts.js';
import { reactionBar, reactionSig, reportButton } from './reports-view.js';

export class ChatView {
  constructor({ list, pinnedList, pinnedSection, empty, scroller }) {
    Object.assign(this, { list, pinnedList, pinnedSection, empty, scroller });
  }

  /** @param ctx {state, errors: Map} */
  render(ctx) {
    const { state } = ctx;
    const stick = this.atBottom();
    const threads = state.threads();
    const sending = [...state.outbox.values()].filter((o) => !o.mid || !state.messages.has(o.mid));
    this.renderThreads(this.list, [...threads, ...sending.map((out) => ({ out }))], ctx);
    const pinned = [...state.pinned.values()];
    this.pinnedSection.hidden = pinned.length === 0;
    reconcile(this.pinnedList, pinned, {
      key: (m) => m.mid,
      sig: (m) => JSON.stringify([m.text, m.name, ctx.errors.get(`pin:${m.mid}`)]),
      build: (m) => pinnedPost(m, ctx),
    });
    this.empty.hidden = threads.length > 0 || sending.length > 0;
    // Follow the conversation if the reader was at its end, or has just written.
    if (stick || sending.length > (this.sendingBefore || 0)) this.scrollToEnd();
    this.sendingBefore = sending.length;
  }

  renderThreads(list, nodes, ctx) {
    reconcile(list, nodes, {
      key: (n) => (n.out ? `out:${n.out.id}` : n.removed ? `removed:${n.removed}` : n.msg.mid),
      sig: (n) => signature(n, ctx),
      build: (n) => (n.out ? outgoing(n.out, ctx) : n.removed ? removedStub(n.removed) : post(n, ctx)),
    });
    // Replies are reconciled inside each (kept) post element, so a new reply
    // does not rebuild its thread.
    for (const n of nodes) {
      if (n.out) continue;
      const el = list._cache.get(n.removed ? `removed:${n.removed}` : n.msg.mid).el;
      const replies = el.querySelector(':scope > .replies');
      this.renderThreads(replies, n.replies, ctx);
      replies.hidden = n.replies.length === 0;
    }
  }

  /** Only a scrolling chat follows new posts, and only when the reader is at its end. */
  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 60;
  }

  scrollToEnd() {
    const s = this.scroller;
    if (s.scrollHeight > s.clientHeight) s.scrollTop = s.scrollHeight;
  }
}

function signature(n, ctx) {
  if (n.out) return JSON.stringify([n.out.text, ctx.connected]);
  if (n.removed) return 'removed';
  const { msg } = n;
  const { state } = ctx;
  return JSON.stringify([
    msg.text, msg.name, n.orphan, state.pinned.has(msg.mid), state.isMuted(msg.uid),
    state.me.uid, state.me.role, ctx.errors.get(msg.mid), reactionSig(msg, state),
  ]);
}

function post(n, ctx) {
  const { msg } = n;
  const { state } = ctx;
  const role = state.me.role;
  const mine = msg.uid === state.me.uid;
  const staff = role === 'speaker' || role === 'moderator';
  const moderator = role === 'moderator';
  const about = `post by ${msg.name}`;
  const data = { mid: msg.mid };
  return h('li', { class: `post${mine ? ' post--mine' : ''}`, id: `post-${msg.mid}` },
    h('article', { class: 'post__body' },
      n.orphan ? h('p', { class: 'post__context' }, 'Reply to an earlier post') : null,
      byline(msg, { muted: state.isMuted(msg.uid) }),
      h('p', { class: 'post__text' }, msg.text),
      h('div', { class: 'actions' },
        action('Reply', `to ${msg.name}`, { ...data, action: 'reply' }),
        // A moderator's many actions sit behind one "Actions" menu, so a busy room stays readable.
        moderator ? actionsMenu(`post-${msg.mid}`, mine ? 'your post' : about, [
          state.pinned.has(msg.mid)
            ? menuItem('Unpin', about, { ...data, action: 'unpin' })
            : menuItem('Pin', about, { ...data, action: 'pin' }),
          menuItem('Delete', mine ? 'your post' : about, { ...data, action: 'delete' }, { variant: 'actions-menu__item--warning' }),
          mine ? null : menuItem('Ban', msg.name, { action: 'ban', uid: msg.uid, name: msg.name, mid: msg.mid }, { variant: 'actions-menu__item--warning' }),
          mine ? null : muteItems(msg.uid, msg.name),
        ]) : null,
        moderator ? null : staff ? (state.pinned.has(msg.mid)
          ? action('Unpin', about, { ...data, action: 'unpin' })
          : action('Pin', about, { ...data, action: 'pin' })) : null,
        !moderator && mine ? action('Delete', 'your post', { ...data, action: 'delete' }, { variant: 'button--warning' }) : null,
        mine ? null : reportButton(data, about)),
      reactionBar(msg, state),
      errorLine(ctx.errors.get(msg.mid))),
    h('ol', { class: 'replies', 'aria-label': `Replies to ${msg.name}`, hidden: true }));
}

function removedStub(mid) {
  return h('li', { class: 'post post--removed', id: `post-${mid}` },
    h('p', { class: 'post__removed' }, 'This post was removed.'),
    h('ol', { class: 'replies', 'aria-label': 'Replies to a removed post', hidden: true }));
}

function outgoing(out, ctx) {
  return h('li', { class: 'post post--mine post--sending' },
    h('article', { class: 'post__body' },
      out.reply_to ? h('p', { class: 'post__context' }, `Reply to ${out.replyName || 'a post'}`) : null,
      h('p', { class: 'byline' }, h('span', { class: 'byline__name' }, 'You'),
        h('span', { class: 'badge badge--sending' }, ctx.connected ? 'Sending…' : 'Waiting to send')),
      h('p', { class: 'post__text' }, out.text)));
}

function pinnedPost(msg, ctx) {
  const role = ctx.state.me.role;
  const staff = role === 'speaker' || role === 'moderator';
  return h('li', { class: 'post post--pinned' },
    h('article', { class: 'post__body' },
      byline(msg),
      h('p', { class: 'post__text' }, msg.text),
      staff ? h('div', { class: 'actions' },
        action('Unpin', `post by ${msg.name}`, { mid: msg.mid, action: 'unpin', scope: 'pinned' })) : null,
      errorLine(ctx.errors.get(`pin:${msg.mid}`))));
}

/** "Replying to Ann: first words…" above the message box. */
export function replyLabel(msg) {
  return [`Replying to ${msg.name}: `, h('q', {}, shorten(msg.text, 80)), hidden('.')];
}
