"""The client's room state (static/js/state.js), folded in the browser with plain data."""

from __future__ import annotations

from typing import Any

from tests.support import LivehubProcess

FOLD = """async () => {
  const { RoomState } = await import('/static/js/state.js');
  const msg = (seq, mid, uid, text, extra = {}) =>
    ({ t: 'msg', seq, ts: 1, mid, uid, name: uid, role: 'participant', text, ...extra });
  const q = (seq, qid, votes, state = 'open') =>
    ({ t: 'q', seq, ts: 1, qid, uid: 'u2', name: 'u2', text: qid, votes, state });
  const welcome = (extra) => ({
    t: 'welcome', me: { uid: 'me', name: 'Me', role: 'participant' }, seq: 3, epoch: 'e1',
    room: { id: 'r', title: 'R', state: 'open',
            settings: { slow_mode: 0, guests: true, premoderate: false } },
    online: 2, pinned: [], history: [], questions: [], ...extra,
  });
  const s = new RoomState();
  s.welcome(welcome({
    history: [msg(1, 'm1', 'u2', 'hello'), msg(2, 'm2', 'me', 'reply', { reply_to: 'm1' })],
    questions: [{ ...q(3, 'q1', 1), answers: [{ t: 'answer', seq: 3, qid: 'q1', text: 'a1' }] }],
  }));
  const out = {};
  out.threads = s.threads().map((n) => [n.msg.mid, n.replies.map((r) => r.msg.mid)]);

  // Our post: its event comes before its ok, and is not shown twice meanwhile.
  s.outbox.set('p-1', { id: 'p-1', text: 'mine', mid: null });
  s.apply(msg(4, 'm3', 'me', 'mine'));
  out.waitingAfterEvent = [...s.outbox.values()].filter((o) => !s.messages.has(o.mid)).length;
  s.acknowledged('p-1', 'm3');
  out.outboxAfterOk = s.outbox.size;

  // Ranking: votes first, then age; one question on stage at a time.
  s.apply(q(5, 'q2', 0));
  s.apply({ t: 'votes', seq: 6, qid: 'q2', votes: 3 });
  out.queue = s.queue.map((x) => x.qid);
  s.apply({ t: 'qstate', seq: 7, qid: 'q1', state: 'answering' });
  s.apply({ t: 'qstate', seq: 8, qid: 'q2', state: 'answering' });
  out.stage = s.stage.qid;
  out.q1Gone = !s.questions.has('q1');

  // A removed parent leaves its replies under a marker.
  s.apply({ t: 'del', seq: 9, mid: 'm1' });
  out.afterDelete = s.threads().map((n) => n.removed ? `removed:${n.removed}` : n.msg.mid);

  // Resumed: events after `since` fold in; questions come whole, answers not doubled.
  s.welcome(welcome({
    recovered: true, seq: 11,
    history: [msg(10, 'm4', 'u3', 'while away'), { t: 'mute', seq: 11, uid: 'me', until: null }],
    questions: [{ ...q(5, 'q2', 3, 'answering'),
                  answers: [{ t: 'answer', seq: 10, qid: 'q2', text: 'x' }] }],
  }));
  out.resumed = [...s.messages.keys()];
  out.answers = s.questions.get('q2').answers.length;
  out.muted = s.myMute;

  // Not recovered (the log was lost): rebuilt from the welcome alone.
  s.welcome(welcome({ recovered: false, history: [msg(1, 'n1', 'u9', 'new epoch')] }));
  out.rebuilt = [...s.messages.keys()];
  return out;
}"""


def test_room_state_folds_welcome_and_events(browser: Any, site: LivehubProcess) -> None:
    page = browser.new_page()
    page.goto(site.url + "/")  # any page of ours: modules load from the same origin
    out = page.evaluate(FOLD)
    page.close()
    assert out["threads"] == [["m1", ["m2"]]]
    assert out["waitingAfterEvent"] == 0
    assert out["outboxAfterOk"] == 0
    assert out["queue"] == ["q2", "q1"]
    assert out["stage"] == "q2" and out["q1Gone"]
    assert out["afterDelete"] == ["removed:m1", "m3"]
    assert out["resumed"] == ["m2", "m3", "m4"]
    assert out["answers"] == 1
    assert out["muted"] == {"until": None, "name": "me"}  # the name it last posted under
    assert out["rebuilt"] == ["n1"]
