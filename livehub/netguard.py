"""The transport guard: connection limits and HTTP deadlines, below the ASGI app.

PROTOCOL.md "Fair limits" counts connections from accept, before any byte arrives, and
closes a connection whose request head is not complete in time, however slowly its
bytes come. Neither can be seen from an ASGI app (it hears of a request only once its
head is complete), so livehub subclasses uvicorn's httptools protocol, overriding only
the public ``asyncio.Protocol`` methods (``connection_made``, ``data_received``,
``eof_received``, ``connection_lost``), and watches the bytes with its own
``httptools`` parser (the same llhttp uvicorn uses, so both agree on where a head ends).

- Every connection counts towards ``max_connections`` for the process; one beyond it gets
  503 and is closed. The cap is also kept below the process's open-file limit, so the
  process never runs out of descriptors for its own use (Redis, files, logs).
- A connection counts under its client address: from accept under its peer, or, from a
  listed proxy, under the address it forwards once its request head has arrived (and
  under none before). One beyond ``max_connections_per_address`` gets 429 and is closed.
- The first request head must be complete within ``header_timeout`` of accept, and every
  later one on a keep-alive connection within ``header_timeout`` of its first byte;
  otherwise 408 and close. A head over ``MAX_HEAD`` bytes gets 431 and is closed.
- After the upgrade, the WebSocket protocol (``livehub.server``) calls :meth:`closed`.

Relies on: uvicorn's ``HttpToolsProtocol`` being an ``asyncio.Protocol`` that uvicorn
builds through ``Config.http`` with keyword arguments, and that hands the transport to
``Config.ws`` on an upgrade (uvicorn >= 0.30); httptools' parser callbacks (>= 0.6).
"""

from __future__ import annotations

import asyncio
import resource

import httptools
import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from livehub import limits_log
from livehub.client_address import TrustedProxies, canonical, parse_proxies
from livehub.config import Config

log = structlog.get_logger("livehub.netguard")

MAX_HEAD = 64 * 1024  # bytes of one request head (line and headers)
FD_RESERVE = 64  # descriptors kept back from connections for the process's own use


def raise_open_file_limit() -> None:
    """Lift the soft open-file limit to the hard one (as Go's runtime and nginx do):
    the soft default (often 1,024) is far below what a server of WebSockets needs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass  # not allowed here: the soft limit stands, and fd_bound follows it


def fd_bound(reserve: int = FD_RESERVE) -> int | None:
    """How many connections the open-file limit leaves room for (None: no limit)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    return max(8, int(soft) - reserve)


def _response(status: int, phrase: str, message: str) -> bytes:
    body = message.encode()
    return (f"HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n"
            f"retry-after: 10\r\n\r\n").encode() + body


