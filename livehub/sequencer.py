"""The ordering logic of a room replica, without I/O: fed events, it says what to do.

Like the protocol objects of ``websockets``, a :class:`Sequencer` does no I/O and reads
no clock. Its owner (``hub.RoomReplica``) feeds it what happened, and carries out the
actions it answers, in order:

* :meth:`Sequencer.deliver` (events from pub/sub), :meth:`Sequencer.resync` (the
  subscription was interrupted), :meth:`Sequencer.loaded` (the whole log was read),
  :meth:`Sequencer.gap_read` (the log after a position was read) and
  :meth:`Sequencer.epoch_renewed` (the broker gave the log a new epoch) are the inputs;
* :class:`Apply` (fold these events, in order; ``live``: also send them out),
  :class:`ReadGap` (read the log after ``after``, then call ``gap_read``),
  :class:`RenewEpoch` (the log lost its newest events: renew its epoch, then call
  ``epoch_renewed``) and :class:`Reset` (the log is another one now: close every
  connection with 1013, forget the state, and load the whole log again, then call
  ``loaded``) are the outputs.

It also keeps the window of the latest applied events and answers a client's ``since``
from it (:meth:`Sequencer.since`).

The rules: events are applied strictly in ``seq`` order, each once. What arrives while
the log is being read waits in a backlog and is replayed afterwards. An event of
another epoch means the log was lost and restarted. A gap fill reads from one event
before the first one missing, so that it can tell a log that lost its newest events
(head below what was applied, or another event at that ``seq``) from one that did not.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Final

Event = dict[str, Any]

WINDOW: Final = 2000  # applied events kept to serve `since` without reading the log


@dataclass(frozen=True, slots=True)
class Apply:
    """Fold ``events`` into the state, in order; send them out when ``live``."""

    events: list[Event]
    live: bool


@dataclass(frozen=True, slots=True)
class ReadGap:
    """Read the log after ``after`` and feed it to :meth:`Sequencer.gap_read`."""

    after: int


@dataclass(frozen=True, slots=True)
class RenewEpoch:
    """The log lost its newest events but kept ``epoch``: give it a new one and feed
    the epoch it has then to :meth:`Sequencer.epoch_renewed`."""

    epoch: str
    applied: int  # the seq this replica had applied (for the log line)
    head: int  # the log's newest seq


@dataclass(frozen=True, slots=True)
class Reset:
    """The log is another one now (``epoch``): drop the state and connections, and load
    the whole log again (feed it to :meth:`Sequencer.loaded`)."""

    old_epoch: str
    epoch: str


Action = Apply | ReadGap | RenewEpoch | Reset


@dataclass(frozen=True, slots=True)
class LogRead:
    """What a log read brought (the fields of ``broker.base.History`` it needs)."""

    epoch: str
    head: int
    events: list[Event]
    complete: bool


class Sequencer:
    """One room's position in its log: ``epoch``, ``seq`` and the recent window."""

    __slots__ = ("_backlog", "busy", "epoch", "max_replay", "recent", "seq")

    def __init__(self, *, window: int = WINDOW, max_replay: int | None = None) -> None:
        self.epoch = ""
        self.seq = 0  # the last seq applied
        self.recent: deque[Event] = deque(maxlen=window)
        self.max_replay = max_replay  # a `since` further back is not replayed
        # True while the log is being read (a load or a gap fill): deliveries wait.
        self.busy = True
        self._backlog: list[tuple[str, list[Event]]] = []

    # -- inputs ---------------------------------------------------------------------

    def loaded(self, read: LogRead) -> list[Action]:
        """The whole log was read (first load, or after a :class:`Reset`)."""
        self.epoch = read.epoch
        self.seq = start_of(read)
        self.recent.clear()
        out: list[Action] = []
        events = self._take(read.events)
        if events:
            out.append(Apply(events, live=False))
        self.busy = False
        out.extend(self._drain())
        return out

    def deliver(self, epoch: str, events: list[Event]) -> list[Action]:
        """Events as pub/sub delivered them (in commit order, maybe with holes)."""
        if self.busy:
            self._backlog.append((epoch, events))
            return []
        if epoch != self.epoch:
            return [self._reset(epoch)]
        out: list[Action] = []
        ready: list[Event] = []
        for i, ev in enumerate(events):
            seq = ev["seq"]
            if seq <= self.seq:
                continue  # already applied (read from the log)
            if seq != self.seq + 1:
                self._backlog.append((epoch, events[i:]))
                if ready:
                    out.append(Apply(ready, live=True))
                out.append(self._fill())
                return out
            ready.append(ev)
            self._note(ev)
        if ready:
            out.append(Apply(ready, live=True))
        return out

    def resync(self) -> list[Action]:
        """The subscription was interrupted: events may have been missed."""
        return [] if self.busy else [self._fill()]

    def gap_read(self, read: LogRead) -> list[Action]:
        """The log after :attr:`ReadGap.after` was read."""
        if read.epoch == self.epoch and self._lost_tail(read):
            # Same epoch, but not the events we applied (Redis came back from an older
            # snapshot, or failed over to a replica that lagged): a new epoch, so that
            # nobody's `since` is taken for a place in the log as it goes on.
            return [RenewEpoch(read.epoch, self.seq, read.head)]
        if read.epoch != self.epoch or not read.complete:
            return [self._reset(read.epoch)]
        self.busy = False
        out: list[Action] = []
        events = [ev for ev in read.events if ev["seq"] > self.seq]
        ready = self._take(events)
        if ready:
            out.append(Apply(ready, live=True))
        out.extend(self._drain())
        return _merge(out)

    def epoch_renewed(self, epoch: str) -> list[Action]:
        return [self._reset(epoch)]

    # -- `since` ----------------------------------------------------------------------

    def since(self, since: int, epoch: str | None, older: list[Event] | None = None
              ) -> list[Event] | None:
        """Every applied event after ``since`` (from the window, and ``older``: events
        read from the log for it), or None when they cannot all be had: another epoch,
        a ``since`` ahead of us, beyond ``max_replay``, or not in the log any more."""
        if (epoch is not None and epoch != self.epoch) or since > self.seq or since < 0:
            return None
        if self.max_replay is not None and self.seq - since > self.max_replay:
            return None
        if since == self.seq:
            return []
        recent = self.recent
        if recent and recent[0]["seq"] <= since + 1:
            return [ev for ev in recent if ev["seq"] > since]
        events = [ev for ev in (older or []) if since < ev["seq"] <= self.seq]
        last = events[-1]["seq"] if events else since
        events.extend(ev for ev in recent if ev["seq"] > last)
        if len(events) != self.seq - since or (events and events[0]["seq"] != since + 1):
            return None
        return events

    def needs_log_read(self, since: int | None, epoch: str | None = None) -> int:
        """How many events after ``since`` must be read from the log to serve it (0:
        none; the window has them, or it cannot be served anyway)."""
        if since is None or since >= self.seq or since < 0:
            return 0
        if (epoch is not None and epoch != self.epoch) or (
                self.max_replay is not None and self.seq - since > self.max_replay):
            return 0
        if self.recent and self.recent[0]["seq"] <= since + 1:
            return 0
        return self.seq - since

    # -- internals ----------------------------------------------------------------------

    def _note(self, ev: Event) -> None:
        self.seq = ev["seq"]
        self.recent.append(ev)

    def _take(self, events: list[Event]) -> list[Event]:
        """The leading run of ``events`` that continues our seq, noted as applied."""
        ready: list[Event] = []
        for ev in events:
            if ev["seq"] != self.seq + 1:
                break
            ready.append(ev)
            self._note(ev)
        return ready

    def _fill(self) -> ReadGap:
        self.busy = True
        # From our last event on, to check that the log still holds it.
        return ReadGap(max(0, self.seq - 1))

    def _reset(self, epoch: str) -> Reset:
        old = self.epoch
        self.busy = True  # until the reload is fed to `loaded`
        self.epoch, self.seq = epoch, 0
        self.recent.clear()
        # What waits from the lost log is stale; the reload reads the new one.
        self._backlog = [(e, evs) for e, evs in self._backlog if e == epoch]
        return Reset(old, epoch)

    def _drain(self) -> list[Action]:
        """Replay what waited while the log was read, until a new gap (if any)."""
        out: list[Action] = []
        backlog, self._backlog = self._backlog, []
        for i, (epoch, events) in enumerate(backlog):
            out.extend(self.deliver(epoch, events))
            if self.busy:  # a new gap or a reset: the rest waits again
                self._backlog.extend(backlog[i + 1:])
                break
        return _merge(out)

    def _lost_tail(self, read: LogRead) -> bool:
        """Whether the log (read from our last seq on) no longer ends with what we applied."""
        seq = self.seq
        if seq == 0:
            return False
        if read.head < seq:
            return True
        mine = self.recent[-1] if self.recent and self.recent[-1]["seq"] == seq else None
        logged = read.events[0] if read.events else None
        if mine is None or logged is None or logged["seq"] != seq:
            return False
        return (mine["t"], mine.get("ts")) != (logged["t"], logged.get("ts"))


def start_of(read: LogRead) -> int:
    """The seq a replica loaded from ``read`` starts after: 0, or for a trimmed log the
    seq before its first event (the replica starts where the log does)."""
    return read.events[0]["seq"] - 1 if read.events else read.head


def _merge(actions: list[Action]) -> list[Action]:
    """Adjacent live applies as one (fewer, larger fan-out steps; same order)."""
    out: list[Action] = []
    for action in actions:
        prev = out[-1] if out else None
        if (isinstance(action, Apply) and isinstance(prev, Apply)
                and action.live == prev.live):
            out[-1] = Apply(prev.events + action.events, action.live)
        else:
            out.append(action)
    return out
