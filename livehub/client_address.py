"""The client address every per-address rule uses (PROTOCOL.md, ``--forwarded-allow-ips``).

The address is the connection's peer; only on a connection from a listed proxy is
``X-Forwarded-For`` read, and then the client is its right-most entry that is not itself
a listed proxy (when every entry is listed, as with ``*``, the left-most). livehub owns
this rule rather than using uvicorn's ``ProxyHeadersMiddleware``: uvicorn 0.30 (the
oldest version allowed) knows no networks, sets the client to ``None`` when every entry
is listed, reads only the last ``X-Forwarded-For`` line, and every version reads
``FORWARDED_ALLOW_IPS`` from the environment by itself, so an inherited variable could
widen trust silently. The server runs uvicorn with ``proxy_headers=False``.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

DEFAULT_PROXIES = "127.0.0.1,::1"
_OPAQUE_MAX = 64  # an entry that is not an address is kept, but never longer than this

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=4096)
def canonical(host: str) -> str:
    """One spelling per address: IPv6 compressed and lower case, IPv4-mapped as IPv4."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:_OPAQUE_MAX]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _entry_host(entry: str) -> str:
    """The address in one ``X-Forwarded-For`` entry: ``a.b.c.d``, ``a.b.c.d:port``,
    ``v6``, ``[v6]`` or ``[v6]:port``; anything else is kept as it is (bounded)."""
    if entry.startswith("["):
        end = entry.find("]")
        if end > 0:
            entry = entry[1:end]
    elif entry.count(":") == 1:
        entry = entry.split(":", 1)[0]
    return canonical(entry)


class TrustedProxies:
    """A parsed ``--forwarded-allow-ips`` list: addresses, networks, or ``*``."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.any = False
        networks: list[IPNetwork] = []
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                continue
            if item == "*":
                self.any = True
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address, a network or '*'") from None
        self.networks = tuple(networks)
        self._listed = functools.lru_cache(maxsize=4096)(self._lookup)

    def _lookup(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def __contains__(self, host: object) -> bool:
        if not isinstance(host, str) or not host:
            return False
        return self.any or self._listed(host)

    def client(self, peer: str, forwarded: Iterable[bytes]) -> str:
        """The client address of a connection from ``peer`` (already canonical) that
        carried these ``X-Forwarded-For`` header values, in order."""
        if peer not in self:
            return peer
        entries = [e.strip() for value in forwarded
                   for e in value.decode("latin-1").split(",")]
        hosts = [_entry_host(e) for e in entries if e]
        if not hosts:
            return peer
        if not self.any:
            for host in reversed(hosts):
                if host not in self:
                    return host
        return hosts[0]


def parse_proxies(spec: str) -> TrustedProxies:
    """The list, or a ValueError naming the entry that is not an address or network."""
    return TrustedProxies(spec)


_SCHEMES = {"http", "https", "ws", "wss"}


class ClientAddressMiddleware:
    """Sets ``scope["client"]`` (so ``request.client.host`` and ``websocket.client.host``)
    to the client address, and the scheme from ``X-Forwarded-Proto`` of a listed proxy."""

    def __init__(self, app: ASGIApp, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            if client:
                peer = canonical(str(client[0]))
                if peer in self.proxies:
                    forwarded: list[bytes] = []
                    proto: bytes | None = None
                    for name, value in scope["headers"]:
                        if name == b"x-forwarded-for":
                            forwarded.append(value)
                        elif name == b"x-forwarded-proto":
                            proto = value
                    address = self.proxies.client(peer, forwarded)
                    scope["client"] = (address, 0)
                    if proto is not None:
                        scheme = proto.decode("latin-1").strip().lower()
                        if scheme in _SCHEMES:
                            secure = scheme in ("https", "wss")
                            if scope["type"] == "websocket":
                                scope["scheme"] = "wss" if secure else "ws"
                            else:
                                scope["scheme"] = "https" if secure else "http"
                elif peer != client[0]:
                    scope["client"] = (peer, client[1])
        await self.app(scope, receive, send)
