"""The room log's events: one typed definition of each event's keys.

Every event of a room's log is a :class:`msgspec.Struct` of the tagged union
:data:`AnyEvent` (tag field ``t``). This module is the single definition of which
keys an event has and who may see each:

* public keys: everyone who may see the event gets them;
* moderator-only keys (:data:`WHO_DID_WHAT`, and per event ``MODERATOR_ONLY``): the
  staff record of who did what to whom, kept in moderators' copies and the log;
* :data:`ADDR`: a guest's address key, in the log only (no client gets it).

The log itself stays plain dicts on the wire and in memory (what brokers move and
:mod:`livehub.room` folds); :func:`decode` validates a logged dict against its struct
and :func:`encode` turns a struct into the dict that is committed. ``room.py``'s
key lists are derived from here (:func:`act_keys`), and ``tests/unit/test_events.py``
checks the event table in ``docs/protocol.md`` and ``static/js/state.js`` against it.

Events of a type this module does not know (written by a newer server during a
rolling deploy) decode to None: folds skip them rather than fail.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import msgspec

# Who did what: moderators' copies and the log keep these; nobody else gets them.
WHO_DID_WHAT: Final = frozenset({"by", "by_name", "prev", "of", "of_name", "pending"})
# A guest's address key: in the log (guest bans and per-address limits count by it),
# in no client's copy.
ADDR: Final = "addr"
# Keys every sequenced event has.
ENVELOPE: Final = frozenset({"t", "seq", "ts"})


class Event(msgspec.Struct, tag_field="t", kw_only=True, omit_defaults=True):
    """Base of every event. ``seq`` is set by the broker when it commits."""

    # Class-level facts (not keys): who may see what.
    MODERATOR_ONLY: ClassVar[frozenset[str]] = frozenset()
    # A moderation act: participants and speakers get only its public keys.
    ACT: ClassVar[bool] = False
    # Logged (False: only sent, as the coalesced ``votes``).
    LOGGED: ClassVar[bool] = True
    # Sent to clients at all (False: ``vote``, which reaches them as ``votes``).
    SENT: ClassVar[bool] = True
    # The whole event reaches moderators only (``ban``, ``unban``).
    TO_MODERATORS: ClassVar[bool] = False
    # livehub's keys beyond the contract's event table (docs/protocol.md "Extra keys").
    EXTENSION: ClassVar[frozenset[str]] = frozenset()

    ts: int
    seq: int | None = None


class _Act(Event, kw_only=True):
    MODERATOR_ONLY: ClassVar[frozenset[str]] = frozenset({"by", "by_name"})
    ACT: ClassVar[bool] = True
    EXTENSION: ClassVar[frozenset[str]] = frozenset({"by", "by_name"})

    by: str | None = None
    by_name: str | None = None


class Msg(Event, tag="msg", kw_only=True):
    MODERATOR_ONLY: ClassVar[frozenset[str]] = frozenset({"by", "by_name"})
    EXTENSION: ClassVar[frozenset[str]] = frozenset(
        {"guest", "announcement", "affiliation", "held", "reactions"})

    mid: str
    uid: str
    name: str
    role: str
    text: str
    reply_to: str | None = None
    guest: bool = False
    announcement: bool = False
    affiliation: str | None = None  # a signed-in person's badge
    held: bool = False  # held for a moderator (watched words): its author and moderators
    by: str | None = None  # a release: the moderator who let it through
    by_name: str | None = None
    reactions: dict[str, int] | None = None  # welcome's history and pinned posts only
    addr: str | None = None


class Q(Event, tag="q", kw_only=True):
    EXTENSION: ClassVar[frozenset[str]] = frozenset(
        {"anonymous", "guest", "answers", "affiliation"})

    qid: str
    uid: str | None  # None in the copies of those who may not know an anonymous asker
    name: str
    text: str
    votes: int
    state: str
    anonymous: bool = False
    guest: bool = False
    affiliation: str | None = None
    addr: str | None = None
    answers: list[dict[str, Any]] | None = None  # welcome's questions only


class Vote(Event, tag="vote", kw_only=True):
    """One person's vote (log only: clients get coalesced :class:`Votes`)."""

    SENT: ClassVar[bool] = False

    qid: str
    uid: str
    up: bool
    addr: str | None = None


