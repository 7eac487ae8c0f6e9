"""The welcome's bounds as pure functions: question choice, byte cap and cut order."""

from __future__ import annotations

from typing import Any

from livehub import protocol as p
from livehub import room as core
from livehub.roles import Role
from livehub.welcome_bounds import (
    MAX_WELCOME_BYTES,
    MAX_WELCOME_QUESTIONS,
    encode_welcome,
    welcome_questions,
)


def q(i: int, votes: int, state: str = "open") -> core.Question:
    question = core.Question(qid=f"q{i}", uid=f"u{i}", name="N", text="t", state=state,
                             seq=i, ts=i)
    question.voters.update(f"v{n}" for n in range(votes))
    return question


def test_stage_first_then_votes_then_age_at_most_200() -> None:
    state = core.RoomState(room="r")
    for i in range(300):
        state.questions[f"q{i}"] = q(i, votes=i % 7)
    state.questions["q299"].state = "answering"
    state.answering = "q299"
    state.questions["q5"].state = "pending"
    chosen = welcome_questions(state, Role.PARTICIPANT)
    assert len(chosen) == MAX_WELCOME_QUESTIONS
    assert chosen[0].qid == "q299"
    keys = [(-c.votes, c.seq) for c in chosen[1:]]
    assert keys == sorted(keys)
    assert "q5" not in {c.qid for c in chosen}  # pending: staff only
    assert "q5" in {c.qid for c in welcome_questions(state, Role.MODERATOR, limit=300)}


def frame(posts: int, questions: int, pins: int, size: int, **extra: Any) -> dict[str, Any]:
    def msg(i: int) -> dict[str, Any]:
        return {"t": "msg", "mid": f"m{i}", "text": "x" * size, "seq": i}
    return {"t": "welcome", "me": {"uid": "u", "votes": [f"q{i}" for i in range(questions)]},
            "history": [msg(i) for i in range(posts)],
            "questions": [{"t": "q", "qid": f"q{i}", "text": "y" * size} for i in range(questions)],
            "pinned": [msg(i) for i in range(pins)], **extra}


def test_small_frames_are_untouched_and_big_ones_cut_in_order() -> None:
    small = frame(3, 3, 1, 10)
    assert p.JSON.decode(encode_welcome(dict(small), p.JSON, list)) == small
    for codec in p.CODECS:
        big = frame(100, 200, 50, 20_000)
        data = encode_welcome(big, codec, list)
        out = codec.decode(data)
        assert len(data if isinstance(data, bytes) else data.encode()) <= MAX_WELCOME_BYTES
        # Newest posts kept, highest-ranked questions kept, latest pins kept.
        assert out["history"][-1]["mid"] == "m99" and out["questions"][0]["qid"] == "q0"
        assert out["pinned"][-1]["mid"] == "m49"
        assert out["me"]["votes"] == [x["qid"] for x in out["questions"]]


def test_a_replay_too_big_becomes_the_plain_window() -> None:
    replay = frame(400, 0, 0, 2_000, recovered=True)
    out = p.JSON.decode(encode_welcome(replay, p.JSON, lambda: [{"t": "msg", "mid": "w"}],
                                       max_replay_bytes=512 * 1024))
    assert out["recovered"] is False and out["history"] == [{"t": "msg", "mid": "w"}]


def test_other_fields_that_grow_still_fit() -> None:
    big = frame(100, 200, 50, 5_000, moderation={"bans": ["z" * 300_000]})
    data = encode_welcome(big, p.MSGPACK, list)
    assert isinstance(data, bytes) and len(data) <= MAX_WELCOME_BYTES
    assert p.MSGPACK.decode(data)["moderation"]["bans"]
