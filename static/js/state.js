// The room as this client knows it: `welcome`, then every event folded in
// order. No DOM here; the views read it, and apply() says what is worth
// announcing.

const KEEP_MESSAGES = 300; // the chat keeps the latest posts; older ones scroll out
const GONE = new Set(['answered', 'dismissed']); // welcome leaves these out, so do we

function question(q, previous) {
  return { ...q, answers: [...(q.answers || previous?.answers || [])] };
}

export class RoomState {
  constructor() {
    this.me = null;
    this.room = null;
    this.online = 0;
    this.messages = new Map(); // mid -> msg, in seq order
    this.removed = new Set(); // mids removed while we watched: their replies stay, marked
    this.pinned = new Map(); // mid -> msg
    this.questions = new Map(); // qid -> q with answers
    this.mutes = new Map(); // uid -> {until, name}; from mute events seen
    this.bans = new Map(); // uid -> name; moderators see ban events
    this.myVotes = new Set();
    this.polls = new Map(); // pid -> poll {question, options, multi, state, counts}
    this.myBallots = new Map(); // pid -> [option indexes] this person last sent
    this.outbox = new Map(); // request id -> {id, text, reply_to, mid}: posts not yet in the chat
    this.reactions = new Map(); // mid -> {emoji: count}
    this.myReactions = new Set(); // "mid emoji" pressed from this page (the server keeps the truth)
    this.reports = new Map(); // rid -> open report (moderators)
    this.held = new Map(); // mid -> held post (moderators; authors see their own)
  }

  /** Fold a `welcome`. A resumed one (`recovered: true`) adds to what we have. */
  welcome(w) {
    if (this.me && this.me.uid !== w.me.uid) {
      this.myVotes.clear(); // a new guest identity; our old votes are not its votes
      this.mutes.delete(this.me.uid);
    }
    this.me = w.me;
    // What the server remembers of us: our votes, and a mute still running.
    if (Array.isArray(w.me.votes)) this.myVotes = new Set(w.me.votes);
    if (w.me.ballots) this.myBallots = new Map(Object.entries(w.me.ballots));
    if ('muted_until' in w.me) this.mutes.set(w.me.uid, { until: w.me.muted_until, name: w.me.name });
    else this.mutes.delete(w.me.uid);
    if (w.moderation) {
      for (const m of w.moderation.mutes) this.mutes.set(m.uid, { until: m.until, name: m.name || m.uid });
      this.bans = new Map(w.moderation.bans.map((b) => [b.uid, b.name || b.uid]));
    }
    if (w.recovered === true) {
      for (const ev of w.history) this.apply(ev);
    } else {
      this.messages = new Map();
      this.removed = new Set();
      this.reactions = new Map();
      for (const msg of w.history) this.addMessage(msg);
    }
    for (const msg of [...w.history, ...w.pinned]) {
      if (msg.t === 'msg' && msg.reactions) this.reactions.set(msg.mid, msg.reactions);
    }
    // Moderators get the open reports and held posts whole: they are current.
    if (Array.isArray(w.reports)) this.reports = new Map(w.reports.map((r) => [r.rid, r]));
    if (Array.isArray(w.held)) this.held = new Map(w.held.map((m) => [m.mid, m]));
    // Pinned posts, questions and the room come whole: they are current.
    this.room = w.room;
    this.online = w.online;
    this.pinned = new Map(w.pinned.map((m) => [m.mid, m]));
    this.questions = new Map(w.questions.map((q) => [q.qid, question(q)]));
    this.polls = new Map((w.polls || []).map((p) => [p.pid, { ...p }]));
    for (const qid of this.myVotes) {
      if (!this.questions.has(qid)) this.myVotes.delete(qid);
    }
  }

  /** Fold one event; returns a note for announcements, or null. */
  apply(ev) {
    const fold = FOLDS[ev.t];
    return fold ? fold(this, ev) || null : null;
  }