class Votes(Event, tag="votes", kw_only=True):
    """A question's vote count (sent only, never logged)."""

    LOGGED: ClassVar[bool] = False

    qid: str
    votes: int


class Answer(Event, tag="answer", kw_only=True):
    EXTENSION: ClassVar[frozenset[str]] = frozenset({"role", "affiliation"})

    qid: str
    uid: str
    name: str
    role: str
    text: str
    affiliation: str | None = None


class QState(_Act, tag="qstate", kw_only=True):
    MODERATOR_ONLY: ClassVar[frozenset[str]] = frozenset({"by", "by_name", "prev"})
    EXTENSION: ClassVar[frozenset[str]] = frozenset({"by", "by_name", "prev"})

    qid: str
    state: str
    prev: str | None = None


class Pin(_Act, tag="pin", kw_only=True):
    mid: str


class Unpin(_Act, tag="unpin", kw_only=True):
    mid: str


class Del(_Act, tag="del", kw_only=True):
    # (``held``: moderators, and the author through livehub.moderation's view)
    MODERATOR_ONLY: ClassVar[frozenset[str]] = frozenset(
        {"by", "by_name", "of", "of_name", "pending", "held"})
    EXTENSION: ClassVar[frozenset[str]] = MODERATOR_ONLY

    mid: str | None = None
    qid: str | None = None
    pending: bool = False  # a question removed before it was approved: staff only
    held: bool = False  # a held post rejected: its author and moderators only
    of: str | None = None
    of_name: str | None = None


class Mute(_Act, tag="mute", kw_only=True):
    MODERATOR_ONLY: ClassVar[frozenset[str]] = frozenset({"by", "by_name", "name", "private"})
    EXTENSION: ClassVar[frozenset[str]] = MODERATOR_ONLY

    uid: str
    until: int | None
    name: str | None = None
    private: bool = False  # made through an anonymous question: moderators only


class Unmute(_Act, tag="unmute", kw_only=True):
    MODERATOR_ONLY: ClassVar[frozenset[str]] = frozenset({"by", "by_name", "private"})
    EXTENSION: ClassVar[frozenset[str]] = MODERATOR_ONLY

    uid: str
    until: int | None
    private: bool = False


class Ban(_Act, tag="ban", kw_only=True):
    """Reaches moderators only (everyone else sees the banned person's sockets close)."""

    ACT: ClassVar[bool] = False
    TO_MODERATORS: ClassVar[bool] = True
    EXTENSION: ClassVar[frozenset[str]] = frozenset({"by", "by_name", "name", "uid", "addr"})

    uid: str
    name: str | None = None
    addr: str | None = None


class Unban(_Act, tag="unban", kw_only=True):
    ACT: ClassVar[bool] = False
    TO_MODERATORS: ClassVar[bool] = True
    EXTENSION: ClassVar[frozenset[str]] = frozenset({"by", "by_name", "name", "uid", "addr"})

    uid: str
    name: str | None = None


class Settings(msgspec.Struct, kw_only=True):
    slow_mode: int
    guests: bool
    premoderate: bool


class Room(_Act, tag="room", kw_only=True):
    state: str
    settings: Settings


class Poll(Event, tag="poll", kw_only=True):
    MODERATOR_ONLY: ClassVar[frozenset[str]] = frozenset({"by", "by_name"})
    EXTENSION: ClassVar[frozenset[str]] = frozenset({"by", "by_name"})

    pid: str
    question: str
    options: list[str]
    multi: bool
    state: str
    counts: list[int]
    by: str | None = None
    by_name: str | None = None


class Ballot(Event, tag="ballot", kw_only=True):
    """One person's ballot (log only: clients get coalesced :class:`Tally`)."""

    SENT: ClassVar[bool] = False

    pid: str
    uid: str
    choices: list[int]
    addr: str | None = None


class Tally(Event, tag="tally", kw_only=True):
    """A poll's counts (sent only, never logged)."""

    LOGGED: ClassVar[bool] = False

    pid: str
    counts: list[int]


