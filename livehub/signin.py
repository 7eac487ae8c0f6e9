"""Staff sign-in over OpenID Connect: ``GET /auth/login`` and ``GET /auth/callback``.

What the callback needs (state, nonce, PKCE verifier, where to go next) travels
in a short-lived cookie signed with a key derived from ``LIVEHUB_SECRET``, so
any process sharing the secret can finish a sign-in that another began and no
server-side store is needed. A successful callback ends in a 302 to
``{LIVEHUB_PUBLIC_URL}{next}#token=TOKEN``; a refused one in a plain page that
says what happened and offers to try again, never with a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from html import escape
from typing import Any, Final
from urllib.parse import quote, urlencode

import jwt
import structlog
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from livehub import auth
from livehub.hub import Hub
from livehub.oidc import (
    SCOPE,
    OidcSettings,
    Provider,
    ProviderUnavailable,
    SignInRefused,
    http_client,
)
from livehub.roles import Role

log = structlog.get_logger("livehub.signin")

COOKIE: Final = "livehub_signin"
COOKIE_PATH: Final = "/auth"
COOKIE_TTL: Final = 600  # seconds: a sign-in must come back within 10 minutes
TOKEN_TTL: Final = 8 * 3600
NAME_MAX: Final = 80
_COOKIE_AUDIENCE: Final = "livehub-signin-state"
_MAX_PARAM: Final = 2048  # longest code or state read from the query

# Characters that cannot stand in a one-line name: controls, line and paragraph
# separators, and the bidirectional controls that could reorder what is shown.
_NOT_IN_NAME = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
# A path on this site: one leading "/", no "\", whitespace or control character.
_NEXT_BAD = re.compile(r"[\\\s\x00-\x1f\x7f-\x9f]")


class SignIn:
    """Sign-in as one app knows it: the settings, the provider, the cookie key."""

    def __init__(self, settings: OidcSettings, secret: str) -> None:
        self.settings = settings
        self.provider = Provider(settings)
        self.secret = secret
        # Its own key, so a room token can never pass for a sign-in cookie or back.
        self.cookie_key = hmac.new(secret.encode(), b"livehub sign-in cookie",
                                   hashlib.sha256).hexdigest()


# --- pure helpers ------------------------------------------------------------------------


def valid_next(value: str | None) -> str | None:
    """``next`` if it is a path on this site (default ``/``), else None."""
    if value is None or value == "":
        return "/"
    if not value.startswith("/") or value.startswith("//") or _NEXT_BAD.search(value):
        return None
    return value.split("#", 1)[0]  # the token goes in the fragment


def display_name(claims: dict[str, Any]) -> str:
    """``name``, else ``preferred_username``, else the local part of ``email``: one line,
    at most 80 characters."""
    email = claims.get("email")
    local = email.rpartition("@")[0] if isinstance(email, str) else None
    for candidate in (claims.get("name"), claims.get("preferred_username"), local):
        if isinstance(candidate, str):
            name = _NOT_IN_NAME.sub(" ", candidate)[:NAME_MAX]
            if name.strip():
                return name
    return "Signed-in person"


def subject(claims: dict[str, Any]) -> str:
    """A stable livehub id for the provider's person, which never shows their own id."""
    digest = hashlib.sha256(json.dumps([claims["iss"], claims["sub"]]).encode()).hexdigest()
    return f"oidc:{digest[:32]}"


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def mint_for(sign_in: SignIn, hub: Hub, claims: dict[str, Any]) -> tuple[str, Role]:
    rules = hub.programme.sign_in
    role = rules.role_for(claims) if rules is not None else Role.PARTICIPANT
    token = auth.mint(sign_in.secret, name=display_name(claims), role=role,
                      sub=subject(claims), ttl=TOKEN_TTL,
                      affiliation=rules.affiliation if rules is not None else None)
    return token, role


# --- pages ---------------------------------------------------------------------------------


def refusal_page(status: int, heading: str, text: str, next_path: str) -> HTMLResponse:
    again = "/auth/login?" + urlencode({"next": next_path}, quote_via=quote)
    body = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(heading)}</title>
