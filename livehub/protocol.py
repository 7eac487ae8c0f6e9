"""Wire protocol v1: frame types, validation, codecs, error and close codes.

Sans-I/O: nothing here touches a socket. The transport hands raw frame payloads
to :func:`parse_request` and sends what :class:`Codec` encodes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Final, Literal

import msgspec

SUBPROTOCOL_MSGPACK: Final = "livehub.v1.msgpack"
SUBPROTOCOL_JSON: Final = "livehub.v1.json"


class ErrorCode(enum.StrEnum):
    BAD_FRAME = "bad_frame"
    UNKNOWN_TYPE = "unknown_type"
    AUTH_FAILED = "auth_failed"
    FORBIDDEN = "forbidden"
    MUTED = "muted"
    BANNED = "banned"
    RATE_LIMITED = "rate_limited"
    SLOW_MODE = "slow_mode"
    TOO_LONG = "too_long"
    NOT_FOUND = "not_found"
    ROOM_CLOSED = "room_closed"
    POLL_CLOSED = "poll_closed"
    BLOCKED = "blocked"
    UNAVAILABLE = "unavailable"


class CloseCode(enum.IntEnum):
    NORMAL = 1000
    POLICY = 1008
    TOO_BIG = 1009
    SERVER_ERROR = 1011
    TRY_AGAIN = 1013
    AUTH_FAILED = 4401
    FORBIDDEN = 4403
    NO_SUCH_ROOM = 4404


class ProtocolError(Exception):
    """A request the server refuses; becomes an ``error`` frame."""

    def __init__(self, code: ErrorCode, message: str, rid: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.rid = rid


# --- field types -----------------------------------------------------------

RequestId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Ident = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**62)]
# Mutes longer than a year are "until lifted" in practice; the bound keeps `until`
# inside msgpack's integer range whatever a client sends.
MuteSeconds = Annotated[int, msgspec.Meta(ge=1, le=366 * 24 * 3600)]
SlowMode = Annotated[int, msgspec.Meta(ge=0, le=24 * 3600)]
QState = Literal["pending", "open", "answering", "answered", "dismissed"]
RoomStateName = Literal["open", "closed"]


class Request(msgspec.Struct, kw_only=True, frozen=True):
    """Base of every client frame. ``t`` is set by each subclass."""

    t: ClassVar[str]
    id: RequestId | None = None


class Hello(Request, frozen=True):
    t: ClassVar[str] = "hello"
    token: str | None = None
    name: str | None = None
    since: Seq | None = None
    epoch: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    watch: bool = False  # read-only: the presentation view and embeds


class Post(Request, frozen=True):
    t: ClassVar[str] = "post"
    text: str
    reply_to: Ident | None = None


class Ask(Request, frozen=True):
    t: ClassVar[str] = "ask"
    text: str
    anonymous: bool = False


class Vote(Request, frozen=True):
    t: ClassVar[str] = "vote"
    qid: Ident
    up: bool = True


class Answer(Request, frozen=True):
    t: ClassVar[str] = "answer"
    qid: Ident
    text: str


class SetQState(Request, frozen=True):
    t: ClassVar[str] = "qstate"
    qid: Ident
    state: QState


class Pin(Request, frozen=True):
    t: ClassVar[str] = "pin"
    mid: Ident


class Unpin(Request, frozen=True):
    t: ClassVar[str] = "unpin"
    mid: Ident


class Delete(Request, frozen=True):
    """Remove a post (``mid``) or a question (``qid``).

    Extension: ``mute`` (seconds, or ``true`` for until lifted) also mutes the
    author in the same commit, so a moderator removes and silences in one step.
    """

    t: ClassVar[str] = "del"
    mid: Ident | None = None
    qid: Ident | None = None
    mute: MuteSeconds | bool | None = None


class Mute(Request, frozen=True):
    """Mute ``uid``. Extension: or ``qid``, the asker of that question, so that a
    moderator can mute an anonymous asker without the room learning who it was."""

    t: ClassVar[str] = "mute"
    uid: Ident | None = None
    qid: Ident | None = None
    seconds: MuteSeconds | None = None


class Unmute(Request, frozen=True):
    t: ClassVar[str] = "unmute"
    uid: Ident


class Ban(Request, frozen=True):
    """Ban ``uid``. Extension: or ``qid``, the asker of that question (see ``Mute``)."""

    t: ClassVar[str] = "ban"
    uid: Ident | None = None
    qid: Ident | None = None


class Unban(Request, frozen=True):
    """Extension: lift a ban."""

    t: ClassVar[str] = "unban"
    uid: Ident


class Settings(Request, frozen=True):
    t: ClassVar[str] = "settings"
    slow_mode: SlowMode | None = None
    guests: bool | None = None
    premoderate: bool | None = None
    state: RoomStateName | None = None


# Polls: lengths of the texts are checked by the room core (too_long, bad_frame);
# the counts of options and choices here (bad_frame).
PollOptions = Annotated[list[str], msgspec.Meta(min_length=2, max_length=10)]
PollChoices = Annotated[list[Annotated[int, msgspec.Meta(ge=0, le=9)]],
                        msgspec.Meta(min_length=1, max_length=10)]


class OpenPoll(Request, frozen=True):
    t: ClassVar[str] = "poll"
    question: str
    options: PollOptions
    multi: bool = False


class Ballot(Request, frozen=True):
    t: ClassVar[str] = "ballot"
    pid: Ident
    choices: PollChoices


class SetPollState(Request, frozen=True):
    t: ClassVar[str] = "pollstate"
    pid: Ident
    state: Literal["open", "closed"]


class Report(Request, frozen=True):
    """Flag a post (``mid``) or a question (``qid``) to the moderators."""

    t: ClassVar[str] = "report"
    reason: Literal["abuse", "spam", "off_topic", "other"]
    mid: Ident | None = None
    qid: Ident | None = None
    note: str = ""  # over NOTE_MAX is too_long (checked by the room core), not bad_frame


class Resolve(Request, frozen=True):
    t: ClassVar[str] = "resolve"
    rid: Ident


class Release(Request, frozen=True):
    """Let a post held by the watched words through to everyone."""

    t: ClassVar[str] = "release"
    mid: Ident


Emoji = Literal["thumbs_up", "heart", "laugh", "wow", "clap", "thanks"]


class React(Request, frozen=True):
    t: ClassVar[str] = "react"
    mid: Ident
    emoji: Emoji
    on: bool = True


class Ping(Request, frozen=True):
    """Extension: an application-level round trip; answered with ``ok``."""

    t: ClassVar[str] = "ping"


REQUEST_TYPES: Final[dict[str, type[Request]]] = {
    cls.t: cls
    for cls in (
        Hello, Post, Ask, Vote, Answer, SetQState, Pin, Unpin, Delete,
        Mute, Unmute, Ban, Unban, Settings, Ping, OpenPoll, Ballot, SetPollState,
        Report, Resolve, Release, React,
    )
}

_C0_ALLOWED = frozenset("\t\r\n")
_C0 = frozenset(chr(c) for c in range(32)) - _C0_ALLOWED


def has_forbidden_control(text: str) -> bool:
    """True when ``text`` holds a C0 control other than tab, CR and LF."""
    return not _C0.isdisjoint(text)


# A name is one line, and cannot reorder the text around it: no CR, LF or tab (nor any
# other C0 control), no line or paragraph separator, no bidirectional embedding,
# override or isolate (U+202A to U+202E, U+2066 to U+2069).
_NOT_IN_NAMES = (_C0 | frozenset("\t\r\n\u2028\u2029\x85")
                 | frozenset(chr(c) for c in range(0x202A, 0x202F))
                 | frozenset(chr(c) for c in range(0x2066, 0x206A)))


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a display name (None: it can)."""
    if _NOT_IN_NAMES.isdisjoint(name):
        return None
    return "a name must be one line, without tabs or bidirectional controls"


