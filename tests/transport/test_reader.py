"""livehub.reader without sockets: requests in order, no task while idle, the disconnect
last, the client's socket paused while requests wait, and a failure closes 1011."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from livehub.protocol import CloseCode
from livehub.reader import Reader


class FakeSource:
    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0

    def pause_reading(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        self.paused = False


def text(n: int) -> dict[str, Any]:
    return {"type": "websocket.receive", "text": str(n)}


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_requests_run_in_order_and_no_task_is_left_when_idle() -> None:
    source, tasks = FakeSource(), set[asyncio.Task[None]]()
    handled: list[str] = []
    gate = asyncio.Event()

    async def handle(message: dict[str, Any]) -> None:
        if message["text"] == "1":
            await gate.wait()  # the first request waits on its commit
        handled.append(message["text"])

    async def leave(message: dict[str, Any]) -> None:
        handled.append(f"left {message['code']}")

    reader = Reader(source, handle, leave, lambda code: None, tasks)
    for n in (1, 2, 3):
        reader.on_message(text(n))
    await settle()
    assert handled == [] and source.paused  # busy: the socket is not read meanwhile
    reader.on_message({"type": "websocket.disconnect", "code": 1001})
    gate.set()
    await settle()
    assert handled == ["1", "2", "3", "left 1001"]
    assert not tasks and reader.task is None and not source.paused


async def test_idle_again_after_a_burst() -> None:
    source, tasks = FakeSource(), set[asyncio.Task[None]]()
    handled: list[str] = []

    async def handle(message: dict[str, Any]) -> None:
        handled.append(message["text"])

    async def leave(message: dict[str, Any]) -> None:
        pass

    reader = Reader(source, handle, leave, lambda code: None, tasks)
    reader.on_message(text(1))
    await settle()
    assert handled == ["1"] and not tasks and reader.inbox is None
    reader.on_message(text(2))  # a later message starts a task again
    await settle()
    assert handled == ["1", "2"] and not tasks


async def test_a_failure_of_ours_closes_1011_and_is_logged_in_the_connections_context(
        ) -> None:
    source, tasks = FakeSource(), set[asyncio.Task[None]]()
    closed: list[int] = []
    seen: list[dict[str, Any]] = []

    def capture(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        seen.append(dict(event))
        raise structlog.DropEvent

    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        async def handle(message: dict[str, Any]) -> None:
            raise RuntimeError("bug")

        async def leave(message: dict[str, Any]) -> None:
            pass

        async def endpoint() -> Reader:
            structlog.contextvars.bind_contextvars(room="r1", uid="u1", ip="192.0.2.9")
            return Reader(source, handle, leave, closed.append, tasks)

        reader = await asyncio.get_running_loop().create_task(endpoint())
        structlog.contextvars.bind_contextvars(uid="someone-else")  # this task's context
        reader.on_message(text(1))
        await settle()
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()
    assert closed == [CloseCode.SERVER_ERROR]
    failed = [e for e in seen if e["event"] == "connection failed"]
    assert failed and failed[0]["uid"] == "u1" and failed[0]["room"] == "r1"