  addMessage(msg) {
    if (msg.held) {
      if (!this.removed.has(msg.mid)) this.held.set(msg.mid, msg);
      this.settleOutbox(msg);
      return false;
    }
    this.held.delete(msg.mid); // released
    if (this.messages.has(msg.mid) || this.removed.has(msg.mid)) return false;
    this.messages.set(msg.mid, msg);
    if (this.messages.size > KEEP_MESSAGES) {
      this.messages.delete(this.messages.keys().next().value);
    }
    this.settleOutbox(msg);
    return true;
  }

  /**
   * Our own post came back. Its `ok` usually follows the event, so match the
   * oldest waiting copy by text rather than show the post twice meanwhile.
   */
  settleOutbox(msg) {
    if (!this.me || msg.uid !== this.me.uid) return;
    for (const [id, out] of this.outbox) {
      if (out.mid === msg.mid) {
        this.outbox.delete(id);
        return;
      }
    }
    for (const out of this.outbox.values()) {
      if (!out.mid && out.text === msg.text && (out.reply_to || null) === (msg.reply_to || null)) {
        out.mid = msg.mid; // hidden now; gone for good when its ok names a mid
        return;
      }
    }
  }

  /** Our post was accepted as `mid`: its outbox copy goes once the chat has it. */
  acknowledged(id, mid) {
    const out = this.outbox.get(id);
    if (!out) return;
    if (this.messages.has(mid) || this.removed.has(mid)) this.outbox.delete(id);
    else out.mid = mid;
  }

  isMuted(uid, now = Date.now()) {
    const m = this.mutes.get(uid);
    return m !== undefined && (m.until === null || m.until > now);
  }

  get myMute() {
    return this.me && this.isMuted(this.me.uid) ? this.mutes.get(this.me.uid) : null;
  }

  nameOf(uid) {
    for (const m of this.messages.values()) if (m.uid === uid) return m.name;
    for (const q of this.questions.values()) if (q.uid === uid) return q.name;
    return this.mutes.get(uid)?.name || 'someone';
  }

  // --- what the views show --------------------------------------------------

  /** Posts as threads: each reply under the post it answers, oldest first. */
  threads() {
    const nodes = new Map();
    for (const msg of this.messages.values()) nodes.set(msg.mid, { msg, replies: [] });
    const stubs = new Map(); // removed parent mid -> marker holding its replies
    const top = [];
    for (const node of nodes.values()) {
      const parentId = node.msg.reply_to;
      const parent = parentId ? nodes.get(parentId) : undefined;
      if (parent) {
        parent.replies.push(node);
      } else if (parentId && this.removed.has(parentId)) {
        let stub = stubs.get(parentId);
        if (!stub) {
          stub = { removed: parentId, replies: [] };
          stubs.set(parentId, stub);
          top.push(stub);
        }
        stub.replies.push(node);
      } else {
        top.push({ ...node, orphan: Boolean(parentId) });
      }
    }
    return top;
  }

  get stage() {
    for (const q of this.questions.values()) if (q.state === 'answering') return q;
    return null;
  }

  /** Live questions, most votes first, then oldest first. */
  get queue() {
    return [...this.questions.values()]
      .filter((q) => q.state === 'open')
      .sort((a, b) => b.votes - a.votes || a.seq - b.seq);
  }

  reactionCount(mid, emoji) {
    return this.reactions.get(mid)?.[emoji] || 0;
  }

  /** Open reports, newest first. */
  get openReports() {
    return [...this.reports.values()].sort((a, b) => b.seq - a.seq);
  }

  /** The poll to show first: the newest open one, else the newest. */
  get currentPoll() {
    const all = [...this.polls.values()];
    return all.filter((p) => p.state === 'open').pop() || all.pop() || null;
  }

  get awaitingApproval() {
    return [...this.questions.values()]
      .filter((q) => q.state === 'pending')
      .sort((a, b) => b.votes - a.votes || a.seq - b.seq);
  }
}

