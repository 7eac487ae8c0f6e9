"""The client address rule of ``--forwarded-allow-ips`` (livehub.client_address), the
settings that feed it and the connection limits, and the refusal log (no sockets)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from click.testing import CliRunner

from livehub import limits_log, metrics
from livehub.cli import main
from livehub.client_address import (
    DEFAULT_PROXIES,
    ClientAddressMiddleware,
    TrustedProxies,
    canonical,
)
from livehub.config import Config
from livehub.netguard import AddressSlots


def client(spec: str, peer: str, *lines: str) -> str:
    return TrustedProxies(spec).client(canonical(peer), [v.encode() for v in lines])


@pytest.mark.parametrize(("spec", "peer", "lines", "expected"), [
    # From a peer that is not listed the header is ignored: the peer is the client.
    (DEFAULT_PROXIES, "203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
    ("10.0.0.1", "10.0.0.2", ["198.51.100.1"], "10.0.0.2"),
    # From a listed proxy: the right-most entry that is not itself a listed proxy.
    (DEFAULT_PROXIES, "127.0.0.1", ["198.51.100.1"], "198.51.100.1"),
    (DEFAULT_PROXIES, "127.0.0.1", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),
    ("10.0.0.1,10.0.0.2", "10.0.0.1", ["6.6.6.6, 198.51.100.1, 10.0.0.2"], "198.51.100.1"),
    # Networks.
    ("10.0.0.0/8", "10.1.2.3", ["6.6.6.6, 198.51.100.1, 10.9.9.9"], "198.51.100.1"),
    ("2001:db8::/32", "2001:db8::1", ["198.51.100.1, 2001:db8::7"], "198.51.100.1"),
    # Every entry listed: the left-most; with `*` always the left-most.
    ("10.0.0.0/8", "10.0.0.1", ["10.0.0.3, 10.0.0.2"], "10.0.0.3"),
    ("*", "192.0.2.1", ["6.6.6.6, 198.51.100.1"], "6.6.6.6"),
    # Several header lines are one list, in order.
    (DEFAULT_PROXIES, "127.0.0.1", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),
    # No entry at all: the peer.
    (DEFAULT_PROXIES, "127.0.0.1", [], "127.0.0.1"),
    (DEFAULT_PROXIES, "127.0.0.1", [" , "], "127.0.0.1"),
    # Ports and brackets are not part of the address; one spelling per address.
    (DEFAULT_PROXIES, "127.0.0.1", ["198.51.100.1:4711"], "198.51.100.1"),
    (DEFAULT_PROXIES, "::1", ["[2001:DB8:0::1]:4711"], "2001:db8::1"),
    (DEFAULT_PROXIES, "::1", ["2001:DB8:0:0::1"], "2001:db8::1"),
    # A dual-stack socket's IPv4-mapped peer is the IPv4 address, listed or not.
    (DEFAULT_PROXIES, "::ffff:127.0.0.1", ["198.51.100.1"], "198.51.100.1"),
    (DEFAULT_PROXIES, "::ffff:203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
    # An entry that is no address is kept as the proxy gave it (bounded).
    (DEFAULT_PROXIES, "127.0.0.1", ["unknown"], "unknown"),
    (DEFAULT_PROXIES, "127.0.0.1", ["x" * 500], "x" * 64),
])
def test_client_address_rule(spec: str, peer: str, lines: list[str], expected: str) -> None:
    assert client(spec, peer, *lines) == expected


def test_bad_proxy_list_names_the_entry() -> None:
    with pytest.raises(ValueError, match=r"'proxy\.example'"):
        TrustedProxies("127.0.0.1, proxy.example")
    result = CliRunner().invoke(main, ["serve", "--forwarded-allow-ips", "10.0.0.0/33"],
                                env={"LIVEHUB_SECRET": "x" * 40})
    assert result.exit_code != 0
    assert "forwarded_allow_ips" in result.output and "10.0.0.0/33" in result.output
    assert "Traceback" not in result.output


async def run_middleware(spec: str, scope: dict[str, Any]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)

    async def nothing() -> Any:
        return {}

    async def ignore(message: Any) -> None:
        return None

    await ClientAddressMiddleware(app, TrustedProxies(spec))(scope, nothing, ignore)
    return seen


@pytest.mark.parametrize(("kind", "peer", "headers", "client", "scheme"), [
    ("http", "127.0.0.1", [(b"x-forwarded-for", b"6.6.6.6, 198.51.100.1"),
                           (b"x-forwarded-proto", b"https")], ("198.51.100.1", 0), "https"),
    ("websocket", "127.0.0.1", [(b"x-forwarded-proto", b"https")], ("127.0.0.1", 0), "wss"),
    ("websocket", "127.0.0.1", [(b"x-forwarded-proto", b"gopher")], ("127.0.0.1", 0), "ws"),
    # Not a listed proxy: both headers ignored.
    ("http", "203.0.113.9", [(b"x-forwarded-for", b"198.51.100.1"),
                             (b"x-forwarded-proto", b"https")], ("203.0.113.9", 5555), "http"),
    ("http", "::ffff:203.0.113.9", [], ("203.0.113.9", 5555), "http"),
])
async def test_middleware_sets_the_scope(kind: str, peer: str, headers: list[Any],
                                         client: tuple[str, int], scheme: str) -> None:
    scope = {"type": kind, "client": (peer, 5555), "headers": headers,
             "scheme": "ws" if kind == "websocket" else "http"}
    seen = await run_middleware(DEFAULT_PROXIES, scope)
    assert seen["client"] == client and seen["scheme"] == scheme


def test_settings_and_the_old_name(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("LIVEHUB_MAX_CONNECTIONS_PER_ADDRESS", "LIVEHUB_MAX_CONNECTIONS_PER_IP"):
        monkeypatch.delenv(key, raising=False)
    assert Config().max_connections_per_address == 500
    monkeypatch.setenv("LIVEHUB_MAX_CONNECTIONS_PER_IP", "7")  # the old name still works
    assert Config().max_connections_per_address == 7
    monkeypatch.setenv("LIVEHUB_MAX_CONNECTIONS_PER_ADDRESS", "9")  # the new one wins
    assert Config().max_connections_per_address == 9
    # uvicorn's own variable never widens trust.
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    assert Config().forwarded_allow_ips == DEFAULT_PROXIES


def test_address_slots() -> None:
    slots = AddressSlots(2)
    assert slots.acquire("a") and slots.acquire("a") and not slots.acquire("a")
    assert slots.acquire("b")
    slots.release("a")
    assert slots.acquire("a") and not slots.acquire("a")
    for _ in range(3):
        slots.release("a")
    slots.release("b")
    assert slots.counts == {}
    off = AddressSlots(0)
    assert all(off.acquire("a") for _ in range(1000))


def test_refusals_are_counted_every_time_and_logged_once_per_address(
        caplog: pytest.LogCaptureFixture) -> None:
    def count() -> float:
        value = metrics.REGISTRY.get_sample_value("livehub_refusals_total",
                                                  {"limit": "unit_test"})
        return value or 0.0

    before = count()
    with caplog.at_level(logging.INFO):
        logged = [limits_log.refused("unit_test", "198.51.100.1") for _ in range(50)]
        logged += [limits_log.refused("unit_test", "198.51.100.2") for _ in range(5)]
    assert count() - before == 55
    assert logged.count(True) == 2 and logged[0] and logged[50]
