"""livehub's WebSocket transport: a uvicorn ``ws=`` protocol on websockets' sans-I/O core.

uvicorn parses HTTP and hands an upgrade request's transport to the class given as
``Config.ws``; this class takes it from there. websockets' :class:`ServerProtocol` (its
public sans-I/O API) parses the handshake and the client's frames; the Starlette app
runs on the ASGI messages this class makes of them, so routing, Origin checks and the
``hello`` stay in the app (livehub.ws). The one thing the app does not do through ASGI
is its fan-out: the scope's ``livehub.transport`` extension is this object, whose
:meth:`write_frame` writes bytes that are already a whole WebSocket frame, so one
frame built per audience (:func:`encode_frame`) goes to every recipient, as
``websockets.broadcast()`` does, with no coroutine or task per delivery.

Relies on, all public: uvicorn building ``Config.ws`` with the keyword arguments
``config``, ``server_state`` and ``app_state``, then calling ``connection_made`` and
``data_received`` with the request head (uvicorn >= 0.30), and calling ``shutdown()``
on every member of ``server_state.connections`` when it stops; websockets'
``ServerProtocol`` (``accept``, ``reject``, ``send_response``, ``receive_data``,
``events_received``, ``data_to_send``, ``send_*``, ``fail``, ``close_rcvd``,
``close_sent``, ``parser_exc``, ``handshake_exc``) and ``Frame.serialize``
(websockets >= 13, see pyproject.toml).
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, Final, Protocol, cast
from urllib.parse import unquote

import structlog
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

log = structlog.get_logger("livehub.transport")

EXTENSION: Final = "livehub.transport"  # the scope extension that carries this object
CLOSE_TIMEOUT: Final = 10.0  # seconds to wait for the client's answer to our close frame
# Compression, when configured, is bounded: a 4 KiB window each way and a small
# compressor state, so a connection's zlib memory stays a few tens of KiB.
DEFLATE: Final = {"server_max_window_bits": 12, "client_max_window_bits": 12,
                  "compress_settings": {"memLevel": 5}}

# Connection states (one small int rather than several flags).
HANDSHAKE, OPEN, CLOSING, CLOSED = range(4)

_DETACHED: deque[dict[str, Any]] = deque(maxlen=0)  # the inbox once a Reader takes messages


class Disconnected(OSError):
    """Sending on a connection that has gone (Starlette turns it into a disconnect)."""

def encode_frame(payload: bytes | str) -> bytes:
    """One whole, unmasked server frame (text for ``str``), ready for any connection
    that did not negotiate compression."""
    if isinstance(payload, str):
        return Frame(Opcode.TEXT, payload.encode()).serialize(mask=False, extensions=[])
    return Frame(Opcode.BINARY, payload).serialize(mask=False, extensions=[])

class Receiver(Protocol):
    """Takes a detached connection's ASGI messages (livehub.reader.Reader)."""

    def on_message(self, message: dict[str, Any]) -> None: ...