const FOLDS = {
  msg(s, ev) {
    return s.addMessage(ev) ? { kind: 'msg', msg: ev } : null;
  },
  q(s, ev) {
    if (GONE.has(ev.state)) return null;
    const had = s.questions.has(ev.qid);
    s.questions.set(ev.qid, question(ev, s.questions.get(ev.qid)));
    return had ? null : { kind: 'q', q: ev };
  },
  votes(s, ev) {
    const q = s.questions.get(ev.qid);
    if (q) q.votes = ev.votes;
  },
  answer(s, ev) {
    const q = s.questions.get(ev.qid);
    if (q && !q.answers.some((a) => a.seq === ev.seq)) {
      q.answers.push(ev);
      return { kind: 'answer', q, answer: ev };
    }
  },
  qstate(s, ev) {
    const q = s.questions.get(ev.qid);
    if (!q) return;
    if (GONE.has(ev.state)) {
      s.questions.delete(ev.qid);
      return;
    }
    if (ev.state === 'answering') {
      for (const other of s.questions.values()) {
        if (other !== q && other.state === 'answering') s.questions.delete(other.qid);
      }
    }
    q.state = ev.state;
    if (ev.state === 'answering') return { kind: 'stage', q };
  },
  pin(s, ev) {
    const msg = s.messages.get(ev.mid);
    if (msg) s.pinned.set(ev.mid, msg);
  },
  unpin(s, ev) {
    s.pinned.delete(ev.mid);
  },
  del(s, ev) {
    if (ev.mid) {
      s.held.delete(ev.mid);
      s.reactions.delete(ev.mid);
      s.messages.delete(ev.mid);
      s.pinned.delete(ev.mid);
      s.removed.add(ev.mid);
      for (const [id, out] of s.outbox) if (out.mid === ev.mid) s.outbox.delete(id);
    } else if (ev.qid) {
      s.questions.delete(ev.qid);
      s.myVotes.delete(ev.qid);
    }
  },
  mute(s, ev) {
    s.mutes.set(ev.uid, { until: ev.until ?? null, name: ev.name || s.nameOf(ev.uid) });
    if (s.me && ev.uid === s.me.uid) return { kind: 'muted' };
  },
  unmute(s, ev) {
    s.mutes.delete(ev.uid);
    if (s.me && ev.uid === s.me.uid) return { kind: 'unmuted' };
  },
  ban(s, ev) {
    s.bans.set(ev.uid, ev.name || s.nameOf(ev.uid));
  },
  unban(s, ev) {
    s.bans.delete(ev.uid);
  },
  room(s, ev) {
    const was = s.room.state;
    s.room = { ...s.room, state: ev.state, settings: ev.settings };
    if (was !== ev.state) return { kind: 'room', state: ev.state };
  },
  reactions(s, ev) {
    s.reactions.set(ev.mid, ev.counts || {});
  },
  report(s, ev) {
    s.reports.set(ev.rid, ev);
    // Earlier reports of the same item now count one more person.
    for (const r of s.reports.values()) {
      if ((r.mid && r.mid === ev.mid) || (r.qid && r.qid === ev.qid)) r.count = ev.count;
    }
    return { kind: 'report', report: ev };
  },
  resolved(s, ev) {
    s.reports.delete(ev.rid);
  },
  presence(s, ev) {
    s.online = ev.online;
  },
  poll(s, ev) {
    const had = s.polls.has(ev.pid);
    s.polls.set(ev.pid, { ...ev, counts: s.polls.get(ev.pid)?.counts || ev.counts });
    if (!had) return { kind: 'poll', poll: ev };
  },
  tally(s, ev) {
    const poll = s.polls.get(ev.pid);
    if (poll) poll.counts = ev.counts;
  },
  pollstate(s, ev) {
    const poll = s.polls.get(ev.pid);
    if (poll) {
      poll.state = ev.state;
      return { kind: 'pollstate', poll };
    }
  },
};
