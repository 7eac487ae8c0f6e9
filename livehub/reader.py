"""A joined connection's requests, read without a task of its own while it is idle.

Once a client has joined, the WebSocket endpoint hands its connection to a
:class:`Reader` and returns: the transport (livehub.transport) calls
:meth:`Reader.on_message` for each message, and a task runs only while messages wait,
answering them one at a time, in order (as the endpoint's read loop did). An idle
connection so costs no task and no stack of coroutine frames, which is most of what
an idle connection used to cost (docs/benchmarks.md). The disconnect is one more
message: it runs after the requests before it, and the connection leaves its room.

Each task runs in the context the endpoint had bound (room, address, uid), so its
log lines are this connection's; a failure is logged and closes the connection 1011.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog

from livehub.protocol import CloseCode

log = structlog.get_logger("livehub.ws")

Message = dict[str, Any]


class Source(Protocol):
    """The transport's side: stop and restart reading the client's socket."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class Reader:
    """Answers one connection's messages in order; no task while there are none."""

    __slots__ = ("close", "context", "handle", "inbox", "leave", "source", "task", "tasks")

    def __init__(self, source: Source, handle: Callable[[Message], Awaitable[None]],
                 leave: Callable[[Message], Awaitable[None]], close: Callable[[int], None],
                 tasks: set[asyncio.Task[None]]) -> None:
        self.source = source
        self.handle = handle  # one request message
        self.leave = leave  # the disconnect message: the last one
        self.close = close  # after a failure of ours (1011)
        self.tasks = tasks  # the owner's (the hub's): nothing runs unowned
        self.context = contextvars.copy_context()  # the endpoint's log context
        self.inbox: deque[Message] | None = None
        self.task: asyncio.Task[None] | None = None

    def on_message(self, message: Message) -> None:
        if self.inbox is None:
            self.inbox = deque()
        self.inbox.append(message)
        if self.task is None:
            self._start()
        elif message["type"] != "websocket.disconnect":
            # Busy: the client's next frames wait in the kernel, so its rate limit and
            # flood checks see them as they are answered, and its backlog costs us nothing.
            self.source.pause_reading()

    def _start(self) -> None:
        task = asyncio.get_running_loop().create_task(self._run(), context=self.context)
        self.task = task
        self.tasks.add(task)
        task.add_done_callback(self._done)

    async def _run(self) -> None:
        inbox = self.inbox
        while inbox:
            message = inbox.popleft()
            if not inbox:
                self.source.resume_reading()
            if message["type"] == "websocket.disconnect":
                inbox.clear()
                await self.leave(message)
                return
            try:
                await self.handle(message)
            except Exception:
                log.exception("connection failed")  # a bug of ours, not a client mistake
                self.close(CloseCode.SERVER_ERROR)
        self.inbox = None  # idle again: nothing kept

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.task = None
        if not task.cancelled() and task.exception() is not None:
            self.context.run(log.error, "connection task failed", exc_info=task.exception())
        elif self.inbox:  # arrived after the loop's last look
            self._start()
