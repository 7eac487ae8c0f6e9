"""Small helpers shared by the reports tests."""

from __future__ import annotations

from typing import Any

from tests.support import Client


async def until_msg(client: Client, mid: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Every frame ``client`` got up to the ``msg`` ``mid`` (that one included)."""
    seen: list[dict[str, Any]] = []
    while True:
        ev = await client.recv(timeout)
        seen.append(ev)
        if ev.get("t") == "msg" and ev.get("mid") == mid and not ev.get("held"):
            return seen


async def sentinel(poster: Client, *watchers: Client) -> list[list[dict[str, Any]]]:
    """``poster`` posts; what each watcher got up to that post (so nothing more is on its way)."""
    ok = await poster.request({"t": "post", "text": "sentinel"})
    assert ok["t"] == "ok", ok
    return [await until_msg(w, ok["mid"]) for w in watchers]


def types(events: list[dict[str, Any]]) -> list[str]:
    return [ev["t"] for ev in events]


def seq_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [ev for ev in events if "seq" in ev and ev["t"] not in ("ok", "error")]
