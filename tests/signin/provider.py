"""A small OpenID provider for the sign-in tests, run as its own process.

It serves discovery, an authorization endpoint with a login form (what a person
types becomes the ID token's claims), a token endpoint that insists on
client_secret_basic and checks PKCE (S256) and the redirect URI, and a JWKS.
Codes are single-use. Its RSA key is made at start; ``POST /_control`` lets a
test rotate it or make the next ID tokens wrong in one way (audience, issuer,
nonce, algorithm, expiry). It is test code: the relying party under test
(livehub.oidc) is what must be right.

    python -m tests.signin.provider --port P --client-id ID --client-secret SECRET
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import secrets
import time
from html import escape
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route


class Provider:
    def __init__(self, issuer: str, client_id: str, client_secret: str) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.client_secret = client_secret
        self.codes: dict[str, dict[str, Any]] = {}
        self.jwks_hits = 0
        self.tweaks: dict[str, Any] = {}
        self.rotate()

    def rotate(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = f"k-{secrets.token_hex(4)}"

    def jwks(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def id_token(self, grant: dict[str, Any]) -> str:
        now = int(time.time())
        t = self.tweaks
        claims: dict[str, Any] = {
            "iss": t.get("iss", self.issuer), "aud": t.get("aud", self.client_id),
            "iat": now, "exp": now + int(t.get("exp_in", 300)),
            "nonce": t.get("nonce", grant["nonce"]), **grant["claims"],
        }
        if "azp" in t:
            claims["azp"] = t["azp"]
        alg = t.get("alg", "RS256")
        if alg == "none":
            return jwt.encode(claims, None, algorithm="none")
        if alg.startswith("HS"):  # the classic confusion: the client secret as HMAC key
            return jwt.encode(claims, self.client_secret, algorithm=alg)
        return jwt.encode(claims, self.key, algorithm=alg, headers={"kid": self.kid})


def _form(params: dict[str, str]) -> str:
    hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
                     for k, v in params.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test provider: sign in</title></head>
<body><main><h1>Sign in to the test council</h1>
<form method="post" action="/authorize">{hidden}
<p><label for="email">Email</label> <input id="email" name="email" type="email"></p>
<p><label for="name">Full name</label> <input id="name" name="name"></p>
<p><label for="groups">Groups (comma-separated)</label> <input id="groups" name="groups"></p>
<p><label for="email_verified">Email verified</label>
<select id="email_verified" name="email_verified">
<option value="true">yes</option><option value="false">no</option>
<option value="absent">not said</option></select></p>
<p><button name="action" value="login">Sign in</button>
<button name="action" value="cancel">Cancel</button></p>
</form></main></body></html>"""


async def _form_fields(request: Request) -> dict[str, str]:
    """An urlencoded body (no multipart library needed for what a login form sends)."""
    return {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}


def make_app(provider: Provider) -> Starlette:
    p = provider

    async def discovery(request: Request) -> Response:
        if "discovery_status" in p.tweaks:
            return JSONResponse({"error": "broken"}, status_code=p.tweaks["discovery_status"])
        return JSONResponse({
            "issuer": p.issuer, "authorization_endpoint": f"{p.issuer}/authorize",
            "token_endpoint": f"{p.issuer}/token", "jwks_uri": f"{p.issuer}/jwks",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
        })

    async def jwks(request: Request) -> Response:
        p.jwks_hits += 1
        if "jwks_status" in p.tweaks:
            return JSONResponse({"error": "broken"}, status_code=p.tweaks["jwks_status"])
        return JSONResponse(p.jwks())

    async def authorize_form(request: Request) -> Response:
        q = request.query_params
        needed = ("response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
                  "code_challenge", "code_challenge_method")
        missing = [k for k in needed if not q.get(k)]
        if missing or q["client_id"] != p.client_id or q["response_type"] != "code" \
                or q["code_challenge_method"] != "S256" or "openid" not in q["scope"].split():
            return HTMLResponse(f"bad authorization request: {missing}", status_code=400)
        return HTMLResponse(_form({k: q[k] for k in needed}))

    async def authorize_submit(request: Request) -> Response:
        f = await _form_fields(request)
        redirect = f["redirect_uri"]
        if f.get("action") == "cancel":
            return RedirectResponse(f"{redirect}?" + urlencode(
                {"error": "access_denied", "state": f["state"]}), status_code=302)
        claims: dict[str, Any] = {"sub": f.get("sub") or f"person-{f.get('email', '')}"}
        for key in ("email", "name", "preferred_username"):
            if f.get(key):
                claims[key] = f[key]
        if f.get("email_verified", "true") != "absent":
            claims["email_verified"] = f.get("email_verified", "true") == "true"
        if f.get("xms_edov"):
            claims["xms_edov"] = f["xms_edov"] == "true"
        if f.get("groups"):
            claims["groups"] = [g.strip() for g in f["groups"].split(",") if g.strip()]
        code = secrets.token_urlsafe(24)
        p.codes[code] = {"redirect_uri": redirect, "challenge": f["code_challenge"],
                         "nonce": f["nonce"], "claims": claims}
        return RedirectResponse(f"{redirect}?" + urlencode({"code": code, "state": f["state"]}),
                                status_code=302)

    async def token(request: Request) -> Response:
        if "token_status" in p.tweaks:
            return JSONResponse({"error": "server_error"}, status_code=p.tweaks["token_status"])
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            user = password = ""
        if scheme != "Basic" or (unquote(user), unquote(password)) != (p.client_id,
                                                                        p.client_secret):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        form = await _form_fields(request)
        grant = p.codes.pop(str(form.get("code", "")), None)  # single use
        if form.get("grant_type") != "authorization_code" or grant is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant", "error_description":
                                 "redirect_uri"}, status_code=400)
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != grant["challenge"]:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"},
                                status_code=400)
        return JSONResponse({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                             "expires_in": 300, "id_token": p.id_token(grant)})

    async def control(request: Request) -> Response:
        body = await request.json()
        if body.get("rotate"):
            p.rotate()
        if "tweaks" in body:
            p.tweaks = body["tweaks"]
        return JSONResponse({"kid": p.kid, "jwks_hits": p.jwks_hits})

    return Starlette(routes=[
        Route("/.well-known/openid-configuration", discovery),
        Route("/jwks", jwks),
        Route("/authorize", authorize_form, methods=["GET"]),
        Route("/authorize", authorize_submit, methods=["POST"]),
        Route("/token", token, methods=["POST"]),
        Route("/_control", control, methods=["POST"]),
    ])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    args = parser.parse_args()
    issuer = f"http://127.0.0.1:{args.port}"
    app = make_app(Provider(issuer, args.client_id, args.client_secret))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