# --- codecs ----------------------------------------------------------------


Frame = bytes | str


@dataclass(frozen=True, slots=True)
class Codec:
    """One wire encoding. ``binary`` tells which WebSocket frame type it uses."""

    name: str
    subprotocol: str
    binary: bool

    _msgpack_enc: ClassVar[msgspec.msgpack.Encoder] = msgspec.msgpack.Encoder()
    _json_enc: ClassVar[msgspec.json.Encoder] = msgspec.json.Encoder()

    def encode(self, obj: Any) -> bytes:
        if self.binary:
            return self._msgpack_enc.encode(obj)
        return self._json_enc.encode(obj)

    def decode(self, data: bytes | str) -> Any:
        if self.binary:
            if isinstance(data, str):
                raise ProtocolError(ErrorCode.BAD_FRAME, "expected a binary msgpack frame")
            return msgspec.msgpack.decode(data)
        return msgspec.json.decode(data)

    def frame(self, obj: Any) -> Frame:
        """One WebSocket frame payload: bytes for msgpack, text for JSON."""
        if self.binary:
            return self._msgpack_enc.encode(obj)
        return self._json_enc.encode(obj).decode()

    def join(self, frames: list[Frame]) -> Frame:
        """Coalesce several encoded events into one frame (PROTOCOL.md allows it)."""
        if self.binary:
            return b"".join(frames)  # type: ignore[arg-type]
        return "\n".join(frames)  # type: ignore[arg-type]