class AddressSlots:
    """Open connections per client address, for this process."""

    __slots__ = ("counts", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit  # 0: off
        self.counts: dict[str, int] = {}

    def acquire(self, address: str) -> bool:
        n = self.counts.get(address, 0)
        if self.limit and n >= self.limit:
            return False
        self.counts[address] = n + 1
        return True

    def release(self, address: str) -> None:
        n = self.counts.get(address, 0) - 1
        if n > 0:
            self.counts[address] = n
        else:
            self.counts.pop(address, None)


class NetGuard:
    """The per-process state every connection's guard shares."""

    def __init__(self, *, per_address: int, max_connections: int, header_timeout: float,
                 proxies: TrustedProxies) -> None:
        self.slots = AddressSlots(per_address)
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.proxies = proxies
        self.open = 0
        self.live: dict[asyncio.BaseTransport, ConnectionGuard] = {}

    @classmethod
    def from_config(cls, cfg: Config) -> NetGuard:
        cap = cfg.max_connections
        bound = fd_bound()
        if bound is not None and bound < cap:
            log.info("connections per process capped by the open-file limit",
                     max_connections=bound, configured=cap)
            cap = bound
        if cfg.max_connections_per_ip is not None:
            log.warning("LIVEHUB_MAX_CONNECTIONS_PER_IP is deprecated: use "
                        "LIVEHUB_MAX_CONNECTIONS_PER_ADDRESS (now counted from accept)",
                        max_connections_per_address=cfg.max_connections_per_address)
        return cls(per_address=cfg.max_connections_per_address, max_connections=cap,
                   header_timeout=cfg.header_timeout,
                   proxies=parse_proxies(cfg.forwarded_allow_ips))

    def closed(self, transport: asyncio.BaseTransport) -> None:
        """The connection on ``transport`` has gone: free what it held (idempotent)."""
        conn = self.live.pop(transport, None)
        if conn is not None:
            conn.release()


class ConnectionGuard:
    """One connection's count, head deadline and head parser (httptools callbacks)."""

    def __init__(self, guard: NetGuard, transport: asyncio.Transport, peer: str) -> None:
        self.guard = guard
        self.transport = transport
        self.peer = peer
        self.address: str | None = None  # the address it is counted under
        self.counted = False
        self.refused = False
        self.proxied = peer in guard.proxies
        self.forwarded: list[bytes] = []
        self.in_head = True
        self.first = True
        self.head_bytes = 0
        self.timer: asyncio.TimerHandle | None = None
        self.parser: httptools.HttpRequestParser | None = None

    # -- accept ----------------------------------------------------------------------------

    def admit(self) -> None:
        guard = self.guard
        if guard.open >= guard.max_connections:
            self.refuse(503, "Service Unavailable", "the server is full, retry shortly",
                        "connections")
            return
        if not self.proxied:
            if not guard.slots.acquire(self.peer):
                self.refuse(429, "Too Many Requests",
                            "too many connections from your address",
                            "connections_per_address")
                return
            self.address = self.peer
        guard.open += 1
        self.counted = True
        guard.live[self.transport] = self
        self.parser = httptools.HttpRequestParser(
            _ProxiedCallbacks(self) if self.proxied else _Callbacks(self))
        self.timer = asyncio.get_running_loop().call_later(guard.header_timeout,
                                                           self.too_slow)

    def refuse(self, status: int, phrase: str, message: str, limit: str) -> None:
        """Answer ``status`` and close; counted and logged as a refusal by ``limit``."""
        self.refused = True
        self.cancel_timer()
        limits_log.refused(limit, self.address or self.peer, message)
        if not self.transport.is_closing():
            self.transport.write(_response(status, phrase, message))
            self.transport.close()

    # -- bytes -----------------------------------------------------------------------------

    def feed(self, data: bytes) -> bool:
        """Watch ``data``; False when the connection was refused (uvicorn must not see it)."""
        parser = self.parser
        was_in_head = self.in_head
        if parser is not None:
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                self.parser = None  # a WebSocket now: the rest are its frames
            except httptools.HttpParserError:
                self.parser = None  # uvicorn answers 400 and closes
                self.cancel_timer()
        if self.refused:
            return False
        if self.in_head and was_in_head:  # a head that began in this chunk counts from the next
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD:
                self.refuse(431, "Request Header Fields Too Large",
                            "request head too large", "request_head_size")
                return False
        return True

    def message_begin(self) -> None:
        if self.first:
            self.first = False  # its deadline runs from accept
            return
        self.in_head = True
        self.head_bytes = 0
        self.cancel_timer()
        self.timer = asyncio.get_running_loop().call_later(self.guard.header_timeout,
                                                           self.too_slow)

    def headers_complete(self) -> None:
        self.in_head = False
        self.cancel_timer()
        if not self.proxied:
            return
        address = self.guard.proxies.client(self.peer, self.forwarded)
        self.forwarded = []
        if address == self.address:
            return
        if self.address is not None:
            self.guard.slots.release(self.address)
            self.address = None
        if not self.guard.slots.acquire(address):
            self.address = address  # for the refusal's log line; not counted
            self.refuse(429, "Too Many Requests", "too many connections from your address",
                        "connections_per_address")
            self.address = None
            return
        self.address = address

    def too_slow(self) -> None:
        self.timer = None
        if not self.transport.is_closing():
            self.refuse(408, "Request Timeout", "no complete request head in time",
                        "header_timeout")

    # -- close -----------------------------------------------------------------------------

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def release(self) -> None:
        self.cancel_timer()
        self.parser = None
        if self.address is not None:
            self.guard.slots.release(self.address)
            self.address = None
        if self.counted:
            self.guard.open -= 1
            self.counted = False


class _Callbacks:
    """httptools calls these by name; only the head's start and end matter here."""

    __slots__ = ("conn",)

    def __init__(self, conn: ConnectionGuard) -> None:
        self.conn = conn

    def on_message_begin(self) -> None:
        self.conn.message_begin()

    def on_headers_complete(self) -> None:
        self.conn.headers_complete()


class _ProxiedCallbacks(_Callbacks):
    """From a listed proxy, the ``X-Forwarded-For`` lines name the client."""

    __slots__ = ()

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 15 and name.lower() == b"x-forwarded-for":
            self.conn.forwarded.append(value)


def _peer(transport: asyncio.BaseTransport) -> str | None:
    peername = transport.get_extra_info("peername")
    if isinstance(peername, tuple) and peername and isinstance(peername[0], str):
        return canonical(peername[0])
    return None  # a Unix socket: no address to count


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol behind a :class:`ConnectionGuard`."""

    netguard: NetGuard  # set on the class that :func:`http_protocol` makes

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = _peer(transport)
        self.livehub_guard: ConnectionGuard | None = None
        if peer is not None:
            self.livehub_guard = ConnectionGuard(self.netguard, transport, peer)
            self.livehub_guard.admit()

    def data_received(self, data: bytes) -> None:
        conn = self.livehub_guard
        if conn is not None and (conn.refused or not conn.feed(data)):
            return
        super().data_received(data)

    def eof_received(self) -> None:
        conn = self.livehub_guard
        if conn is not None and conn.refused:
            return
        super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            conn = self.livehub_guard
            if conn is not None:
                self.netguard.closed(conn.transport)
                conn.release()


def http_protocol(guard: NetGuard) -> type[asyncio.Protocol]:
    """The class to give uvicorn as ``http=``: the guarded protocol bound to ``guard``."""
    cls: type[asyncio.Protocol] = type("LivehubHttpProtocol", (GuardedHttpProtocol,),
                                       {"netguard": guard})
    return cls

