"""The WebSocket transport: ``/ws/{room}``. It decodes, hands over, encodes.

The handshake checks Origin and negotiates the codec; the first frame must be
``hello`` within the deadline; afterwards each request is rate-limited,
validated and passed to the hub. Client mistakes never raise out of here:
they become ``error`` frames or a close with the protocol's code.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect

from livehub import metrics
from livehub import protocol as p
from livehub import room as core
from livehub.addresses import address_key
from livehub.auth import GUEST_TTL, AuthError, Identity, guest, mint, verify, watcher
from livehub.broker.base import BrokerUnavailable
from livehub.config import Config
from livehub.hub import Connection, Hub
from livehub.limits_log import refused
from livehub.programme import SLUG_RE
from livehub.protocol import CloseCode, Codec, ErrorCode, ProtocolError
from livehub.reader import Reader
from livehub.transport import transport_of
from livehub.watchwords import Verdict

log = structlog.get_logger("livehub.ws")


_NONE_REFUSED: deque[float] = deque(maxlen=0)  # shared and always empty


class RateLimiter:
    """At most ``limit`` requests in any ``window`` seconds (a sliding window)."""

    __slots__ = ("limit", "refused", "times", "window")

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        # Made on first use: an idle connection should not carry two empty deques.
        self.times: deque[float] | None = None
        self.refused: deque[float] = _NONE_REFUSED

    def allow(self, now: float) -> bool:
        if self.limit <= 0:
            return True
        horizon = now - self.window
        times = self.times
        if times is None:
            times = self.times = deque()
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) < self.limit:
            times.append(now)
            return True
        if self.refused is _NONE_REFUSED:
            self.refused = deque()
        self.refused.append(now)
        while self.refused and self.refused[0] <= horizon:
            self.refused.popleft()
        return False


def origin_allowed(ws: WebSocket, config: Config) -> bool:
    """Browsers always send Origin; other clients may omit it and are let through."""
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    allowed = config.origins()
    if "*" in allowed:
        return True
    origin = origin.rstrip("/")
    if allowed:
        return origin in allowed
    host = ws.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def _payload(message: MutableMapping[str, Any]) -> bytes | str | None:
    if message.get("bytes") is not None:
        data: bytes | str = message["bytes"]
        return data
    text: str | None = message.get("text")
    return text


async def _send_direct(ws: WebSocket, codec: Codec, obj: dict[str, Any]) -> None:
    frame = codec.frame(obj)
    if isinstance(frame, bytes):
        await ws.send_bytes(frame)
    else:
        await ws.send_text(frame)


async def _refuse(ws: WebSocket, code: int, reason: str, *, room: str, **info: Any) -> None:
    metrics.CONNECTIONS_REJECTED.labels(reason.split(":")[0]).inc()
    log.info("connection refused", room=room, code=int(code), reason=reason, **info)
    try:
        await ws.close(code=code, reason=reason[:120])
    except WebSocketDisconnect:
        pass  # it has gone already: refused all the same


# Closes that the WebSocket layer (uvicorn over websockets) makes by itself for a client's
# mistake, before the app sees the frame: the app hears only a disconnect with the code,
# so this is where such an abuser gets its one log line.
_LAYER_CLOSES: dict[int, str] = {
    CloseCode.TOO_BIG: "frame over the size limit",
    1007: "invalid UTF-8 in a text frame",
    1002: "WebSocket protocol error",
}


def _disconnected(message: MutableMapping[str, Any], room: str, ip: str,
                  uid: str | None = None) -> None:
    code = message.get("code")
    what = _LAYER_CLOSES.get(code) if isinstance(code, int) else None
    if what is not None and isinstance(code, int):
        metrics.CONNECTIONS_REJECTED.labels(what).inc()
        log.info("connection closed", room=room, uid=uid, ip=ip, code=int(code), reason=what)


async def _left_mid_answer(ws: WebSocket, room: str, ip: str) -> None:
    try:
        async with asyncio.timeout(1.0):
            while (message := await ws.receive())["type"] != "websocket.disconnect":
                pass
    except (TimeoutError, RuntimeError):
        return
    _disconnected(message, room, ip)


async def websocket_endpoint(ws: WebSocket) -> None:
    hub: Hub = ws.app.state.hub
    config = hub.config
    room = ws.path_params["room"]
    ip = ws.client.host if ws.client else "?"
    # Each connection runs in its own task, so these reach only its own log lines.
    structlog.contextvars.bind_contextvars(room=room[:64], ip=ip)
    if not origin_allowed(ws, config):
        metrics.CONNECTIONS_REJECTED.labels("origin").inc()
        log.info("connection refused", room=room, reason="origin not allowed",
                 origin=ws.headers.get("origin"), ip=ip)
        await ws.close(code=CloseCode.FORBIDDEN)  # before accept: HTTP 403
        return
    codec, subprotocol = p.negotiate(list(ws.scope.get("subprotocols") or []))
    await ws.accept(subprotocol=subprotocol)
    if not SLUG_RE.fullmatch(room) or hub.session(room) is None:
        await _refuse(ws, CloseCode.NO_SUCH_ROOM, "no such room", room=room[:64], ip=ip)
        return
    if not hub.accepting:
        await _refuse(ws, CloseCode.TRY_AGAIN, "shutting down: reconnect elsewhere", room=room)
        return
    # Connections per client address are counted from accept by livehub.netguard.
    try:
        await _serve(ws, hub, room, codec, ip)
    except WebSocketDisconnect:
        # The client left while being answered (say, its next frame broke the WebSocket
        # layer while the one before was still being answered): not our error, but why it
        # left is still queued, and may deserve its line.
        await _left_mid_answer(ws, room, ip)
    except Exception:
        # A bug of ours, not a client mistake: log it once and close 1011.
        log.exception("connection failed", room=room, ip=ip)
        try:
            await ws.close(code=CloseCode.SERVER_ERROR)
        except Exception:
            pass


async def _hello(ws: WebSocket, hub: Hub, room: str, codec: Codec, ip: str
                 ) -> tuple[Identity, p.Hello] | None:
    """Wait for a valid ``hello`` and sign the client in; None when it was turned away."""
    config = hub.config
    deadline = time.monotonic() + config.hello_timeout
    # `hello` itself is not rate-limited, but the frames before a good one are not free:
    # past the limit the connection is closed rather than answered until the deadline.
    limiter = RateLimiter(config.rate_limit, config.rate_window)
    while True:
        try:
            message = await asyncio.wait_for(ws.receive(),
                                             max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            await _refuse(ws, CloseCode.POLICY, "no hello in time", room=room, ip=ip)
            return None
        if message["type"] == "websocket.disconnect":
            _disconnected(message, room, ip)
            return None
        if not limiter.allow(time.monotonic()):
            await _refuse(ws, CloseCode.POLICY, "flooding before hello", room=room, ip=ip)
            return None
        data = _payload(message)
        try:
            req = p.parse_request(codec, data if data is not None else b"")
        except ProtocolError as exc:
            if exc.code is ErrorCode.UNKNOWN_TYPE:
                await _refuse(ws, CloseCode.POLICY, "first frame must be hello", room=room,
                              ip=ip)
                return None
            await _send_direct(ws, codec, p.error_frame(exc.code, exc.message, exc.rid))
            continue
        if not isinstance(req, p.Hello):
            await _refuse(ws, CloseCode.POLICY, "first frame must be hello", room=room, ip=ip)
            return None
        identity = await _identify(ws, hub, room, codec, req, ip)
        if identity is None:
            if req.token is None and req.name is None:
                continue  # told what is missing; it may try again
            return None
        return identity, req


async def _identify(ws: WebSocket, hub: Hub, room: str, codec: Codec, hello: p.Hello,
                    ip: str) -> Identity | None:
    secret = ws.app.state.secret
    if hello.token is not None:
        try:
            identity = verify(secret, hello.token)
        except AuthError as exc:
            await _auth_failed(ws, codec, hello, str(exc), room, ip)
            return None
        if not identity.may_enter(room):
            await _auth_failed(ws, codec, hello, "token not valid for this room", room, ip)
            return None
        if identity.guest and not await _admits_guests(ws, hub, room, codec, hello, ip):
            return None
        return identity
    if not await _admits_guests(ws, hub, room, codec, hello, ip):
        return None
    if hello.watch:
        return watcher()
    if hello.name is None:
        await _send_direct(ws, codec, p.error_frame(
            ErrorCode.BAD_FRAME, "send a token, or a name to join as a guest", hello.id))
        return None
    if hub.programme.matcher(room).check(hello.name) is Verdict.BLOCK:
        await _send_direct(ws, codec, p.error_frame(
            ErrorCode.BLOCKED, "this name is not allowed here: join with another", hello.id))
        await _refuse(ws, CloseCode.POLICY, "blocked guest name", room=room, ip=ip)
        return None
    return guest(hello.name)


async def _admits_guests(ws: WebSocket, hub: Hub, room: str, codec: Codec, hello: p.Hello,
                         ip: str) -> bool:
    """Whether the room admits guests now; if not, the client has been turned away."""
    try:
        replica = await hub.replica(room)
    except BrokerUnavailable:
        await _send_direct(ws, codec, p.error_frame(
            ErrorCode.UNAVAILABLE, "the server cannot reach its broker, retry", hello.id))
        await _refuse(ws, CloseCode.TRY_AGAIN, "broker unavailable", room=room, ip=ip)
        return False
    if not replica.state.settings.guests:
        await _auth_failed(ws, codec, hello, "this room needs a sign-in token", room, ip)
        return False
    return True


async def _guest_name_allowed(ws: WebSocket, hub: Hub, room: str, codec: Codec,
                              hello: p.Hello, addr: str, ip: str) -> bool:
    """Whether this address may make another guest identity in the room this hour.

    Generous by default (a council office shares one address), but it makes stuffing
    votes by reconnecting under fresh names cost real effort."""
    cap = hub.config.guest_names_per_hour
    if not cap:
        return True
    try:
        allowed = await hub.broker.take(room, f"gnames:{addr}", cap, 3600 * 1000)
    except BrokerUnavailable:
        await _send_direct(ws, codec, p.error_frame(
            ErrorCode.UNAVAILABLE, "the server cannot reach its broker, retry", hello.id))
        await _refuse(ws, CloseCode.TRY_AGAIN, "broker unavailable", room=room, ip=ip)
        return False
    if allowed:
        return True
    refused("guest_names", ip, room=room)
    await _send_direct(ws, codec, p.error_frame(
        ErrorCode.RATE_LIMITED, f"more than {cap} new guest names from your address in this "
        "room within an hour: rejoin with the name you had, or sign in", hello.id))
    await _refuse(ws, CloseCode.POLICY, "too many new guest names", room=room, ip=ip)
    return False


async def _auth_failed(ws: WebSocket, codec: Codec, hello: p.Hello, why: str, room: str,
                       ip: str) -> None:
    await _send_direct(ws, codec, p.error_frame(ErrorCode.AUTH_FAILED, why, hello.id))
    await _refuse(ws, CloseCode.AUTH_FAILED, f"auth failed: {why}", room=room, ip=ip)


async def _serve(ws: WebSocket, hub: Hub, room: str, codec: Codec, ip: str) -> None:
    # Until it has joined, a connection is in no room: the hub tracks it here so a
    # shutdown can close it with 1013 too.
    hub.greeting.add(ws)
    try:
        signed_in = await _hello(ws, hub, room, codec, ip)
    finally:
        hub.greeting.discard(ws)
    if signed_in is None or not hub.accepting:
        return
    identity, hello = signed_in
    structlog.contextvars.bind_contextvars(uid=identity.uid, role=str(identity.role))
    config = hub.config
    try:
        replica = await hub.replica(room)
    except BrokerUnavailable:
        await _send_direct(ws, codec, p.error_frame(
            ErrorCode.UNAVAILABLE, "the server cannot reach its broker, retry", hello.id))
        await _refuse(ws, CloseCode.TRY_AGAIN, "broker unavailable", room=room, ip=ip)
        return
    addr = address_key(ws.app.state.secret, ip)
    # A watcher only reads: it is no guest identity, so guest bans by address and the
    # new-guest-names budget leave it alone (a council office's embeds share one address).
    new_guest = identity.guest and hello.token is None and not hello.watch
    if identity.uid in replica.state.bans or (
            new_guest and core.address_banned(replica.state, addr)):
        await _send_direct(ws, codec, p.error_frame(
            ErrorCode.BANNED, "you are banned from this room", hello.id))
        await _refuse(ws, CloseCode.FORBIDDEN, "banned", room=room, uid=identity.uid, ip=ip)
        return
    if new_guest and not await _guest_name_allowed(ws, hub, room, codec, hello, addr, ip):
        return
    outlet = transport_of(ws.scope)
    if outlet is None:  # served by something else than livehub.server's uvicorn setup
        log.error("no livehub transport: run livehub with `livehub serve`", room=room, ip=ip)
        await ws.close(code=CloseCode.SERVER_ERROR)
        return
    conn = Connection(outlet, codec, identity, ip, config.send_queue, addr=addr,
                      flusher=hub.flusher, watch=hello.watch,
                      max_queue_bytes=config.send_queue_bytes)
    if identity.guest and not hello.watch:
        conn.guest_token = mint(ws.app.state.secret, name=identity.name, role=identity.role,
                                sub=identity.uid, rooms=[room], ttl=GUEST_TTL, guest=True)
    try:
        await hub.join(conn, room, hello.since, hello.epoch)
    except BaseException:
        await hub.leave(conn)
        raise
    log.debug("joined", room=room, uid=identity.uid, role=str(identity.role))

    async def leave(message: dict[str, Any]) -> None:
        _disconnected(message, room, conn.ip, conn.actor.uid)
        await hub.leave(conn)

    # From here the transport hands each message to a Reader, and this task ends.
    outlet.detach(Reader(outlet, _requests(hub, conn, codec, room), leave,
                         lambda code: conn.close(code), hub.connection_tasks))


def _requests(hub: Hub, conn: Connection, codec: Codec, room: str
              ) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """What answers a joined connection's messages, one at a time (livehub.reader)."""
    config = hub.config
    limiter = RateLimiter(config.rate_limit, config.rate_window)

    async def request(message: dict[str, Any]) -> None:
        if conn.close_code is not None or conn.closed:
            return  # closing: drain until the peer answers the close
        await _request(hub, conn, codec, room, limiter, message)

    return request


