"""Reloading the programme without a restart: POST /api/programme/reload and SIGHUP."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_PROGRAMME
from tests.ops.helpers import bearer, fetch, sample, scrape
from tests.support import Client, LivehubProcess, token

ORIGINAL = Path(TEST_PROGRAMME).read_text()


@pytest.fixture(scope="module")
def reloadable(tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[LivehubProcess, Path]]:
    d = tmp_path_factory.mktemp("reload")
    programme = d / "programme.toml"
    programme.write_text(ORIGINAL)
    proc = LivehubProcess(env={"LIVEHUB_PROGRAMME": str(programme)},
                          log_path=d / "livehub.log").start()
    yield proc, programme
    proc.terminate()


def rooms(server: LivehubProcess) -> dict[str, dict[str, Any]]:
    r = httpx.get(f"{server.url}/api/rooms", timeout=5)
    assert r.status_code == 200
    return {room["id"]: room for room in r.json()["rooms"]}


def edited(*, lobby_title: str, extra: bool = True) -> str:
    """The test programme with lobby renamed (slow mode 5), lobby-2 at slow mode 3,
    premod and slow gone, and (optionally) a new session."""
    text = ORIGINAL.replace('title = "Lobby: open chat"',
                            f'title = "{lobby_title}"\nslow_mode = 5')
    text = text.replace('title = "Second lobby"', 'title = "Second lobby"\nslow_mode = 3')
    blocks = text.split("[[session]]")
    blocks = [b for b in blocks if 'slug = "premod"' not in b and 'slug = "slow"' not in b]
    text = "[[session]]".join(blocks)
    if extra:
        text += '\n[[session]]\nslug = "extra"\ntitle = "Extra session"\n'
    return text


async def wait_for(pred: Any, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_reload_by_endpoint_and_sighup_keeps_everyone(
        reloadable: tuple[LivehubProcess, Path]) -> None:
    server, programme = reloadable
    stay = await Client.join(server.ws_url, "lobby", name="Stays")
    keeper = await Client.join(server.ws_url, "premod", name="Keeper")
    mod = await Client.join(server.ws_url, "lobby-2", token=token("moderator", sub="mod-r"))
    assert (await mod.request({"t": "settings", "slow_mode": 7}))["t"] == "ok"

    programme.write_text(edited(lobby_title="Lobby, renamed"))
    r = await fetch("POST", f"{server.url}/api/programme/reload", headers=bearer())
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["status"] == "reloaded" and result["source"] == str(programme)
    assert result["added"] == ["extra"] and result["removed"] == ["slow"]
    assert result["kept"] == ["premod"]  # someone is in it: not dropped
    assert set(result["updated"]) == {"lobby", "lobby-2"}

    listed = rooms(server)
    assert listed["lobby"]["title"] == "Lobby, renamed"
    assert listed["extra"]["title"] == "Extra session" and "slow" not in listed
    assert "premod" in listed
    # The file's settings reach a room whose log has none; the log wins in lobby-2.
    assert listed["lobby"]["settings"]["slow_mode"] == 5
    assert listed["lobby-2"]["settings"]["slow_mode"] == 7

    # Nobody was dropped, and the new room and title are there for newcomers.
    assert (await stay.request({"t": "post", "text": "still here"}))["t"] == "ok"
    assert (await keeper.request({"t": "ping"}))["t"] == "ok"
    newcomer = await Client.join(server.ws_url, "lobby", name="New")
    assert newcomer.welcome["room"]["title"] == "Lobby, renamed"
    assert newcomer.welcome["room"]["settings"]["slow_mode"] == 5
    assert newcomer.welcome["history"][-1]["text"] == "still here"
    extra = await Client.join(server.ws_url, "extra", name="Extra")
    gone = await Client.connect(server.ws_url, "slow")
    assert (await gone.expect_close()).code == 4404

    # SIGHUP does the same.
    programme.write_text(edited(lobby_title="Lobby after SIGHUP"))
    assert server.proc is not None
    server.proc.send_signal(signal.SIGHUP)
    await wait_for(lambda: rooms(server)["lobby"]["title"] == "Lobby after SIGHUP", "SIGHUP")
    # Still connected, and under the room's new slow mode like everyone else.
    assert (await stay.request({"t": "post", "text": "too soon"}))["code"] == "slow_mode"

    # A bad file changes nothing and says why: 422 for the endpoint, a log line for SIGHUP.
    programme.write_text(ORIGINAL.replace("slow_mode = 2", "slow_mode = -2"))
    r = await fetch("POST", f"{server.url}/api/programme/reload", headers=bearer())
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "bad_programme" and "current programme stays" in body["message"]
    assert any(str(programme) in p and '"slow"' in p and '"slow_mode"' in p
               for p in body["problems"])
    assert rooms(server)["lobby"]["title"] == "Lobby after SIGHUP"
    server.proc.send_signal(signal.SIGHUP)
    await wait_for(lambda: "programme reload (SIGHUP) refused" in server.log_text(),
                   "the refusal in the log")
    assert server.proc.poll() is None
    assert rooms(server)["lobby"]["title"] == "Lobby after SIGHUP"
    assert (await stay.request({"t": "ping"}))["t"] == "ok"

    counts = scrape(server.url)
    assert sample(counts, "livehub_programme_reloads_total", outcome="ok") == 2
    assert sample(counts, "livehub_programme_reloads_total", outcome="refused") == 2
    for client in (stay, keeper, mod, newcomer, extra):
        await client.close()


def test_reload_needs_an_unrestricted_moderator(reloadable: tuple[LivehubProcess, Path]
                                                ) -> None:
    server, _ = reloadable
    url = f"{server.url}/api/programme/reload"
    assert httpx.post(url, timeout=5).status_code == 401
    assert httpx.post(url, headers=bearer("speaker"), timeout=5).status_code == 403
    assert httpx.post(url, headers=bearer(rooms=["lobby"]), timeout=5).status_code == 403
