"""The presentation view, the embed and the record through a real server (PROTOCOL.md
"Pages"), with an embed origin configured."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import write_programme
from tests.redis_server import RedisServer
from tests.support import REPO, Client, LivehubProcess, token

EMBEDDER = "https://www.eastmere.gov.uk"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivehubProcess]:
    tmp = tmp_path_factory.mktemp("pages")
    proc = LivehubProcess(env={"LIVEHUB_PROGRAMME": str(write_programme(tmp / "p.toml", 6)),
                               "LIVEHUB_EMBED_ORIGINS": f"{EMBEDDER}, http://localhost:8080"},
                          log_path=tmp / "livehub.log").start()
    yield proc
    proc.terminate()


def csp(response: httpx.Response) -> str:
    return response.headers["content-security-policy"]


def test_only_the_embed_may_be_framed_and_only_by_listed_origins(server: LivehubProcess) -> None:
    embed = httpx.get(f"{server.url}/embed/room-000")
    assert embed.status_code == 200 and 'data-mode="embed"' in embed.text
    assert f"frame-ancestors {EMBEDDER} http://localhost:8080;" in csp(embed)
    for path in ("/", "/room/room-000", "/present/room-000", "/record/room-000"):
        assert "frame-ancestors 'none'" in csp(httpx.get(server.url + path)), path
    present = httpx.get(f"{server.url}/present/room-000")
    assert present.status_code == 200 and "<button" not in present.text
    for path in ("/present/nope", "/embed/nope", "/record/nope", "/record/NOPE!"):
        assert httpx.get(server.url + path).status_code == 404


def test_a_bad_embed_origin_stops_the_server_with_a_message() -> None:
    env = {"LIVEHUB_EMBED_ORIGINS": "https://ok.example, 'none'; script-src *",
           "LIVEHUB_SECRET": "x" * 32, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "livehub", "serve", "--port", "0"], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "LIVEHUB_EMBED_ORIGINS" in done.stderr and "Traceback" not in done.stderr


async def test_the_record_is_404_while_open_and_public_once_closed(
        server: LivehubProcess) -> None:
    room = "room-001"
    mod = await Client.join(server.ws_url, room, token=token("moderator", "Chair", sub="mo"))
    shy = await Client.join(server.ws_url, room, token=token("participant", "Shy Person",
                                                             sub="shy"))
    url = f"{server.url}/record/{room}"
    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).status_code == 404
        await shy.request({"t": "ask", "text": "Who pays for <b>this</b>?", "anonymous": True})
        pid = (await mod.request({"t": "poll", "question": "Useful?",
                                  "options": ["Yes", "No"]}))["pid"]
        await shy.request({"t": "ballot", "pid": pid, "choices": [1]})
        await mod.request({"t": "mute", "uid": "shy", "seconds": 60})
        await mod.request({"t": "settings", "state": "closed"})
        page = await http.get(url)
        assert page.status_code == 200
        html = page.text
        assert "Who pays for &lt;b&gt;this&lt;/b&gt;?" in html and "<b>this" not in html
        assert "Useful?" in html and "No: 1 vote" in html
        assert "Shy Person" not in html and ">shy<" not in html
        assert "Moderation" not in html
        assert "<script" not in html
        # A moderator's post in the closed room is in the record at once (the log grew).
        assert (await mod.request({"t": "post", "text": "Minutes to follow"}))["t"] == "ok"
        assert "Minutes to follow" in (await http.get(url)).text
        # Reopened: the record goes away again.
        await mod.request({"t": "settings", "state": "open"})
        assert (await http.get(url)).status_code == 404
    for c in (mod, shy):
        await c.close()


def test_pages_are_served_from_the_package_static(server: LivehubProcess) -> None:
    for name in ("live-view.js", "polls-view.js", "room-polls.js"):
        response = httpx.get(f"{server.url}/static/js/{name}")
        assert response.status_code == 200, name
    assert Path(REPO / "static" / "js" / "live-view.js").is_file()


async def test_the_record_answers_503_with_json_while_the_broker_is_unreachable(
        tmp_path: Path) -> None:
    with RedisServer() as redis:
        proc = LivehubProcess(args=["--redis", redis.url],
                              env={"LIVEHUB_PROGRAMME": str(write_programme(tmp_path / "p.toml",
                                                                            2))},
                              log_path=tmp_path / "livehub.log").start()
        try:
            mod = await Client.join(proc.ws_url, "room-000",
                                    token=token("moderator", "Chair", sub="mo"))
            assert (await mod.request({"t": "settings", "state": "closed"}))["t"] == "ok"
            redis.stop()
            async with httpx.AsyncClient() as http:
                response = await http.get(f"{proc.url}/record/room-000", timeout=20)
            assert response.status_code == 503
            assert response.json()["error"] == "unavailable"
            await mod.close()
        finally:
            proc.terminate()
