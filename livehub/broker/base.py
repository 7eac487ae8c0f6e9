"""The broker interface: a log per room, sequence numbers, and fan-out.

A broker moves events and sequence numbers between server processes; it knows
nothing of what an event means. ``commit`` appends events to a room's log,
numbers them and publishes them in one atomic step; every subscribed process
then receives them through its :class:`Listener`. Backends: ``memory`` (one
process) and ``redis`` (any number of processes and machines).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Event = dict[str, Any]
CheckKind = Literal["rate", "gap", "cap", "uncap"]


@dataclass(frozen=True, slots=True)
class Check:
    """A limit decided in the same atomic step as the commit it guards.

    Limits that count across connections and processes (a person's budget, slow
    mode, a guest address's budget and votes) cannot be decided by one process: two
    could both say yes. So the broker checks them where it commits, and a refused
    commit changes nothing, this check's count and every other's included.

    * ``rate``: at most ``limit`` commits within any ``window_ms`` (a sliding window).
    * ``gap``: none within ``window_ms`` of the last one accepted (slow mode).
    * ``cap``: at most ``limit`` distinct ``member``s in the set (one already in
      passes); ``uncap`` takes ``member`` out again and never refuses.

    ``key`` names the counter within the room; ``code`` and ``label`` say what a
    refusal is (the protocol's error code, and the limit's name for metrics).
    """

    kind: CheckKind
    key: str
    limit: int = 0
    window_ms: int = 0
    member: str = ""
    code: str = "rate_limited"
    label: str = ""


class BrokerUnavailable(Exception):
    """The broker cannot be reached; nothing was committed. Clients get ``unavailable``."""


@dataclass(frozen=True, slots=True)
class Commit:
    """The outcome of :meth:`Broker.commit`.

    ``seq`` is the last sequence number given. For a repeated idempotency key
    nothing is committed: ``duplicate`` is True and ``ref``/``seq`` are the ones
    stored by the first commit.
    """

    seq: int
    epoch: str
    ref: str | None = None
    duplicate: bool = False
    refused: Check | None = None  # a check said no: nothing was committed
    retry_ms: int = 0  # for a refused ``gap``: how long until it would pass


@dataclass(frozen=True, slots=True)
class History:
    """Events after a position in a room's log.

    ``complete`` is False when the log no longer reaches back to ``after + 1``
    (trimmed), in which case ``events`` starts wherever the log now starts.
    """

    epoch: str
    head: int
    events: list[Event]
    complete: bool


@dataclass(frozen=True, slots=True)
class Archived:
    """What one archive run did (or, with ``dry_run``, would do) to a room's log."""

    room: str
    archived: int  # events newly copied into the archive
    trimmed: int  # log entries removed
    kept: int  # log entries left
    upto: int  # the last archived seq


class Listener(Protocol):
    """What a broker calls back on the process's event loop."""

    def on_events(self, room: str, epoch: str, events: list[Event]) -> None:
        """Events as published, in commit order. May skip (pub/sub is forgetful):
        the listener checks ``seq`` continuity and reads gaps from the log."""

    def on_resync(self, room: str) -> None:
        """The broker's subscription was interrupted (reconnect): re-check the log."""


class Broker(abc.ABC):
    """Base class of the broker backends."""

    name: str = "abstract"

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect; called once before use."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Disconnect and stop background tasks."""

    @property
    def ready(self) -> bool:
        """True while the broker is reachable (``/readyz``)."""
        return True

    @abc.abstractmethod
    async def commit(
        self, room: str, events: list[Event], *, idem: tuple[str, str] | None = None,
        idem_ttl: int = 600, checks: tuple[Check, ...] = (),
    ) -> Commit:
        """Number, append and publish ``events`` atomically; sets ``seq`` on each.

        ``idem`` is ``(key, ref)``: when ``key`` was committed within ``idem_ttl``
        seconds, nothing happens and the first commit's ``ref`` and ``seq`` come back.
        Then every one of ``checks`` must pass, or nothing is committed and
        ``refused`` names the first that failed. Raises :class:`BrokerUnavailable`
        when nothing could be committed.
        """

    @abc.abstractmethod
    async def take(self, room: str, key: str, limit: int, window_ms: int) -> bool:
        """One use of a ``rate`` budget outside any commit (say, a new guest name):
        True and counted when under ``limit`` within ``window_ms``, else False."""

    async def recall(self, room: str, key: str) -> Commit | None:
        """The first commit made with idempotency ``key``, if still remembered."""
        return None

    async def renew_epoch(self, room: str, epoch: str) -> str:
        """Give ``room``'s log a new epoch if it is still ``epoch``; the epoch it has now.

        For a log that lost its newest events but kept its name (Redis restored from
        an older snapshot, or failed over to a replica that lagged): what it still
        holds stays readable, and no position in the lost events can be taken for one
        in the log as it goes on. This base keeps the epoch: its logs cannot lose
        their newest events.
        """
        return epoch

    @abc.abstractmethod
    async def read(self, room: str, after: int = 0, limit: int | None = None) -> History:
        """The room's logged events with ``seq > after``, oldest first."""

    async def archive(self, room: str, *, keep: int, dry_run: bool = False) -> Archived | None:
        """Move ``room``'s older events into its archive and trim its log to about
        ``keep`` events (:mod:`livehub.broker.archive`); an ``Archived`` or None.

        None here: a broker without a separate live log has nothing to archive (the
        memory broker's log is bounded in events and bytes already)."""
        return None

    async def hold_lock(self, name: str, owner: str, ttl: float) -> bool:
        """Take or extend the deployment-wide lock ``name`` for ``ttl`` seconds; True if
        ``owner`` holds it. One process per deployment here, so always True."""
        return True

    async def release_lock(self, name: str, owner: str) -> None:  # noqa: B027 - optional hook
        """Let go of ``name`` if ``owner`` holds it."""

    async def summaries(self, rooms: list[str]) -> dict[str, dict[str, str]]:
        """Each room's summary record (:mod:`livehub.summary`), read in one round trip;
        an empty record for a room that has none. Raises :class:`BrokerUnavailable`."""
        return {room: {} for room in rooms}

    @abc.abstractmethod
    async def subscribe(self, room: str, listener: Listener) -> None:
        """Deliver every event committed to ``room`` from now on to ``listener``."""

    @abc.abstractmethod
    async def unsubscribe(self, room: str) -> None:
        """Stop delivering ``room`` (its last local listener left)."""

    @abc.abstractmethod
    async def set_online(self, room: str, count: int) -> None:
        """Record how many people this process has in ``room``."""

    @abc.abstractmethod
    async def online(self, rooms: list[str]) -> dict[str, int]:
        """People in each room across every process."""
