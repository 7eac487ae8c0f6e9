"""Driving a sign-in like a browser would, one redirect at a time, with httpx."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt

from tests.support import REPO, SECRET, free_port

CLIENT_ID = "livehub-test-client"
CLIENT_SECRET = "s3cret/with:odd&chars"  # client_secret_basic form-encodes these
COOKIE = "livehub_signin"


class TestProvider:
    """``tests.signin.provider`` in a child process, stopped by pid."""

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TestProvider:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.signin.provider", "--port", str(self.port),
             "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET], cwd=REPO)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the test provider exited"
            with contextlib.suppress(httpx.HTTPError):
                url = f"{self.issuer}/.well-known/openid-configuration"
                if httpx.get(url, timeout=0.5).status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the test provider did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def control(self, **body: Any) -> dict[str, Any]:
        """``rotate=True`` for a new key; ``tweaks={...}`` for the next ID tokens."""
        response = httpx.post(f"{self.issuer}/_control", json=body, timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


class _Hidden(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden" and a.get("name"):
            self.fields[str(a["name"])] = a.get("value") or ""


@dataclass
class Started:
    """A sign-in begun at livehub: the provider's login form and the signed cookie."""

    login: httpx.Response
    authorize_url: str
    cookie: str
    form: dict[str, str]


def start(base: str, next_path: str | None = "/room/board") -> Started:
    params = {} if next_path is None else {"next": next_path}
    login = httpx.get(f"{base}/auth/login", params=params, timeout=10)
    assert login.status_code == 302, (login.status_code, login.text)
    cookie = login.cookies.get(COOKIE)
    assert cookie
    authorize_url = login.headers["location"]
    page = httpx.get(authorize_url, timeout=10)
    assert page.status_code == 200, page.text
    parser = _Hidden()
    parser.feed(page.text)
    return Started(login, authorize_url, cookie, parser.fields)


def answer(provider: TestProvider, started: Started, **person: str) -> str:
    """The provider's redirect back (the callback URL) after the person logs in."""
    response = httpx.post(f"{provider.issuer}/authorize",
                          data={**started.form, "action": "login", **person}, timeout=10)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def callback(url: str, cookie: str | None, base: str | None = None) -> httpx.Response:
    """Follow the provider's redirect to livehub (to ``base`` instead, if given)."""
    if base is not None:
        parts = urlsplit(url)
        url = f"{base}{parts.path}?{parts.query}"
    cookies = {COOKIE: cookie} if cookie is not None else None
    return httpx.get(url, cookies=cookies, timeout=20)


def sign_in(base: str, provider: TestProvider, next_path: str = "/room/board",
            **person: str) -> httpx.Response:
    started = start(base, next_path)
    return callback(answer(provider, started, **person), started.cookie)


def token_of(response: httpx.Response, base: str, next_path: str = "/room/board") -> str:
    assert response.status_code == 302, (response.status_code, response.text)
    location = response.headers["location"]
    prefix = f"{base}{next_path}#token="
    assert location.startswith(prefix), location
    return location[len(prefix):]


def claims_of(token: str) -> dict[str, Any]:
    """A livehub token's claims, checked with the servers' secret."""
    claims: dict[str, Any] = jwt.decode(token, SECRET, algorithms=["HS256"])
    return claims


def refused(response: httpx.Response, status: int = 400, *, callback: bool = True) -> str:
    """Check a refusal page: its status, plain HTML, no token; a callback's clears the
    cookie, a login's sets none."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("text/html")
    text = response.text
    assert "token" not in response.headers.get("location", "")
    assert re.search(r"eyJ[\w-]+\.[\w-]+\.", text) is None  # no JWT anywhere
    assert "Traceback" not in text
    assert "Try signing in again" in text
    set_cookie = response.headers.get("set-cookie", "")
    if not callback:
        assert set_cookie == ""
        return text
    assert set_cookie.startswith(f"{COOKIE}=") and "Max-Age=0" in set_cookie, set_cookie
    return text


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
