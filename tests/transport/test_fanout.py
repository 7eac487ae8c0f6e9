"""The hub's send path without sockets: one frame per audience, bounded queues, and
log lines that carry the context of the connection they are about."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from livehub import protocol as p
from livehub.auth import guest
from livehub.hub import Connection, Flusher
from livehub.protocol import CloseCode, Frame
from livehub.transport import encode_frame


class FakeOutlet:
    """What livehub.transport offers the hub, recording what is written."""

    def __init__(self, *, shared: bool = True) -> None:
        self.on_writable: Callable[[], None] | None = None
        self.frames: list[bytes] = []
        self.messages: list[Frame] = []
        self.closed_with: tuple[int, str] | None = None
        self.paused = False
        self.shared = shared

    @property
    def writable(self) -> bool:
        return not self.paused and self.closed_with is None

    @property
    def shared_frames(self) -> bool:
        return self.shared

    @property
    def closing(self) -> bool:
        return self.closed_with is not None

    @staticmethod
    def frame(payload: Frame) -> bytes:
        return encode_frame(payload)

    def write_frame(self, frame: bytes) -> None:
        self.frames.append(frame)

    def write_message(self, payload: Frame) -> None:
        self.messages.append(payload)

    def close(self, code: int, reason: str = "") -> None:
        self.closed_with = (code, reason)

    def resume(self) -> None:
        self.paused = False
        assert self.on_writable is not None
        self.on_writable()


def connect(flusher: Flusher, name: str, *, max_queue: int = 10,
            shared: bool = True) -> tuple[Connection, FakeOutlet]:
    outlet = FakeOutlet(shared=shared)
    conn = Connection(outlet, p.JSON, guest(name), f"192.0.2.{len(name)}", max_queue,
                      flusher=flusher)
    return conn, outlet


async def next_iteration() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_one_frame_is_made_per_audience_and_written_to_each() -> None:
    flusher = Flusher()
    pairs = [connect(flusher, f"L{i}") for i in range(5)]
    payload = p.JSON.frame({"t": "msg", "seq": 1, "text": "hello"})
    for conn, _ in pairs:
        conn.push(payload)
    await next_iteration()
    first = pairs[0][1].frames[0]
    assert first == encode_frame(payload)
    # The very same bytes object: framed once, written to every recipient.
    assert all(outlet.frames == [first] and outlet.frames[0] is first for _, outlet in pairs)


async def test_a_compressed_connection_frames_its_own() -> None:
    flusher = Flusher()
    plain, plain_out = connect(flusher, "Plain")
    deflated, deflated_out = connect(flusher, "Deflated", shared=False)
    payload = p.JSON.frame({"t": "presence", "online": 2})
    plain.push(payload)
    deflated.push(payload)
    await next_iteration()
    assert plain_out.frames == [encode_frame(payload)]
    assert deflated_out.frames == [] and deflated_out.messages == [payload]


async def test_backed_up_frames_are_coalesced() -> None:
    flusher = Flusher(coalesce_after=2)
    conn, outlet = connect(flusher, "Busy")
    outlet.paused = True  # a slow reader for a moment
    for seq in range(1, 6):
        conn.send({"t": "msg", "seq": seq})
    await next_iteration()
    assert outlet.frames == []  # nothing written while the transport is not taking data
    outlet.resume()
    await next_iteration()
    assert len(outlet.frames) == 1  # five events, one frame
    assert b'"seq":1' in outlet.frames[0] and b'"seq":5' in outlet.frames[0]


async def test_one_event_goes_alone_at_light_load() -> None:
    flusher = Flusher(coalesce_after=2)
    conn, outlet = connect(flusher, "Light")
    conn.send({"t": "msg", "seq": 1})
    conn.send({"t": "ok", "id": "a"})
    await next_iteration()
    assert len(outlet.frames) == 2


@pytest.fixture
def captured() -> Iterator[LogCapture]:
    cap = LogCapture()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, cap])
    try:
        yield cap
    finally:
        structlog.reset_defaults()


async def test_slow_reader_is_closed_1013_and_its_log_line_is_its_own(
        captured: LogCapture) -> None:
    flusher = Flusher()
    slow, slow_out = connect(flusher, "Slow", max_queue=3)
    slow_out.paused = True

    async def poster() -> None:
        # The push runs in the poster's task, whose context names the poster.
        structlog.contextvars.bind_contextvars(uid="poster-uid", role="moderator",
                                               ip="198.51.100.1")
        for seq in range(1, 6):
            slow.send({"t": "msg", "seq": seq})

    await asyncio.get_running_loop().create_task(poster())
    assert slow_out.closed_with is not None
    assert slow_out.closed_with[0] == CloseCode.TRY_AGAIN
    assert slow_out.messages == [] and slow_out.frames == []  # the backlog was dropped
    lines = [e for e in captured.entries if e["event"] == "slow reader closed"]
    assert len(lines) == 1
    line: dict[str, Any] = lines[0]
    assert line["uid"] == slow.actor.uid and line["ip"] == slow.ip
    assert "role" not in line  # nothing of the poster's context


async def test_close_sends_what_was_queued_first() -> None:
    flusher = Flusher()
    conn, outlet = connect(flusher, "Leaving")
    outlet.paused = True
    conn.send({"t": "error", "code": "banned"})
    conn.close(CloseCode.FORBIDDEN, "banned")
    assert outlet.messages and b"banned" in str(outlet.messages[0]).encode()
    assert outlet.closed_with == (CloseCode.FORBIDDEN, "banned")
    conn.send({"t": "msg"})  # after close: dropped
    await next_iteration()
    assert len(outlet.messages) == 1 and outlet.frames == []


async def test_flusher_callbacks_run_in_their_own_context(captured: LogCapture) -> None:
    flusher = Flusher()
    conn, outlet = connect(flusher, "Ctx")
    structlog.contextvars.bind_contextvars(uid="someone-else")
    try:
        conn.send({"t": "msg", "seq": 1})
        flusher_context = flusher.context
        assert "structlog_uid" not in {v.name for v in flusher_context}
    finally:
        structlog.contextvars.clear_contextvars()
    await next_iteration()
    assert outlet.frames