class PollState(Event, tag="pollstate", kw_only=True):
    MODERATOR_ONLY: ClassVar[frozenset[str]] = frozenset({"by", "by_name"})
    EXTENSION: ClassVar[frozenset[str]] = frozenset({"by", "by_name"})

    pid: str
    state: str
    by: str | None = None
    by_name: str | None = None


class Report(Event, tag="report", kw_only=True):
    """Reaches moderators only; the reporter is named to them alone."""

    TO_MODERATORS: ClassVar[bool] = True

    rid: str
    mid: str | None = None
    qid: str | None = None
    reason: str
    note: str
    uid: str
    name: str
    count: int


class Resolved(Event, tag="resolved", kw_only=True):
    TO_MODERATORS: ClassVar[bool] = True
    EXTENSION: ClassVar[frozenset[str]] = frozenset({"removed", "by", "by_name"})

    rid: str
    removed: bool = False  # resolved because its item was deleted
    by: str | None = None
    by_name: str | None = None


class React(Event, tag="react", kw_only=True):
    """One person's reaction (log only: clients get coalesced :class:`Reactions`)."""

    SENT: ClassVar[bool] = False

    mid: str
    emoji: str
    uid: str
    on: bool


class Reactions(Event, tag="reactions", kw_only=True):
    """A post's reaction counts (sent only, never logged)."""

    LOGGED: ClassVar[bool] = False

    mid: str
    counts: dict[str, int]


AnyEvent = (Msg | Q | Vote | Votes | Answer | QState | Pin | Unpin | Del | Mute | Unmute
            | Ban | Unban | Room | Poll | Ballot | Tally | PollState | Report | Resolved | React
            | Reactions)
ALL: Final[tuple[type[Event], ...]] = (Msg, Q, Vote, Votes, Answer, QState, Pin, Unpin, Del,
                                        Mute, Unmute, Ban, Unban, Room, Poll, Ballot, Tally,
                                        PollState, Report, Resolved, React, Reactions)
BY_TAG: Final[dict[str, type[Event]]] = {str(cls.__struct_config__.tag): cls for cls in ALL}


class BadEvent(ValueError):
    """A logged event of a known type whose keys do not fit its definition."""


def tag(cls: type[Event]) -> str:
    return str(cls.__struct_config__.tag)


def keys(cls: type[Event]) -> frozenset[str]:
    """Every key an event of ``cls`` may carry (``t`` included)."""
    return ENVELOPE | frozenset(cls.__struct_fields__)


def public_keys(cls: type[Event]) -> frozenset[str]:
    """What everyone who may see an event of ``cls`` gets of it."""
    return keys(cls) - cls.MODERATOR_ONLY - WHO_DID_WHAT - {ADDR}


def seen_keys(cls: type[Event]) -> frozenset[str]:
    """What the audience of an event of ``cls`` gets: its public keys, or for an event
    that reaches moderators only, every key but the log-only ``addr``."""
    if cls.TO_MODERATORS:
        return keys(cls) - {ADDR}
    return public_keys(cls)


def act_keys() -> dict[str, frozenset[str]]:
    """Per moderation act, the keys participants and speakers get."""
    return {tag(cls): public_keys(cls) for cls in ALL if cls.ACT}


def decode(raw: dict[str, Any]) -> Event | None:
    """``raw`` (a logged event) as its struct; None for a type this server does not
    know. Raises :class:`BadEvent` when a known type's keys are wrong."""
    cls = BY_TAG.get(raw.get("t"))  # type: ignore[arg-type]
    if cls is None:
        return None
    try:
        return msgspec.convert(raw, cls)
    except msgspec.ValidationError as exc:
        raise BadEvent(f"{raw.get('t')} event seq {raw.get('seq')}: {exc}") from None


def problem(raw: dict[str, Any]) -> str | None:
    """Why ``raw`` is not a valid event of its known type (None: it is, or unknown)."""
    try:
        decode(raw)
    except BadEvent as exc:
        return str(exc)
    return None


def encode(ev: Event) -> dict[str, Any]:
    """The dict form of ``ev`` that is committed and sent (defaults left out)."""
    out: dict[str, Any] = msgspec.to_builtins(ev)
    return out
