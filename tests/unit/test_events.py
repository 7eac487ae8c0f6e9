"""livehub.events: the typed definition of the log's events, checked against the docs,
the room core and the web client."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from livehub import events as e
from livehub import protocol as p
from livehub import room as core
from livehub.roles import Role

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "docs" / "protocol.md").read_text()


def _event_tables() -> dict[str, set[str]]:
    """Every ``| `t` | keys | when |`` table of docs/protocol.md: tag -> documented keys."""
    found: dict[str, set[str]] = {}
    for table in re.findall(r"^\| `t` \| keys \| when \|\n\|[-|]+\|\n((?:\|.*\n)+)", DOCS,
                            re.M):
        for row in table.splitlines():
            cells = [c.strip() for c in row.strip("|").split("|")]
            tags = re.findall(r"`(\w+)`", cells[0])
            # Drop explanations in parentheses (they may hold words like `null`).
            spec = cells[1]
            while re.search(r"\([^()]*\)", spec):
                spec = re.sub(r"\([^()]*\)", "", spec)
            words = set(re.findall(r"[a-z_]+", spec)) - {"or"}
            for tag in tags:
                found[tag] = words
    return found


TABLE = _event_tables()


def test_the_docs_event_table_is_found() -> None:
    assert {"msg", "q", "votes", "qstate", "room"} <= TABLE.keys()


@pytest.mark.parametrize("cls", e.ALL, ids=e.tag)
def test_docs_and_structs_agree_on_each_event(cls: type[e.Event]) -> None:
    tag = e.tag(cls)
    fields = set(cls.__struct_fields__)
    seen = e.seen_keys(cls) - e.ENVELOPE
    if not cls.SENT:
        # Log-only (clients get a coalesced event instead): named as a request or event.
        assert tag not in TABLE
        assert f"`{tag}`" in DOCS, f"{tag} is not documented in docs/protocol.md"
        return
    if tag not in TABLE:
        # Described in prose (polls, bans): the event and each key its audience gets.
        assert f"`{tag}`" in DOCS, f"docs/protocol.md does not describe the {tag} event"
        for key in seen:
            assert re.search(rf"\b{key}\b", DOCS), f"{tag}: key {key} is not documented"
        return
    documented = {k.rstrip("?") for k in TABLE[tag]}
    assert documented <= fields, f"{tag}: documented keys missing from the struct"
    extra = seen - documented
    assert extra <= cls.EXTENSION, f"{tag}: undocumented keys {sorted(extra - cls.EXTENSION)}"
    for key in cls.EXTENSION:
        assert re.search(rf"`{key}\b", DOCS), f"{tag}: extension key {key} is not documented"


def test_every_event_the_room_core_folds_has_a_struct() -> None:
    folded = set(core._FOLDS)
    assert folded <= e.BY_TAG.keys(), f"no struct for {sorted(folded - e.BY_TAG.keys())}"
    assert {e.tag(c) for c in e.ALL if c.LOGGED} <= folded


def test_the_web_client_folds_every_sent_event_by_the_same_names() -> None:
    js = (ROOT / "static" / "js" / "state.js").read_text()
    body = js[js.index("const FOLDS = {"):]
    body = body[:body.index("\n};")]
    folds = set(re.findall(r"^  (\w+)\(s, ev\)", body, re.M)) - {"presence"}
    sent = {e.tag(c) for c in e.ALL if c.SENT}
    assert folds <= sent | set(TABLE), f"state.js folds unknown events {folds - sent}"
    assert sent <= folds, f"state.js does not fold {sorted(sent - folds)}"


def test_room_core_key_lists_come_from_the_structs() -> None:
    assert core.ADDR == e.ADDR == "addr"
    assert core._ACT_KEYS["mute"] == {"t", "seq", "ts", "uid", "until"}
    assert core._ACT_KEYS["del"] == {"t", "seq", "ts", "mid", "qid"}
    assert core._ACT_KEYS["room"] == {"t", "seq", "ts", "state", "settings"}
    assert set(core._ACT_KEYS) == {"mute", "unmute", "del", "pin", "unpin", "qstate", "room"}


def _decided() -> list[core.Event]:
    """One of each logged event, as the room core decides them."""
    state = core.RoomState("r")
    mod = core.Actor("m1", "Mod", Role.MODERATOR)
    guest = core.Actor("g1", "Guest", Role.PARTICIPANT, guest=True, addr="a" * 16)
    out: list[core.Event] = []
    n = 0

    def run(actor: core.Actor, req: p.Request) -> None:
        nonlocal n
        n += 1
        decision = core.decide(state, actor, req, core.Context(now=1000 + n, new_id=f"id{n}"))
        for ev in decision.events:
            ev["seq"] = state.seq + 1
            core.apply(state, ev)
            out.append(ev)

    run(guest, p.Post(text="hi"))
    run(guest, p.Ask(text="why?", anonymous=True))
    run(guest, p.Vote(qid="id2", up=True))
    run(mod, p.Answer(qid="id2", text="because"))
    run(mod, p.SetQState(qid="id2", state="answering"))
    run(mod, p.Pin(mid="id1"))
    run(mod, p.Unpin(mid="id1"))
    run(mod, p.Mute(uid="g1", seconds=60))
    run(mod, p.Unmute(uid="g1"))
    run(mod, p.Ban(uid="g1"))
    run(mod, p.Unban(uid="g1"))
    run(mod, p.Settings(slow_mode=5))
    run(mod, p.OpenPoll(question="Which?", options=("a", "b")))
    pid = out[-1]["pid"]
    run(guest, p.Ballot(pid=pid, choices=(1,)))
    run(mod, p.SetPollState(pid=pid, state="closed"))
    run(guest, p.React(mid="id1", emoji="heart"))
    run(guest, p.Report(reason="spam", mid="id1", note="ads"))
    run(mod, p.Resolve(rid=out[-1]["rid"]))
    run(mod, p.Delete(mid="id1"))
    return out


def test_every_decided_event_decodes_to_its_struct_and_back() -> None:
    decided = _decided()
    assert {ev["t"] for ev in decided} == {e.tag(c) for c in e.ALL if c.LOGGED}
    for ev in decided:
        typed = e.decode(ev)
        assert type(typed) is e.BY_TAG[ev["t"]]
        assert set(ev) <= e.keys(type(typed)), ev
        # The dict form of the struct is the logged event, defaults left out.
        encoded = e.encode(typed)
        assert e.decode(encoded) == typed
        assert {k: v for k, v in ev.items() if k not in encoded} == {
            k: getattr(typed, k) for k in ev if k not in encoded}


def test_unknown_types_decode_to_none_and_bad_keys_are_refused() -> None:
    assert e.decode({"t": "from-a-newer-server", "seq": 1, "ts": 1}) is None
    with pytest.raises(e.BadEvent, match="until"):
        e.decode({"t": "mute", "uid": "u", "ts": 1, "seq": 1})
    with pytest.raises(e.BadEvent):
        e.decode({"t": "vote", "qid": "q", "uid": "u", "up": "yes", "ts": 1, "seq": 1})


def test_a_malformed_logged_event_takes_its_seq_and_changes_nothing_else() -> None:
    state = core.RoomState("r")
    core.apply(state, {"t": "msg", "mid": "m", "uid": "u", "name": "n", "role": "participant",
                       "text": "x", "ts": 1, "seq": 1})
    core.apply(state, {"t": "del", "mid": 7, "ts": 2, "seq": 2})  # mid is not a string
    core.apply(state, {"t": "mute", "ts": 3, "seq": 3})  # no uid, no until
    assert state.seq == 3
    assert "m" in state.messages and not state.mutes


def test_no_view_of_a_malformed_event_reaches_anyone() -> None:
    state = core.RoomState("r")
    bad = {"t": "mute", "ts": 3, "seq": 1}
    core.apply(state, bad)
    assert all(core.view(state, bad, role) is None for role in Role)
    assert core.replay(state, [bad], Role.MODERATOR) == []
