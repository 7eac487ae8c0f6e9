"""Bounds on a ``welcome``: how many questions it carries and how many bytes it takes.

PROTOCOL.md: a welcome carries at most 200 questions (the one on stage first, then
by votes) and is never larger than 1 MiB, whatever the room holds. What is cut, in
this order, once the encoded frame is over the limit (docs/protocol.md says the same):

1. a replay (``recovered: true``) over its own byte budget, or in a frame over the
   limit, becomes the plain window with ``recovered: false``;
2. each list keeps what fits its share of the limit: ``history`` 3/8 (its newest
   posts), ``questions`` 3/8 (the highest ranked: the one on stage, then by votes),
   ``pinned`` 3/16 (the latest pins); the last 1/16 is for everything else;
3. if the frame is still over (other fields grew), ``history`` is cut further from
   its oldest, then ``questions`` from the lowest ranked, then ``pinned`` from the
   oldest pin, until it fits.

Sizes are those of the connection's own encoding, so the limit holds on the wire.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, Final

from livehub import room as core
from livehub.protocol import Codec, Frame
from livehub.roles import Role

MAX_WELCOME_QUESTIONS: Final = 200
MAX_WELCOME_BYTES: Final = 1024 * 1024
# Room for what the cut lists leave (JSON commas) and for rounding: aim a little lower.
_SLACK: Final = 64


def welcome_questions(state: core.RoomState, role: Role,
                      limit: int = MAX_WELCOME_QUESTIONS) -> list[core.Question]:
    """At most ``limit`` live questions: the one on stage first, then most votes first.

    ``heapq.nsmallest`` keeps this O(n log limit) for a room of many questions.
    """
    allowed = core.LIVE_QSTATES | {"pending"} if role.is_staff else core.LIVE_QSTATES
    stage = state.questions.get(state.answering or "")
    if stage is not None and stage.state not in allowed:
        stage = None
    rest = (q for q in state.questions.values() if q.state in allowed and q is not stage)
    top = heapq.nsmallest(limit - (stage is not None), rest, key=lambda q: (-q.votes, q.seq))
    return ([stage] if stage is not None else []) + top


def encode_welcome(frame: dict[str, Any], codec: Codec,
                   plain_history: Callable[[], list[dict[str, Any]]], *,
                   max_bytes: int = MAX_WELCOME_BYTES,
                   max_replay_bytes: int = MAX_WELCOME_BYTES) -> Frame:
    """``frame`` encoded for ``codec``, cut (in the module's order) to ``max_bytes``.

    ``plain_history`` gives the plain latest window, used when a replay is too big.
    """
    encode = codec.encode
    if frame.get("recovered"):
        replay_size = sum(len(encode(ev)) + 1 for ev in frame["history"])
        if replay_size > max_replay_bytes:
            frame["history"], frame["recovered"] = plain_history(), False
    data = codec.frame(frame)
    size = _size(data, max_bytes)
    if size <= max_bytes:
        return data
    if frame.get("recovered"):
        frame["history"], frame["recovered"] = plain_history(), False
    # Each list keeps what fits its share, most wanted first ...
    for key, share, newest_first in _SHARES:
        if key in frame:
            frame[key] = _keep(frame[key], int(max_bytes * share), encode, newest_first)
    # ... and whatever else the frame holds still has to fit: cut further, in order.
    excess = len(encode(frame)) - max_bytes + _SLACK
    for key, _, newest_first in _SHARES:
        items: list[Any] = list(frame.get(key) or [])
        while items and excess > 0:
            item = items.pop(0) if newest_first else items.pop()
            excess -= len(encode(item)) + 1
        if key in frame:
            frame[key] = items
    me = frame.get("me")
    if isinstance(me, dict) and "votes" in me:  # only votes on questions still sent
        kept = {q.get("qid") for q in frame.get("questions") or []}
        me["votes"] = [qid for qid in me["votes"] if qid in kept]
    return codec.frame(frame)


def _size(data: Frame, max_bytes: int) -> int:
    """Bytes on the wire; a text frame of few characters is surely small (UTF-8 <= 4x)."""
    if isinstance(data, bytes):
        return len(data)
    if 4 * len(data) <= max_bytes:
        return len(data)
    return len(data.encode())


# (list, share of the limit, whether its newest items are the last ones): history keeps
# its newest posts, questions their highest ranked (first), pinned its latest pins.
_SHARES: Final = (("history", 3 / 8, True), ("questions", 3 / 8, False),
                  ("pinned", 3 / 16, True))


def _keep(items: list[Any], budget: int, encode: Callable[[Any], bytes],
          newest_last: bool) -> list[Any]:
    """The longest run of ``items`` from the wanted end that fits ``budget`` bytes."""
    order = reversed(items) if newest_last else iter(items)
    kept: list[Any] = []
    for item in order:
        budget -= len(encode(item)) + 1
        if budget < 0:
            break
        kept.append(item)
    return kept[::-1] if newest_last else kept
