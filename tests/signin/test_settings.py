"""Sign-in settings and servers: off, half set, a provider that is down, a cookie made on
one process and used on another, and Secure cookies for an https public URL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.signin.conftest import PROGRAMME, oidc_env
from tests.signin.flow import (
    COOKIE,
    TestProvider,
    answer,
    callback,
    claims_of,
    refused,
    start,
    token_of,
)
from tests.support import REPO, SECRET, Client, LivehubProcess, free_port, token


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LivehubProcess]:
    """A livehub with the environment the test passes through ``indirect``."""
    proc = LivehubProcess(env=request.param, log_path=tmp_path / "livehub.log").start()
    yield proc
    proc.terminate()


@pytest.mark.parametrize("server", [{"LIVEHUB_PROGRAMME": str(PROGRAMME)}], indirect=True)
def test_no_settings_no_sign_in(server: LivehubProcess) -> None:
    for path in ("/auth/login?next=/room/board", "/auth/callback?code=x&state=y"):
        response = httpx.get(server.url + path, timeout=10)
        assert response.status_code == 404, path
        assert COOKIE not in response.cookies
    assert httpx.get(server.url + "/api/rooms", timeout=10).json()["sign_in"] is False


@pytest.mark.parametrize("given", [
    ["LIVEHUB_OIDC_ISSUER"],
    ["LIVEHUB_OIDC_ISSUER", "LIVEHUB_OIDC_CLIENT_ID", "LIVEHUB_OIDC_CLIENT_SECRET"],
    ["LIVEHUB_PUBLIC_URL", "LIVEHUB_OIDC_CLIENT_SECRET"],
])
def test_partial_settings_stop_serve_naming_each_missing(given: list[str]) -> None:
    full = oidc_env("http://127.0.0.1:9", "http://127.0.0.1:8000")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEHUB_")}
    env.update({"LIVEHUB_SECRET": SECRET, "LIVEHUB_PROGRAMME": full["LIVEHUB_PROGRAMME"]})
    env.update({k: full[k] for k in given})
    result = subprocess.run([sys.executable, "-m", "livehub", "serve", "--port",
                             str(free_port())], env=env, cwd=REPO, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    missing = [k for k in ("LIVEHUB_OIDC_ISSUER", "LIVEHUB_OIDC_CLIENT_ID",
                           "LIVEHUB_OIDC_CLIENT_SECRET", "LIVEHUB_PUBLIC_URL") if k not in given]
    named = result.stderr.split("missing:", 1)[1]
    for name in missing:
        assert name in named, result.stderr
    for name in given:
        assert name not in named, result.stderr


def test_provider_down_is_a_502_page_and_the_server_carries_on(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = LivehubProcess(log_path=tmp_path / "livehub.log")
    proc.env = oidc_env(dead, proc.url)
    proc.start()
    try:
        login = httpx.get(f"{proc.url}/auth/login?next=/room/board", timeout=20)
        text = refused(login, 502, callback=False)
        assert "cannot be reached" in text
        callback_page = httpx.get(f"{proc.url}/auth/callback?code=abc&state=def",
                                  cookies={COOKIE: "whatever"}, timeout=20)
        refused(callback_page, 400)  # no sign-in of ours to finish
        assert httpx.get(f"{proc.url}/healthz", timeout=10).status_code == 200
        assert httpx.get(f"{proc.url}/api/rooms", timeout=10).json()["sign_in"] is True

        async def join() -> str:
            client = await Client.join(proc.ws_url, "board", token=token("speaker", "Jo"))
            await client.close()
            role: str = client.welcome["me"]["role"]
            return role

        assert asyncio.run(join()) == "speaker"  # livehub token's tokens keep working
    finally:
        proc.terminate()


def test_discovery_answering_an_error_is_502(provider: TestProvider, tmp_path: Path) -> None:
    proc = LivehubProcess(log_path=tmp_path / "livehub.log")
    proc.env = oidc_env(provider.issuer, proc.url)
    proc.start()
    try:
        provider.control(tweaks={"discovery_status": 500})
        refused(httpx.get(f"{proc.url}/auth/login", timeout=10), 502, callback=False)
        provider.control(tweaks={})
        time.sleep(5.1)  # a failed discovery is remembered for 5 s, then asked again
        assert httpx.get(f"{proc.url}/auth/login", timeout=10).status_code == 302
    finally:
        provider.control(tweaks={})
        proc.terminate()


def test_provider_going_down_mid_sign_in(tmp_path: Path) -> None:
    """The provider answers the login, then is gone when the code is exchanged: 502."""
    provider = TestProvider().start()
    proc = LivehubProcess(log_path=tmp_path / "livehub.log")
    proc.env = oidc_env(provider.issuer, proc.url)
    proc.start()
    try:
        started = start(proc.url)
        url = answer(provider, started, email="a@example.org")
        provider.stop()
        refused(callback(url, started.cookie), 502)
    finally:
        provider.stop()
        proc.terminate()


def test_sign_in_begun_on_one_process_finishes_on_another(
        provider: TestProvider, tmp_path: Path) -> None:
    """Two processes share LIVEHUB_SECRET and the public URL (as behind a proxy); each
    has its own in-memory rooms, so nothing but the cookie carries the sign-in."""
    one = LivehubProcess(log_path=tmp_path / "one.log")
    two = LivehubProcess(log_path=tmp_path / "two.log")
    one.env = two.env = oidc_env(provider.issuer, one.url)
    one.start()
    two.start()
    try:
        started = start(one.url, "/room/board")
        url = answer(provider, started, email="jo@eastmere.gov.uk", name="Jo")
        response = callback(url, started.cookie, base=two.url)
        signed = token_of(response, one.url)
        assert claims_of(signed)["role"] == "speaker"

        async def join() -> str:
            client = await Client.join(two.ws_url, "board", token=signed)
            await client.close()
            role: str = client.welcome["me"]["role"]
            return role

        assert asyncio.run(join()) == "speaker"
    finally:
        one.terminate()
        two.terminate()


def test_https_public_url_makes_the_cookie_secure(provider: TestProvider,
                                                  tmp_path: Path) -> None:
    proc = LivehubProcess(log_path=tmp_path / "livehub.log")
    proc.env = oidc_env(provider.issuer, "https://live.eastmere.example")
    proc.start()
    try:
        login = httpx.get(f"{proc.url}/auth/login?next=/room/board", timeout=10)
        assert login.status_code == 302
        attrs = [a.strip().lower() for a in login.headers["set-cookie"].split(";")]
        assert "secure" in attrs and "httponly" in attrs and "samesite=lax" in attrs
        assert "redirect_uri=https%3A%2F%2Flive.eastmere.example%2Fauth%2Fcallback" in \
            login.headers["location"]
    finally:
        proc.terminate()


def test_livehub_check_validates_the_sign_in_table(tmp_path: Path) -> None:
    bad = tmp_path / "programme.toml"
    bad.write_text('[conference]\ntitle = "C"\n\n[[session]]\nslug = "a"\ntitle = "A"\n\n'
                   '[sign_in]\naffiliation = "Two\\nlines"\nmoderator = ["a@b.org"]\n'
                   'speakers = ["*.eastmere.gov.uk", "group:ok"]\n')
    result = subprocess.run([sys.executable, "-m", "livehub", "check", str(bad)], cwd=REPO,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 3, lines
    for field in ("moderator", "affiliation", "speakers"):
        assert any(line.startswith(f'{bad}: sign_in: field "{field}": ') for line in lines)
    good = subprocess.run([sys.executable, "-m", "livehub", "check", str(PROGRAMME)],
                          cwd=REPO, capture_output=True, text=True, timeout=30)
    assert good.returncode == 0, good.stderr