MSGPACK: Final = Codec("msgpack", SUBPROTOCOL_MSGPACK, True)
JSON: Final = Codec("json", SUBPROTOCOL_JSON, False)
CODECS: Final = (MSGPACK, JSON)


def negotiate(offered: list[str]) -> tuple[Codec, str | None]:
    """Pick the codec: msgpack when offered, else JSON (named or by default).

    Returns the codec and the subprotocol to echo in the handshake (None when the
    client offered none of ours).
    """
    if SUBPROTOCOL_MSGPACK in offered:
        return MSGPACK, SUBPROTOCOL_MSGPACK
    if SUBPROTOCOL_JSON in offered:
        return JSON, SUBPROTOCOL_JSON
    return JSON, None


def decode_any(codec: Codec, data: bytes | str) -> Any:
    """Decode one client frame payload, turning every decoder failure into bad_frame."""
    try:
        return codec.decode(data)
    except ProtocolError:
        raise
    except RecursionError:
        raise ProtocolError(ErrorCode.BAD_FRAME, "frame is nested too deeply") from None
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"cannot decode frame: {exc}") from None


def parse_request(codec: Codec, data: bytes | str) -> Request:
    """Decode and validate one client frame into a typed request."""
    obj = decode_any(codec, data)
    return to_request(obj)


def to_request(obj: Any) -> Request:
    """Validate a decoded frame (a plain map) into its typed request."""
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.BAD_FRAME, "a frame must be a map")
    rid = obj.get("id")
    rid = rid if isinstance(rid, str) and 1 <= len(rid) <= 64 else None
    t = obj.get("t")
    if not isinstance(t, str):
        raise ProtocolError(ErrorCode.BAD_FRAME, "a frame needs a string 't'", rid)
    cls = REQUEST_TYPES.get(t)
    if cls is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {t[:40]!r}", rid)
    try:
        req = msgspec.convert(obj, cls, strict=True)
    except msgspec.ValidationError as exc:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"{t}: {exc}", rid) from None
    except RecursionError:
        raise ProtocolError(ErrorCode.BAD_FRAME, "frame is nested too deeply", rid) from None
    _check_text_fields(req)
    return req


def _check_text_fields(req: Request) -> None:
    for field in ("text", "name", "note"):
        value = getattr(req, field, None)
        if isinstance(value, str) and has_forbidden_control(value):
            raise ProtocolError(
                ErrorCode.BAD_FRAME, f"{field} holds a control character", req.id
            )
    if isinstance(req, Delete | Report) and (req.mid is None) == (req.qid is None):
        raise ProtocolError(ErrorCode.BAD_FRAME, f"{req.t} needs exactly one of mid or qid",
                            req.id)
    if isinstance(req, Mute | Ban) and (req.uid is None) == (req.qid is None):
        raise ProtocolError(ErrorCode.BAD_FRAME, f"{req.t} needs exactly one of uid or qid",
                            req.id)
    if isinstance(req, Hello) and req.name is not None:
        if not 1 <= len(req.name) <= 50:
            raise ProtocolError(ErrorCode.BAD_FRAME, "name must be 1 to 50 characters", req.id)
        problem = name_problem(req.name)
        if problem is not None:
            raise ProtocolError(ErrorCode.BAD_FRAME, problem, req.id)
    if isinstance(req, Hello) and req.watch and req.name is not None:
        raise ProtocolError(ErrorCode.BAD_FRAME, "a watcher joins without a name", req.id)


# --- server frames -----------------------------------------------------------


def error_frame(code: ErrorCode, message: str, rid: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"t": "error", "code": str(code), "message": message}
    if rid is not None:
        frame["id"] = rid
    return frame


def ok_frame(rid: str | None, /, **fields: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {"t": "ok", **fields}
    if rid is not None:
        frame["id"] = rid
    return frame
