"""livehub.sequencer: a replica's ordering, gap filling, lost-tail check and `since`,
without sockets or asyncio."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from livehub.sequencer import (
    Action,
    Apply,
    LogRead,
    ReadGap,
    RenewEpoch,
    Reset,
    Sequencer,
)

Event = dict[str, Any]


def ev(seq: int, t: str = "msg", ts: int | None = None) -> Event:
    return {"t": t, "seq": seq, "ts": 1000 + seq if ts is None else ts}


def log_of(n: int) -> list[Event]:
    return [ev(i) for i in range(1, n + 1)]


def read(events: list[Event], after: int, *, epoch: str = "E", head: int | None = None,
         complete: bool = True) -> LogRead:
    head = events[-1]["seq"] if head is None and events else (head or 0)
    return LogRead(epoch, head, [e for e in events if e["seq"] > after], complete)


def loaded(events: list[Event] | None = None, epoch: str = "E", **kw: Any) -> Sequencer:
    s = Sequencer(**kw)
    s.loaded(read(events or [], 0, epoch=epoch))
    return s


def applied(actions: list[Action]) -> list[int]:
    return [e["seq"] for a in actions if isinstance(a, Apply) for e in a.events]


def test_load_applies_the_log_quietly_then_what_arrived_meanwhile_live() -> None:
    s = Sequencer()
    assert s.deliver("E", [ev(3), ev(4)]) == []  # busy loading: it waits
    out = s.loaded(read(log_of(3), 0))
    assert out[0] == Apply(log_of(3), live=False)
    assert out[1] == Apply([ev(4)], live=True)  # 3 was in the log already
    assert s.seq == 4 and not s.busy


def test_a_trimmed_log_is_loaded_from_where_it_starts() -> None:
    s = Sequencer()
    out = s.loaded(LogRead("E", 10, log_of(10)[6:], complete=False))
    assert applied(out) == [7, 8, 9, 10] and s.seq == 10
    assert s.deliver("E", [ev(11)]) == [Apply([ev(11)], live=True)]
    assert s.since(8, "E") == [ev(9), ev(10), ev(11)]
    assert s.since(2, "E") is None  # trimmed: not in the window, not in the log
    empty = Sequencer()
    assert empty.loaded(LogRead("E", 5, [], complete=False)) == [] and empty.seq == 5


def test_events_in_order_are_applied_live_and_repeats_skipped() -> None:
    s = loaded(log_of(2))
    assert s.deliver("E", [ev(3), ev(4)]) == [Apply([ev(3), ev(4)], live=True)]
    assert s.deliver("E", [ev(4)]) == []
    assert s.seq == 4


def test_a_gap_applies_what_fits_then_reads_from_one_before_the_hole() -> None:
    s = loaded(log_of(2))
    out = s.deliver("E", [ev(3), ev(6), ev(7)])
    assert out == [Apply([ev(3)], live=True), ReadGap(after=2)]
    assert s.busy
    assert s.deliver("E", [ev(8)]) == []  # waits for the fill
    out = s.gap_read(read(log_of(7), 2))
    assert applied(out) == [4, 5, 6, 7, 8]
    assert all(a.live for a in out if isinstance(a, Apply))
    assert len(out) == 1  # adjacent applies are merged
    assert s.seq == 8 and not s.busy


def test_resync_reads_the_log_unless_already_reading() -> None:
    s = loaded(log_of(5))
    assert s.resync() == [ReadGap(after=4)]
    assert s.resync() == []
    assert applied(s.gap_read(read(log_of(6), 4))) == [6]


def test_another_epoch_resets_and_drops_what_waited_from_the_old_log() -> None:
    s = loaded(log_of(3))
    s.deliver("E", [ev(5)])  # a gap: busy
    assert s.gap_read(read(log_of(2), 2, epoch="F")) == [Reset("E", "F")]
    assert s.busy and s.seq == 0 and s.epoch == "F"
    out = s.loaded(read(log_of(1), 0, epoch="F"))
    assert out == [Apply([ev(1)], live=False)]  # E's seq 5 was dropped


def test_a_delivery_from_another_epoch_resets() -> None:
    s = loaded(log_of(3))
    assert s.deliver("F", [ev(1)]) == [Reset("E", "F")]


def test_a_trimmed_log_under_a_gap_resets() -> None:
    s = loaded(log_of(3))
    s.deliver("E", [ev(9)])
    out = s.gap_read(LogRead("E", 9, [ev(3), ev(4)], complete=False))
    assert out == [Reset("E", "E")]


def test_a_log_whose_head_is_below_what_was_applied_lost_its_tail() -> None:
    s = loaded(log_of(5))
    assert s.resync() == [ReadGap(after=4)]
    out = s.gap_read(LogRead("E", 3, [], complete=True))
    assert out == [RenewEpoch("E", applied=5, head=3)]
    assert s.epoch_renewed("E2") == [Reset("E", "E2")]


def test_another_event_at_our_seq_means_a_lost_tail() -> None:
    s = loaded(log_of(5))
    s.resync()
    rewritten = [ev(5, ts=99), ev(6)]
    assert isinstance(s.gap_read(LogRead("E", 6, rewritten, complete=True))[0], RenewEpoch)


def test_the_same_event_at_our_seq_is_no_lost_tail() -> None:
    s = loaded(log_of(5))
    s.resync()
    assert applied(s.gap_read(read(log_of(6), 4))) == [6]


def test_since_is_served_from_the_window_or_from_what_was_read() -> None:
    s = loaded(log_of(10), window=4)
    assert [e["seq"] for e in s.since(7, "E") or []] == [8, 9, 10]
    assert s.since(10, "E") == []
    assert s.since(11, "E") is None  # ahead of us
    assert s.since(7, "F") is None  # another epoch
    assert s.needs_log_read(7) == 0
    assert s.needs_log_read(2) == 8
    assert s.since(2, "E") is None  # not in the window, nothing read
    older = log_of(8)[2:]  # seq 3..8
    assert [e["seq"] for e in s.since(2, "E", older) or []] == list(range(3, 11))
    assert s.since(2, "E", log_of(8)[4:]) is None  # the log lost 3 and 4


def test_since_beyond_max_replay_is_not_served() -> None:
    s = loaded(log_of(10), max_replay=5)
    assert s.since(4, "E") is None and s.needs_log_read(4) == 0
    assert s.since(5, "E") is not None


# -- properties ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["commit", "drop", "batch", "resync", "read"]),
                          st.integers(1, 4)), max_size=60))
def test_any_interleaving_ends_applied_in_order_without_a_gap(
        steps: list[tuple[str, int]]) -> None:
    """Pub/sub may drop, batch and repeat; resyncs and gap reads come at any time; the
    log keeps growing meanwhile. Whatever happens, each event is applied once, in
    order, and once everything is read the replica has the whole log."""
    log: list[Event] = []
    s = Sequencer()
    pending: list[ReadGap] = []
    got: list[int] = []
    undelivered: list[Event] = []

    def run(actions: list[Action]) -> None:
        for action in actions:
            assert not isinstance(action, (Reset, RenewEpoch)), action
            if isinstance(action, Apply):
                got.extend(e["seq"] for e in action.events)
            else:
                pending.append(action)
        assert got == list(range(1, len(got) + 1))
        assert len(pending) <= 1  # one read at a time

    run(s.loaded(LogRead("E", 0, [], True)))
    for kind, n in steps:
        if kind in ("commit", "drop", "batch"):
            new = [ev(len(log) + i + 1) for i in range(n)]
            log.extend(new)
            if kind == "commit":
                for e in new:
                    run(s.deliver("E", [e]))
            elif kind == "batch":
                run(s.deliver("E", undelivered + new))  # a late repeat, then the new
            undelivered = new
        elif kind == "resync":
            run(s.resync())
        elif pending:
            gap = pending.pop()
            run(s.gap_read(read(log, gap.after)))
    run(s.resync())
    while pending:
        gap = pending.pop()
        run(s.gap_read(read(log, gap.after)))
    assert got == [e["seq"] for e in log]
    assert s.seq == len(log) and not s.busy