class WebSocketTransport(asyncio.Protocol):
    """One client WebSocket, from the upgrade request to the closed socket."""

    __slots__ = (
        "app_state", "client", "close_timer", "config", "connections", "fragments",
        "inbox", "on_writable", "paused", "ping_payload", "ping_timer", "proto",
        "read_paused", "receiver", "response", "scope", "server_state", "state", "task",
        "transport", "waiter",
    )

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 **_: Any) -> None:
        self.config = config
        self.server_state = server_state
        self.connections: set[Any] = server_state.connections
        self.app_state = app_state
        extensions = ([ServerPerMessageDeflateFactory(**DEFLATE)]  # type: ignore[arg-type]
                      if config.ws_per_message_deflate else [])
        self.proto = ServerProtocol(extensions=extensions, max_size=config.ws_max_size)
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.scope: dict[str, Any] | None = None
        self.response: Response | None = None
        self.state = HANDSHAKE
        self.inbox: deque[dict[str, Any]] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.fragments: list[bytes] | None = None
        self.read_paused = False
        self.paused = False  # the transport's write buffer is over its high-water mark
        self.on_writable: Callable[[], None] | None = None  # the hub's, once it has joined
        self.receiver: Receiver | None = None  # takes the messages once detached
        self.close_timer: asyncio.TimerHandle | None = None
        self.ping_timer: asyncio.TimerHandle | None = None
        self.ping_payload: bytes | None = None

    # -- what the hub uses --------------------------------------------------------------

    @property
    def writable(self) -> bool:
        """Open, and the kernel is taking what is written (not a slow reader)."""
        return self.state == OPEN and not self.paused

    @property
    def shared_frames(self) -> bool:
        """Whether :func:`encode_frame`'s frames may be written (no compression)."""
        return not self.proto.extensions

    @property
    def closing(self) -> bool:
        """A close frame has gone or the socket is closed."""
        return self.state >= CLOSING

    @staticmethod
    def frame(payload: bytes | str) -> bytes:
        """:func:`encode_frame`: the hub makes one per audience through any connection."""
        return encode_frame(payload)

    def write_frame(self, frame: bytes) -> None:
        """Write a frame made by :func:`encode_frame` (only when :attr:`shared_frames`)."""
        if self.state == OPEN and self.transport is not None:
            self.transport.write(frame)

    def write_message(self, payload: bytes | str) -> None:
        """Frame (and compress, if negotiated) a message for this connection alone."""
        if self.state != OPEN:
            return
        if isinstance(payload, str):
            self.proto.send_text(payload.encode())
        else:
            self.proto.send_binary(payload)
        self._drain()

    def close(self, code: int, reason: str = "") -> None:
        """Send a close frame; the socket closes on the client's answer or a timeout."""
        if self.state != OPEN:
            return
        self.proto.send_close(code, reason)
        self._drain()
        self._closing({"type": "websocket.disconnect", "code": code, "reason": reason})

    def detach(self, receiver: Receiver) -> None:
        """Deliver every message from now on to ``receiver`` (the disconnect last), not
        to the ASGI app, which may then return without the connection closing: an idle
        connection then costs no task (livehub.reader)."""
        self.receiver = receiver
        pending, self.inbox = list(self.inbox), _DETACHED
        if self.read_paused:
            self.resume_reading()
        for message in pending:
            receiver.on_message(message)

    def pause_reading(self) -> None:
        if not self.read_paused and self.state < CLOSED and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and self.state < CLOSED and self.transport is not None:
            self.read_paused = False
            self.transport.resume_reading()

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, but behave as one)
        self.transport = cast(asyncio.Transport, transport)
        peer = self.transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        was = self.state
        self.state = CLOSED
        self._cancel_timers()
        if was == OPEN:
            self._put({"type": "websocket.disconnect", "code": 1006})
        elif was == HANDSHAKE and self.task is not None:
            self._put({"type": "websocket.disconnect", "code": 1006})
        self.paused = False
        # The receiver has had its disconnect: break the transport -> reader -> connection
        # -> transport cycle, so a closed connection is freed at once, not by the GC.
        self.receiver = None
        self.on_writable = None

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.on_writable is not None and self.state == OPEN:
            self.on_writable()

    def data_received(self, data: bytes) -> None:
        proto = self.proto
        proto.receive_data(data)
        for event in proto.events_received():
            if self.state == CLOSED:
                break
            if isinstance(event, Request):
                self._upgrade(event)
            elif isinstance(event, Frame):
                self._frame(event)
        if self.state == HANDSHAKE and proto.handshake_exc is not None and self.task is None:
            # Not a WebSocket request websockets could parse: it has queued an answer
            # (414/431) or only an EOF, in which case the answer is a plain 400.
            out = b"".join(proto.data_to_send())
            if not out:
                out = proto.reject(400, "not a valid WebSocket request\n").serialize()
            self._abort(out)
            return
        if proto.parser_exc is not None and self.state == OPEN:
            # A client's mistake (too big, bad UTF-8 in a close reason, bad opcode):
            # websockets has queued the close frame with the code.
            sent = proto.close_sent
            self._closing({"type": "websocket.disconnect",
                           "code": sent.code if sent is not None else 1002,
                           "reason": sent.reason if sent is not None else ""})
        self._drain()

    def eof_received(self) -> bool | None:
        self.proto.receive_eof()
        self._drain()
        return None

    def shutdown(self) -> None:
        """uvicorn's exit: whoever is still here gets 1012 (livehub's hub closes its
        clients with 1013 before this runs; see livehub.server)."""
        if self.state == OPEN:
            self.close(1012, "server shutting down")
        if self.transport is not None:
            self.transport.close()

    # -- receiving ---------------------------------------------------------------------------

    def _upgrade(self, request: Request) -> None:
        proto = self.proto
        response = proto.accept(request)
        if response.status_code != 101:
            proto.send_response(response)
            self._abort(b"".join(proto.data_to_send()))
            return
        self.response = response
        raw_path, _, query = request.path.partition("?")
        subprotocols = [token.strip() for header in
                        request.headers.get_all("Sec-WebSocket-Protocol")
                        for token in header.split(",") if token.strip()]
        server = self.transport.get_extra_info("sockname") if self.transport else None
        self.scope = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "scheme": "ws",
            "server": tuple(server[:2]) if isinstance(server, tuple) else None,
            "client": self.client,
            "root_path": "",
            "path": unquote(raw_path),
            "raw_path": raw_path.encode("ascii", "surrogateescape"),
            "query_string": query.encode("ascii", "surrogateescape"),
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1", "surrogateescape"))
                        for k, v in request.headers.raw_items()],
            "subprotocols": subprotocols,
            "state": dict(self.app_state),
            "extensions": {EXTENSION: self},
        }
        self._put({"type": "websocket.connect"})
        self.task = asyncio.get_running_loop().create_task(self._run_app())
        self.server_state.tasks.add(self.task)
        self.task.add_done_callback(self.server_state.tasks.discard)

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.PONG:
            if self.ping_payload is not None and bytes(frame.data) == self.ping_payload:
                self.ping_payload = None
                if self.ping_timer is not None:
                    self.ping_timer.cancel()  # the pong deadline
                self._schedule_ping()
            return
        if opcode is Opcode.CLOSE:
            rcvd = self.proto.close_rcvd
            if self.state == OPEN:
                # websockets has queued the echo (and the end of the stream).
                self._closing({"type": "websocket.disconnect",
                               "code": rcvd.code if rcvd is not None else 1005,
                               "reason": rcvd.reason if rcvd is not None else ""})
            return
        if opcode is Opcode.PING or self.state != OPEN:
            return  # websockets answers pings itself; frames after our close are dropped
        if opcode is Opcode.CONT:
            if self.fragments is None:
                return
            self.fragments.append(bytes(frame.data))
        else:
            self.fragments = [b"t" if opcode is Opcode.TEXT else b"b", bytes(frame.data)]
        if sum(len(part) for part in self.fragments) > self.config.ws_max_size + 1:
            self._fail(1009, "message over the size limit")
            return
        if not frame.fin:
            return
        kind, *parts = self.fragments
        self.fragments = None
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if kind == b"b":
            self._put({"type": "websocket.receive", "bytes": data})
        else:
            try:
                self._put({"type": "websocket.receive", "text": data.decode()})
            except UnicodeDecodeError:
                self._fail(1007, "invalid UTF-8 in a text frame")
                return
        if self.receiver is None:
            # One message at a time: the client's next frames wait in the kernel until
            # the app has read this one (its rate limit and flood checks see them).
            self.pause_reading()

    async def receive(self) -> dict[str, Any]:
        while not self.inbox:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        message = self.inbox.popleft()
        if self.read_paused and not self.inbox and self.transport is not None:
            self.read_paused = False
            if self.state != CLOSED:
                self.transport.resume_reading()
        return message

    def _put(self, message: dict[str, Any]) -> None:
        if self.receiver is not None:
            self.receiver.on_message(message)
            return
        self.inbox.append(message)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # -- the app ---------------------------------------------------------------------------------

    async def _run_app(self) -> None:
        assert self.scope is not None
        try:
            await self.config.loaded_app(self.scope, self.receive, self.send)
        except Disconnected:
            pass
        except Exception:
            log.exception("WebSocket application failed", ip=self._ip())
            if self.state == HANDSHAKE:
                self._reject(HTTPStatus.INTERNAL_SERVER_ERROR, "internal server error\n")
            else:
                self.close(1011, "internal error")
        else:
            if self.state == HANDSHAKE:
                self._reject(HTTPStatus.INTERNAL_SERVER_ERROR, "no WebSocket answer\n")
        finally:
            self.task = None
            if self.receiver is not None:
                self.scope = None  # detached: the connection goes on without the app
            elif self.close_timer is None and self.transport is not None:
                self.transport.close()

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if self.state == HANDSHAKE:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":  # refused before the upgrade: HTTP 403
                self._put({"type": "websocket.disconnect", "code": 1006})
                self._reject(HTTPStatus.FORBIDDEN, "")
            else:
                raise RuntimeError(f"unexpected ASGI message {kind!r} before accept")
            return
        if self.state != OPEN:
            raise Disconnected(f"{kind} on a closed WebSocket")
        if kind == "websocket.send":
            data = message.get("bytes")
            self.write_message(data if data is not None else message.get("text") or "")
        elif kind == "websocket.close":
            self.close(int(message.get("code") or 1000), message.get("reason") or "")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    def _accept(self, message: dict[str, Any]) -> None:
        response = self.response
        assert response is not None
        headers = response.headers
        for name, value in message.get("headers") or []:
            headers[name.decode("latin-1")] = value.decode("latin-1")
        if message.get("subprotocol"):
            headers["Sec-WebSocket-Protocol"] = message["subprotocol"]
        if self.transport is None or self.transport.is_closing():
            raise Disconnected("gone before the handshake was answered")
        self.proto.send_response(response)
        self.response = None  # (its headers are not needed once sent)
        self.state = OPEN
        self._drain()
        self._schedule_ping()

    # -- writing and closing ---------------------------------------------------------------------

    def _drain(self) -> None:
        """Write what websockets has queued; an empty chunk means: end the stream."""
        transport = self.transport
        if transport is None:
            return
        for data in self.proto.data_to_send():
            if data:
                transport.write(data)
            else:
                transport.close()  # the closing handshake is complete (RFC 6455 7.1.1)

    def _closing(self, disconnect: dict[str, Any]) -> None:
        self.state = CLOSING
        self._put(disconnect)
        self._cancel_timers()
        if self.read_paused and self.transport is not None:
            self.read_paused = False  # read on until the client answers the close
            self.transport.resume_reading()
        if self.transport is not None and not self.transport.is_closing():
            self.close_timer = asyncio.get_running_loop().call_later(
                CLOSE_TIMEOUT, self.transport.close)

    def _fail(self, code: int, reason: str) -> None:
        self.proto.fail(code, reason)
        self._drain()
        self._closing({"type": "websocket.disconnect", "code": code, "reason": reason})

    def _reject(self, status: HTTPStatus, body: str) -> None:
        response = self.proto.reject(status, body)
        self.proto.send_response(response)
        self._abort(b"".join(self.proto.data_to_send()))

    def _abort(self, out: bytes) -> None:
        self.state = CLOSED
        if self.transport is not None:
            if out:
                self.transport.write(out)
            self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self.ping_timer, self.close_timer):
            if timer is not None:
                timer.cancel()
        self.ping_timer = self.close_timer = None
        self.ping_payload = None

    # -- keepalive -------------------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        interval = self.config.ws_ping_interval
        if interval and self.state == OPEN:
            self.ping_timer = asyncio.get_running_loop().call_later(interval, self._ping)

    def _ping(self) -> None:
        self.ping_timer = None
        if self.state != OPEN:
            return
        self.ping_payload = os.urandom(4)
        self.proto.send_ping(self.ping_payload)
        self._drain()
        timeout = self.config.ws_ping_timeout
        if timeout:
            self.ping_timer = asyncio.get_running_loop().call_later(timeout, self._no_pong)
        else:
            self._schedule_ping()

    def _no_pong(self) -> None:
        self.ping_timer = None
        if self.state == OPEN:
            log.info("connection closed", ip=self._ip(), code=1011,
                     reason="keepalive ping timeout")
            self._fail(1011, "keepalive ping timeout")

    def _ip(self) -> str:
        return self.client[0] if self.client else "?"

def transport_of(scope: Mapping[str, Any]) -> WebSocketTransport | None:
    """The transport of an ASGI WebSocket scope, when livehub's transport serves it."""
    found = (scope.get("extensions") or {}).get(EXTENSION)
    return found if isinstance(found, WebSocketTransport) else None