async def _request(hub: Hub, conn: Connection, codec: Codec, room: str, limiter: RateLimiter,
                   message: dict[str, Any]) -> None:
    config = hub.config
    data = _payload(message)
    allowed = limiter.allow(time.monotonic())
    try:
        req: p.Request | None = p.parse_request(codec, data if data is not None else b"")
        error: ProtocolError | None = None
    except ProtocolError as exc:
        req, error = None, exc
    rid = req.id if req is not None else error.rid if error is not None else None
    kind = req.t if req is not None else "invalid"
    if not allowed:
        if _flooding(conn, limiter, config, room):
            return
        metrics.REQUESTS.labels(kind, ErrorCode.RATE_LIMITED).inc()
        conn.send(p.error_frame(ErrorCode.RATE_LIMITED,
                                f"more than {config.rate_limit} requests in "
                                f"{config.rate_window:g} s", rid))
        return
    if error is not None or req is None:
        assert error is not None
        metrics.REQUESTS.labels(kind, error.code).inc()
        conn.send(p.error_frame(error.code, error.message, rid))
        return
    if isinstance(req, p.Hello):
        conn.send(p.error_frame(ErrorCode.BAD_FRAME, "already joined", req.id))
        return
    if not hub.accepting:
        # Shutting down: the requests already begun are finished and answered, none is
        # begun now, so that the hub's wait for them ends and no commit goes unanswered.
        metrics.REQUESTS.labels(kind, ErrorCode.UNAVAILABLE).inc()
        conn.send(p.error_frame(ErrorCode.UNAVAILABLE, "server shutting down: nothing "
                                "was published, retry after reconnecting", req.id))
        return
    await hub.handle(conn, req)


def _flooding(conn: Connection, limiter: RateLimiter, config: Config, room: str) -> bool:
    """Close a connection that keeps sending past its rate limit."""
    if len(limiter.refused) <= config.flood_limit:
        return False
    metrics.CONNECTIONS_REJECTED.labels("flooding").inc()
    log.info("connection closed", room=room, uid=conn.actor.uid, ip=conn.ip,
             reason="flooding past the rate limit")
    conn.close(CloseCode.POLICY, "flooding")
    return True