<link rel="stylesheet" href="/static/css/livehub.css">
</head>
<body class="page-error">
<main id="main" class="wrap">
<h1>{escape(heading)}</h1>
<p>{escape(text)}</p>
<p><a href="{escape(again)}">Try signing in again</a></p>
<p><a href="/">See the programme</a></p>
</main>
</body>
</html>
"""
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _clear_cookie(response: Response, sign_in: SignIn) -> Response:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=sign_in.settings.secure_cookies,
                           httponly=True, samesite="lax")
    return response


def _sign_in(request: Request) -> SignIn | None:
    value: SignIn | None = getattr(request.app.state, "signin", None)
    return value


_NOT_CONFIGURED = "Sign-in is not configured on this server.\n"


# --- routes --------------------------------------------------------------------------------


async def login(request: Request) -> Response:
    sign_in = _sign_in(request)
    if sign_in is None:
        return PlainTextResponse(_NOT_CONFIGURED, status_code=404)
    next_path = valid_next(request.query_params.get("next"))
    if next_path is None:
        return PlainTextResponse(
            "next must be a path on this site: it starts with a single / and holds no "
            "backslash, space or control character.\n", status_code=400)
    try:
        async with http_client() as client:
            metadata = await sign_in.provider.metadata(client)
    except ProviderUnavailable as exc:
        log.warning("sign-in provider unavailable", reason=str(exc))
        return refusal_page(502, "The sign-in service cannot be reached",
                            "We could not reach your organisation's sign-in service just "
                            "now. Please try again in a minute.", next_path)
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(48)  # 64 characters: within PKCE's 43 to 128
    s = sign_in.settings
    query = urlencode({
        "response_type": "code", "client_id": s.client_id, "redirect_uri": s.redirect_uri,
        "scope": SCOPE, "state": state, "nonce": nonce,
        "code_challenge": pkce_challenge(verifier), "code_challenge_method": "S256",
    }, quote_via=quote)
    endpoint: str = metadata["authorization_endpoint"]
    sep = "&" if "?" in endpoint else "?"
    response = RedirectResponse(f"{endpoint}{sep}{query}", status_code=302)
    cookie = jwt.encode({"state": state, "nonce": nonce, "verifier": verifier,
                         "next": next_path, "aud": _COOKIE_AUDIENCE,
                         "exp": int(time.time()) + COOKIE_TTL},
                        sign_in.cookie_key, algorithm="HS256")
    response.set_cookie(COOKIE, cookie, max_age=COOKIE_TTL, path=COOKIE_PATH,
                        secure=s.secure_cookies, httponly=True, samesite="lax")
    response.headers["Cache-Control"] = "no-store"
    return response


def _read_cookie(request: Request, sign_in: SignIn) -> dict[str, Any] | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        claims: dict[str, Any] = jwt.decode(raw, sign_in.cookie_key, algorithms=["HS256"],
                                            audience=_COOKIE_AUDIENCE,
                                            options={"require": ["exp", "aud"]})
    except jwt.PyJWTError:
        return None
    fields = ("state", "nonce", "verifier", "next")
    if not all(isinstance(claims.get(f), str) for f in fields):
        return None
    return claims


async def callback(request: Request) -> Response:
    sign_in = _sign_in(request)
    if sign_in is None:
        return PlainTextResponse(_NOT_CONFIGURED, status_code=404)
    response = await _callback(request, sign_in)
    return _clear_cookie(response, sign_in)  # one sign-in, one callback


async def _callback(request: Request, sign_in: SignIn) -> Response:
    cookie = _read_cookie(request, sign_in)
    next_path = valid_next(cookie["next"]) if cookie else None
    next_path = next_path or "/"
    params = request.query_params
    error = params.get("error")
    if error is not None:
        log.info("sign-in refused by the provider", error=error[:100])
        if error == "access_denied":
            return refusal_page(400, "Sign-in was cancelled",
                                "Your organisation's sign-in service says the sign-in was "
                                "cancelled or not allowed, so you are not signed in.",
                                next_path)
        return refusal_page(400, "Sign-in did not work",
                            "Your organisation's sign-in service turned the sign-in down "
                            f"(it said: {error[:100]}).", next_path)
    if cookie is None:
        return refusal_page(400, "This sign-in has expired",
                            "We could not find a sign-in started in this browser in the last "
                            "10 minutes. It may have begun in another browser, or taken too "
                            "long.", next_path)
    state, code = params.get("state"), params.get("code")
    if not state or len(state) > _MAX_PARAM or not hmac.compare_digest(
            state.encode(), cookie["state"].encode()):
        return refusal_page(400, "Sign-in did not match",
                            "The answer from the sign-in service does not belong to the "
                            "sign-in started in this browser.", next_path)
    if not code or len(code) > _MAX_PARAM:
        return refusal_page(400, "Sign-in did not work",
                            "The sign-in service sent no sign-in code.", next_path)
    try:
        async with sign_in.provider.calls, http_client() as client:
            id_token = await sign_in.provider.exchange(client, code, cookie["verifier"])
            claims = await sign_in.provider.verify(client, id_token, cookie["nonce"])
    except ProviderUnavailable as exc:
        log.warning("sign-in provider unavailable", reason=str(exc))
        return refusal_page(502, "The sign-in service cannot be reached",
                            "We could not reach your organisation's sign-in service just "
                            "now. Please try again in a minute.", next_path)
    except SignInRefused as exc:
        log.info("sign-in refused", reason=str(exc))
        return refusal_page(400, "Sign-in did not work",
                            "Your sign-in could not be confirmed (the sign-in link may "
                            "have been used already). Please start again.", next_path)
    hub: Hub = request.app.state.hub
    token, role = mint_for(sign_in, hub, claims)
    log.info("signed in", role=str(role), uid=subject(claims))
    response = RedirectResponse(f"{sign_in.settings.public_url}{next_path}#token={token}",
                                status_code=302)
    response.headers["Cache-Control"] = "no-store"
    return response


def routes() -> list[BaseRoute]:
    return [
        Route("/auth/login", login, methods=["GET"]),
        Route("/auth/callback", callback, methods=["GET"]),
    ]
