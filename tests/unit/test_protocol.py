"""Wire protocol v1: request parsing and validation in both codecs, negotiation, framing.

Frames are built with independent encoders (the ``msgpack`` library and the
standard ``json`` module), so these tests do not trust msgspec to check itself.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest

from livehub import protocol as p
from livehub.protocol import (
    CODECS,
    JSON,
    MSGPACK,
    SUBPROTOCOL_JSON,
    SUBPROTOCOL_MSGPACK,
    Codec,
    ErrorCode,
    ProtocolError,
    error_frame,
    has_forbidden_control,
    negotiate,
    ok_frame,
    parse_request,
    to_request,
)

EMOJI = "\N{GRINNING FACE}"


def encode(codec: Codec, obj: Any) -> bytes | str:
    """A client frame as another implementation would send it."""
    if codec is MSGPACK:
        data: bytes = msgpack.packb(obj, use_bin_type=True)
        return data
    return json.dumps(obj)


def refused(codec: Codec, data: bytes | str) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse_request(codec, data)
    return info.value


def refused_obj(codec: Codec, obj: Any) -> ProtocolError:
    return refused(codec, encode(codec, obj))


both_codecs = pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)


# --- every request type, both codecs --------------------------------------------------------

VALID: list[tuple[dict[str, Any], p.Request]] = [
    ({"t": "hello"}, p.Hello()),
    ({"t": "hello", "token": "a.b.c", "since": 17, "epoch": "e-1", "id": "h1"},
     p.Hello(token="a.b.c", since=17, epoch="e-1", id="h1")),
    ({"t": "hello", "name": "Guest Person"}, p.Hello(name="Guest Person")),
    ({"t": "hello", "since": 0}, p.Hello(since=0)),
    ({"t": "hello", "since": 2**62}, p.Hello(since=2**62)),
    ({"t": "post", "text": "hi"}, p.Post(text="hi")),
    ({"t": "post", "text": "re", "reply_to": "m1", "id": "r"},
     p.Post(text="re", reply_to="m1", id="r")),
    ({"t": "ask", "text": "why?"}, p.Ask(text="why?", anonymous=False)),
    ({"t": "ask", "text": "why?", "anonymous": True}, p.Ask(text="why?", anonymous=True)),
    ({"t": "vote", "qid": "q1"}, p.Vote(qid="q1", up=True)),
    ({"t": "vote", "qid": "q1", "up": False}, p.Vote(qid="q1", up=False)),
    ({"t": "answer", "qid": "q1", "text": "because"}, p.Answer(qid="q1", text="because")),
    *[({"t": "qstate", "qid": "q1", "state": s}, p.SetQState(qid="q1", state=s))
      for s in ("pending", "open", "answering", "answered", "dismissed")],
    ({"t": "pin", "mid": "m1"}, p.Pin(mid="m1")),
    ({"t": "unpin", "mid": "m1"}, p.Unpin(mid="m1")),
    ({"t": "del", "mid": "m1"}, p.Delete(mid="m1")),
    ({"t": "del", "qid": "q1"}, p.Delete(qid="q1")),
    ({"t": "del", "qid": "q1", "mute": True}, p.Delete(qid="q1", mute=True)),
    ({"t": "del", "mid": "m1", "mute": 60}, p.Delete(mid="m1", mute=60)),
    ({"t": "del", "mid": "m1", "mute": False}, p.Delete(mid="m1", mute=False)),
    ({"t": "mute", "uid": "u1"}, p.Mute(uid="u1")),
    ({"t": "mute", "uid": "u1", "seconds": 300}, p.Mute(uid="u1", seconds=300)),
    ({"t": "mute", "uid": "u1", "seconds": 366 * 24 * 3600},
     p.Mute(uid="u1", seconds=366 * 24 * 3600)),
    ({"t": "unmute", "uid": "u1"}, p.Unmute(uid="u1")),
    ({"t": "ban", "uid": "u1"}, p.Ban(uid="u1")),
    ({"t": "unban", "uid": "u1"}, p.Unban(uid="u1")),
    ({"t": "settings"}, p.Settings()),
    ({"t": "settings", "slow_mode": 30, "guests": False, "premoderate": True,
      "state": "closed"},
     p.Settings(slow_mode=30, guests=False, premoderate=True, state="closed")),
    ({"t": "settings", "slow_mode": 0, "state": "open"}, p.Settings(slow_mode=0, state="open")),
    ({"t": "ping", "id": "x" * 64}, p.Ping(id="x" * 64)),
    ({"t": "ping", "id": None}, p.Ping()),
    ({"t": "poll", "question": "Q?", "options": ["a", "b"]},
     p.OpenPoll(question="Q?", options=["a", "b"])),
    ({"t": "ballot", "pid": "p1", "choices": [1]}, p.Ballot(pid="p1", choices=[1])),
    ({"t": "pollstate", "pid": "p1", "state": "closed"},
     p.SetPollState(pid="p1", state="closed")),
    ({"t": "hello", "watch": True}, p.Hello(watch=True)),
    ({"t": "report", "mid": "m1", "reason": "spam"}, p.Report(mid="m1", reason="spam")),
    ({"t": "report", "qid": "q1", "reason": "other", "note": "n"},
     p.Report(qid="q1", reason="other", note="n")),
    ({"t": "resolve", "rid": "r1"}, p.Resolve(rid="r1")),
    ({"t": "release", "mid": "m1"}, p.Release(mid="m1")),
    ({"t": "react", "mid": "m1", "emoji": "heart"}, p.React(mid="m1", emoji="heart")),
    ({"t": "react", "mid": "m1", "emoji": "clap", "on": False},
     p.React(mid="m1", emoji="clap", on=False)),
]


def test_valid_frames_cover_every_request_type() -> None:
    assert {obj["t"] for obj, _ in VALID} == set(p.REQUEST_TYPES)


@both_codecs
@pytest.mark.parametrize(("obj", "expected"), VALID, ids=[o["t"] for o, _ in VALID])
def test_parse_request_every_type(codec: Codec, obj: dict[str, Any],
                                  expected: p.Request) -> None:
    req = parse_request(codec, encode(codec, obj))
    assert type(req) is type(expected)
    assert req == expected
    assert req.t == obj["t"]


@pytest.mark.parametrize(("obj", "expected"), VALID, ids=[o["t"] for o, _ in VALID])
def test_json_codec_accepts_bytes_too(obj: dict[str, Any], expected: p.Request) -> None:
    assert parse_request(JSON, json.dumps(obj).encode()) == expected


@both_codecs
def test_unknown_keys_are_ignored(codec: Codec) -> None:
    obj = {"t": "post", "text": "x", "colour": "red", "nested": {"a": [1, 2, None]},
           "up": "not a vote field here"}
    assert parse_request(codec, encode(codec, obj)) == p.Post(text="x")


@both_codecs
def test_text_is_delivered_exactly_as_sent(codec: Codec) -> None:
    text = f"  <i>x</i> &amp;\n\r\t cafe\u0301 caf\u00e9 \u202e{EMOJI}\u2028 \x7f "
    req = parse_request(codec, encode(codec, {"t": "post", "text": text}))
    assert isinstance(req, p.Post)
    assert req.text == text


def test_json_surrogate_pair_escape_is_one_code_point() -> None:
    req = parse_request(JSON, '{"t":"post","text":"\\ud83d\\ude00"}')
    assert isinstance(req, p.Post)
    assert req.text == EMOJI


# --- bad frames, both codecs ------------------------------------------------------------------

NOT_A_MAP: list[Any] = [[], ["t", "post"], "post", 1, 1.5, None, True]
BAD_T: list[Any] = [{"text": "x"}, {"t": 1}, {"t": None}, {"t": True}, {"t": ["post"]},
                    {"t": {"t": "post"}}, {"T": "post"}]
UNKNOWN_T: list[Any] = [{"t": "dance"}, {"t": ""}, {"t": "Post"}, {"t": "post "},
                        {"t": "error"}, {"t": "welcome"}, {"t": "msg"}, {"t": "x" * 1000}]

WRONG_TYPES: list[dict[str, Any]] = [
    # missing required keys
    {"t": "post"}, {"t": "ask"}, {"t": "vote"}, {"t": "answer", "qid": "q"},
    {"t": "qstate", "qid": "q"}, {"t": "pin"}, {"t": "mute"}, {"t": "ban"},
    # int for str
    {"t": "post", "text": 5}, {"t": "post", "text": "x", "reply_to": 5},
    {"t": "vote", "qid": 1}, {"t": "pin", "mid": 1}, {"t": "mute", "uid": 7},
    {"t": "hello", "token": 5}, {"t": "hello", "name": 5}, {"t": "hello", "epoch": 5},
    # other wrong types
    {"t": "post", "text": None}, {"t": "post", "text": ["x"]}, {"t": "post", "text": 1.5},
    {"t": "post", "text": {"a": "b"}}, {"t": "ask", "text": "q", "anonymous": "yes"},
    {"t": "hello", "since": "5"}, {"t": "hello", "since": 1.0},
    # int for bool, bool for int
    {"t": "ask", "text": "q", "anonymous": 1}, {"t": "vote", "qid": "q", "up": 1},
    {"t": "vote", "qid": "q", "up": 0}, {"t": "settings", "guests": 0},
    {"t": "hello", "since": True}, {"t": "mute", "uid": "u", "seconds": True},
    {"t": "settings", "slow_mode": True}, {"t": "settings", "slow_mode": False},
    # out of range or not one of the allowed values
    {"t": "hello", "since": -1}, {"t": "hello", "since": 2**62 + 1},
    {"t": "hello", "epoch": "e" * 129},
    {"t": "mute", "uid": "u", "seconds": 0}, {"t": "mute", "uid": "u", "seconds": -5},
    {"t": "mute", "uid": "u", "seconds": 366 * 24 * 3600 + 1},
    {"t": "del", "mid": "m", "mute": 0}, {"t": "del", "mid": "m", "mute": "yes"},
    {"t": "del", "mid": "m", "mute": 1.5},
    {"t": "settings", "slow_mode": -1}, {"t": "settings", "slow_mode": 24 * 3600 + 1},
    {"t": "settings", "state": "paused"}, {"t": "settings", "state": True},
    {"t": "qstate", "qid": "q", "state": "closed"}, {"t": "qstate", "qid": "q", "state": ""},
    {"t": "vote", "qid": ""}, {"t": "vote", "qid": "q" * 129},
    {"t": "post", "text": "x", "reply_to": ""},
    # the request id
    {"t": "ping", "id": 5}, {"t": "ping", "id": ""}, {"t": "ping", "id": "x" * 65},
    {"t": "ping", "id": True}, {"t": "ping", "id": ["a"]}, {"t": "post", "text": "x", "id": 1},
    # hello name
    {"t": "hello", "name": ""}, {"t": "hello", "name": "x" * 51},
    {"t": "hello", "name": EMOJI * 51},
    # del needs exactly one of mid and qid
    {"t": "del"}, {"t": "del", "mid": "m", "qid": "q"}, {"t": "del", "mute": True},
    {"t": "del", "mid": None, "qid": None},
]


@both_codecs
@pytest.mark.parametrize("obj", NOT_A_MAP, ids=repr)
def test_a_frame_that_is_not_a_map_is_bad_frame(codec: Codec, obj: Any) -> None:
    err = refused_obj(codec, obj)
    assert err.code == ErrorCode.BAD_FRAME
    assert err.rid is None


@both_codecs
@pytest.mark.parametrize("obj", BAD_T, ids=repr)
def test_a_frame_without_a_string_t_is_bad_frame(codec: Codec, obj: Any) -> None:
    assert refused_obj(codec, obj).code == ErrorCode.BAD_FRAME


@both_codecs
@pytest.mark.parametrize("obj", UNKNOWN_T, ids=lambda o: repr(o)[:30])
def test_an_unknown_t_is_unknown_type(codec: Codec, obj: Any) -> None:
    assert refused_obj(codec, obj).code == ErrorCode.UNKNOWN_TYPE


@both_codecs
@pytest.mark.parametrize("obj", WRONG_TYPES, ids=lambda o: repr(o)[:60])
def test_a_wrong_value_for_a_known_key_is_bad_frame(codec: Codec, obj: dict[str, Any]) -> None:
    assert refused_obj(codec, obj).code == ErrorCode.BAD_FRAME


@both_codecs
@pytest.mark.parametrize("name", ["x", "x" * 50, EMOJI * 50, " spaced  "])
def test_hello_name_of_1_to_50_code_points_is_accepted(codec: Codec, name: str) -> None:
    req = parse_request(codec, encode(codec, {"t": "hello", "name": name}))
    assert isinstance(req, p.Hello)
    assert req.name == name


C0_FORBIDDEN = [chr(c) for c in range(32) if chr(c) not in "\t\r\n"]
TEXT_FRAMES = [
    ("post", {"t": "post"}, "text"),
    ("ask", {"t": "ask"}, "text"),
    ("answer", {"t": "answer", "qid": "q"}, "text"),
    ("hello", {"t": "hello"}, "name"),
]


@both_codecs
@pytest.mark.parametrize("char", C0_FORBIDDEN, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize(("kind", "base", "key"), TEXT_FRAMES, ids=[k for k, _, _ in TEXT_FRAMES])
def test_c0_controls_in_text_and_name_are_bad_frame(codec: Codec, char: str, kind: str,
                                                    base: dict[str, Any], key: str) -> None:
    err = refused_obj(codec, {**base, key: f"a{char}b", "id": "c0"})
    assert err.code == ErrorCode.BAD_FRAME
    assert err.rid == "c0"


POST_TEXT_FRAMES = [f for f in TEXT_FRAMES if f[0] != "hello"]
# What a name may not hold: it is one line and cannot reorder the text around it.
NAME_FORBIDDEN = ["\t", "\r", "\n", "\x85", "\u2028", "\u2029",
                  *(chr(c) for c in range(0x202A, 0x202F)),
                  *(chr(c) for c in range(0x2066, 0x206A))]


@both_codecs
@pytest.mark.parametrize("char", ["\t", "\r", "\n", "\x7f", "\x85", "\u2028"],
                         ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize(("kind", "base", "key"), POST_TEXT_FRAMES,
                         ids=[k for k, _, _ in POST_TEXT_FRAMES])
def test_tab_cr_lf_and_other_controls_are_allowed(codec: Codec, char: str, kind: str,
                                                  base: dict[str, Any], key: str) -> None:
    req = parse_request(codec, encode(codec, {**base, key: f"a{char}b"}))
    assert getattr(req, key) == f"a{char}b"


@both_codecs
@pytest.mark.parametrize("char", NAME_FORBIDDEN, ids=lambda c: f"U+{ord(c):04X}")
def test_names_are_one_line_without_bidi_controls(codec: Codec, char: str) -> None:
    err = refused_obj(codec, {"t": "hello", "name": f"Ann{char}Smith", "id": "n1"})
    assert err.code == ErrorCode.BAD_FRAME
    assert err.rid == "n1"


@both_codecs
@pytest.mark.parametrize("name", ["Ann Smith", "Zoë O'Brien-Ng",
                                  "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
                                  "\u200fRLM mark is not a control"])
def test_ordinary_names_are_welcome(codec: Codec, name: str) -> None:
    req = parse_request(codec, encode(codec, {"t": "hello", "name": name}))
    assert req.name == name


@pytest.mark.parametrize("t", ["mute", "ban"])
def test_mute_and_ban_need_exactly_one_of_uid_or_qid(t: str) -> None:
    for body in ({"t": t}, {"t": t, "uid": "u", "qid": "q"}):
        err = refused_obj(JSON, {**body, "id": "x"})
        assert err.code == ErrorCode.BAD_FRAME


def test_has_forbidden_control() -> None:
    assert not has_forbidden_control("")
    assert not has_forbidden_control("plain\ttext\r\n")
    assert all(has_forbidden_control(f"x{c}") for c in C0_FORBIDDEN)
    assert not has_forbidden_control("\x7f\x80\x9f")


# --- the request id on errors -------------------------------------------------------------------


@both_codecs
def test_errors_carry_a_valid_request_id(codec: Codec) -> None:
    assert refused_obj(codec, {"t": "post", "text": 5, "id": "a1"}).rid == "a1"
    assert refused_obj(codec, {"t": "dance", "id": "a2"}).rid == "a2"
    assert refused_obj(codec, {"t": 5, "id": "a3"}).rid == "a3"
    assert refused_obj(codec, {"t": "del", "id": "a4"}).rid == "a4"
    assert refused_obj(codec, {"t": "hello", "name": "", "id": "a5"}).rid == "a5"


@both_codecs
@pytest.mark.parametrize("rid", [5, "", "x" * 65, None, True])
def test_errors_leave_out_an_invalid_request_id(codec: Codec, rid: Any) -> None:
    assert refused_obj(codec, {"t": "post", "text": 5, "id": rid}).rid is None


# --- frames that do not decode -----------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"", b"\xc1", b"\x82\xa1t", b"\x82\xa1t\xa4post\xa4text\xa1\xff",  # truncated, bad UTF-8
    b"\x81\x80\x01",  # a map as a map key
    b"\x83\xa1t\xa4post\xa4text\xa1x\xa1e\xd5\xff\x00\x00",  # a malformed timestamp
    msgpack.packb({"t": "ping"}) * 2,  # two requests in one client frame
    msgpack.packb({"t": "post", "text": b"bytes, not str"}),
    msgpack.packb({1: "x", "t": "ping"}),
], ids=repr)
def test_invalid_msgpack_is_bad_frame(data: bytes) -> None:
    assert refused(MSGPACK, data).code == ErrorCode.BAD_FRAME


@pytest.mark.parametrize("data", [
    "", "{", "{'t': 'ping'}", '{"t": "ping",}', '{"t": "ping"} {"t": "ping"}',
    '{"t": "ping"}\n{"t": "ping"}', "NaN", '{"t": "post", "text": NaN}',
    '{"t": "post", "text": "\\ud800"}', '{"t": "post", "text": "\\udc00x"}',
    '{"t": "hello", "since": 1e400}',
    '\ufeff{"t": "ping"}',
], ids=repr)
def test_invalid_json_is_bad_frame(data: str) -> None:
    assert refused(JSON, data).code == ErrorCode.BAD_FRAME


@pytest.mark.parametrize("data", [
    b'{"t": "post", "text": "\xff"}', b'{"t": "post", "text": "\xed\xa0\x80"}',
    b'{"t": "post", "text": "\xc3"}', b"\xef\xbb\xbf{\"t\": \"ping\"}",
], ids=repr)
def test_invalid_utf8_in_json_is_bad_frame(data: bytes) -> None:
    assert refused(JSON, data).code == ErrorCode.BAD_FRAME


def test_a_lone_surrogate_in_a_json_text_frame_is_bad_frame() -> None:
    assert refused(JSON, '{"t": "post", "text": "\ud800"}').code == ErrorCode.BAD_FRAME


def test_a_text_frame_on_the_msgpack_codec_is_bad_frame() -> None:
    assert refused(MSGPACK, '{"t": "ping"}').code == ErrorCode.BAD_FRAME
    assert refused(MSGPACK, msgpack.packb({"t": "ping"}).decode("latin-1")).code == (
        ErrorCode.BAD_FRAME)
    assert refused(MSGPACK, "").code == ErrorCode.BAD_FRAME


DEPTH = 10_000


@pytest.mark.parametrize("data", [
    "[" * DEPTH + "]" * DEPTH,
    '{"a":' * DEPTH + "1" + "}" * DEPTH,
    '{"t": "post", "text": "x", "extra": ' + "[" * DEPTH + "]" * DEPTH + "}",
    '{"t": "post", "text": ' + "[" * DEPTH + "]" * DEPTH + "}",
], ids=["array", "map", "unknown-key", "known-key"])
def test_deeply_nested_json_is_bad_frame(data: str) -> None:
    assert refused(JSON, data).code == ErrorCode.BAD_FRAME


@pytest.mark.parametrize("data", [
    b"\x91" * DEPTH + b"\x90",
    b"\x81\xa1a" * DEPTH + b"\x01",
    b"\x83\xa1t\xa4post\xa4text\xa1x\xa5extra" + b"\x91" * DEPTH + b"\x90",
], ids=["array", "map", "unknown-key"])
def test_deeply_nested_msgpack_is_bad_frame(data: bytes) -> None:
    assert refused(MSGPACK, data).code == ErrorCode.BAD_FRAME


def test_deeply_nested_value_given_to_to_request_is_bad_frame() -> None:
    nested: Any = []
    for _ in range(DEPTH):
        nested = [nested]
    with pytest.raises(ProtocolError) as info:
        to_request({"t": "post", "text": nested})
    assert info.value.code == ErrorCode.BAD_FRAME


@pytest.mark.parametrize("key", ["since", "seconds", "slow_mode", "mute"])
@pytest.mark.parametrize("value", [2**70, -(2**70), 2**64, 10**400])
def test_huge_ints_in_json_are_bad_frame(key: str, value: int) -> None:
    base = {"since": {"t": "hello"}, "seconds": {"t": "mute", "uid": "u"},
            "slow_mode": {"t": "settings"}, "mute": {"t": "del", "mid": "m"}}[key]
    assert refused(JSON, json.dumps({**base, key: value})).code == ErrorCode.BAD_FRAME


@pytest.mark.parametrize("key", ["since", "seconds", "slow_mode", "mute"])
@pytest.mark.parametrize("value", [2**64 - 1, 2**63, -(2**63)])
def test_huge_ints_in_msgpack_are_bad_frame(key: str, value: int) -> None:
    base = {"since": {"t": "hello"}, "seconds": {"t": "mute", "uid": "u"},
            "slow_mode": {"t": "settings"}, "mute": {"t": "del", "mid": "m"}}[key]
    assert refused(MSGPACK, msgpack.packb({**base, key: value})).code == ErrorCode.BAD_FRAME


def test_to_request_refuses_a_non_map() -> None:
    for obj in (None, [], "x", b"x", 3, set()):
        with pytest.raises(ProtocolError) as info:
            to_request(obj)
        assert info.value.code == ErrorCode.BAD_FRAME


def test_protocol_error_carries_code_message_and_id() -> None:
    err = ProtocolError(ErrorCode.MUTED, "you are muted", "r9")
    assert (err.code, err.message, err.rid, str(err)) == (ErrorCode.MUTED, "you are muted",
                                                          "r9", "you are muted")


# --- negotiation ------------------------------------------------------------------------------


@pytest.mark.parametrize(("offered", "codec", "echo"), [
    ([SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON], MSGPACK, SUBPROTOCOL_MSGPACK),
    ([SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK], MSGPACK, SUBPROTOCOL_MSGPACK),
    (["chat", SUBPROTOCOL_MSGPACK], MSGPACK, SUBPROTOCOL_MSGPACK),
    ([SUBPROTOCOL_MSGPACK], MSGPACK, SUBPROTOCOL_MSGPACK),
    ([SUBPROTOCOL_JSON], JSON, SUBPROTOCOL_JSON),
    (["chat", SUBPROTOCOL_JSON], JSON, SUBPROTOCOL_JSON),
    ([], JSON, None),
    (["chat", "livehub.v2.msgpack", "LIVEHUB.V1.MSGPACK"], JSON, None),
])
def test_negotiate(offered: list[str], codec: Codec, echo: str | None) -> None:
    assert negotiate(offered) == (codec, echo)


def test_subprotocol_names() -> None:
    assert (SUBPROTOCOL_MSGPACK, SUBPROTOCOL_JSON) == ("livehub.v1.msgpack", "livehub.v1.json")
    assert (MSGPACK.subprotocol, MSGPACK.binary) == (SUBPROTOCOL_MSGPACK, True)
    assert (JSON.subprotocol, JSON.binary) == (SUBPROTOCOL_JSON, False)


# --- server frames and coalescing -----------------------------------------------------------------

EVENTS: list[dict[str, Any]] = [
    {"t": "msg", "mid": "m1", "uid": "u1", "name": "Zo\u00eb", "role": "participant",
     "text": "two\nlines \u2028 and {\"json\"} \x7f", "seq": 1, "ts": 1_700_000_000_000},
    {"t": "votes", "qid": "q1", "votes": 3, "seq": 2, "ts": 1_700_000_000_001},
    {"t": "q", "qid": "q2", "uid": None, "name": "Anonymous", "text": EMOJI, "votes": 0,
     "state": "open", "anonymous": True, "seq": 3, "ts": 1},
    {"t": "mute", "uid": "u1", "until": None, "seq": 4, "ts": 2},
    {"t": "presence", "online": 12},
]


def test_msgpack_join_reads_back_map_by_map() -> None:
    joined = MSGPACK.join([MSGPACK.frame(ev) for ev in EVENTS])
    assert isinstance(joined, bytes)
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(joined)
    assert list(unpacker) == EVENTS


def test_json_join_reads_back_line_by_line() -> None:
    joined = JSON.join([JSON.frame(ev) for ev in EVENTS])
    assert isinstance(joined, str)
    lines = joined.split("\n")
    assert len(lines) == len(EVENTS)
    assert [json.loads(line) for line in lines] == EVENTS


@both_codecs
def test_join_of_one_frame_is_that_frame(codec: Codec) -> None:
    frame = codec.frame(EVENTS[0])
    assert codec.join([frame]) == frame


def test_frame_types_match_the_websocket_frame_kind() -> None:
    assert isinstance(MSGPACK.frame({"t": "ok"}), bytes)
    assert isinstance(JSON.frame({"t": "ok"}), str)
    assert isinstance(JSON.encode({"t": "ok"}), bytes)
    assert msgpack.unpackb(MSGPACK.encode(EVENTS[0]), raw=False) == EVENTS[0]
    assert json.loads(JSON.encode(EVENTS[0])) == EVENTS[0]


@both_codecs
def test_decode_round_trips_encode(codec: Codec) -> None:
    for ev in EVENTS:
        assert codec.decode(codec.frame(ev)) == ev


def test_error_frame() -> None:
    frame = error_frame(ErrorCode.NOT_FOUND, "no post m1", "r1")
    assert frame == {"t": "error", "code": "not_found", "message": "no post m1", "id": "r1"}
    assert type(frame["code"]) is str
    assert error_frame(ErrorCode.BAD_FRAME, "bad") == {"t": "error", "code": "bad_frame",
                                                       "message": "bad"}
    assert msgpack.unpackb(MSGPACK.encode(frame), raw=False) == frame


def test_ok_frame() -> None:
    assert ok_frame("r1", mid="m1", seq=5) == {"t": "ok", "mid": "m1", "seq": 5, "id": "r1"}
    assert ok_frame(None) == {"t": "ok"}


def test_error_codes_are_the_protocols() -> None:
    assert {str(c) for c in ErrorCode} == {
        "bad_frame", "unknown_type", "auth_failed", "forbidden", "muted", "banned",
        "rate_limited", "slow_mode", "too_long", "not_found", "room_closed", "unavailable",
        "poll_closed",
        "blocked"}


def test_close_codes_are_the_protocols() -> None:
    assert {c.name: int(c) for c in p.CloseCode} == {
        "NORMAL": 1000, "POLICY": 1008, "TOO_BIG": 1009, "SERVER_ERROR": 1011,
        "TRY_AGAIN": 1013, "AUTH_FAILED": 4401, "FORBIDDEN": 4403, "NO_SUCH_ROOM": 4404}
