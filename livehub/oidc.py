"""An OpenID Connect relying party: discovery, the code exchange, ID token checks.

HTTP goes through httpx, keys and signatures through PyJWT (``PyJWKSet``,
``jwt.decode``): nothing here does cryptography by hand. The provider is read
when a sign-in needs it, not at start, so a provider that is down stops no
server; discovery is cached for a while and the key set until an ID token
names a key id it does not hold (providers rotate their keys).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlsplit

import httpx
import jwt
import structlog

from livehub.config import Config

log = structlog.get_logger("livehub.oidc")

#: Each setting of sign-in, by its environment variable: all four or none.
SETTINGS: Final = {
    "oidc_issuer": "LIVEHUB_OIDC_ISSUER",
    "oidc_client_id": "LIVEHUB_OIDC_CLIENT_ID",
    "oidc_client_secret": "LIVEHUB_OIDC_CLIENT_SECRET",
    "public_url": "LIVEHUB_PUBLIC_URL",
}
SCOPE: Final = "openid email profile"
# Asymmetric algorithms only: never "none", never HS* (the client secret is no key here).
ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                     "ES256", "ES384", "ES512", "EdDSA")
DISCOVERY_TTL: Final = 300.0  # seconds a read of the discovery document is reused
FAILURE_TTL: Final = 5.0  # seconds a failed discovery read is answered from memory
MAX_CONCURRENT: Final = 16  # calls to the provider in flight at once, per process
HTTP_TIMEOUT: Final = httpx.Timeout(5.0)
MAX_BODY: Final = 1 << 20  # largest discovery, JWKS or token answer read (bytes)


class SettingsError(Exception):
    """Sign-in is half configured; the message names each missing setting."""


class ProviderUnavailable(Exception):
    """The provider cannot be reached, or answered discovery, JWKS or the token endpoint
    with a server error (HTTP 502 to the person)."""


class SignInRefused(Exception):
    """The provider refused the code, or the ID token does not verify (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str
    public_url: str  # no trailing slash

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/auth/callback"

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")


def settings_from(config: Config) -> OidcSettings | None:
    """The sign-in settings, None when none is set; :class:`SettingsError` when only some."""
    values = {name: getattr(config, name) for name in SETTINGS}
    missing = [env for name, env in SETTINGS.items() if not values[name]]
    if len(missing) == len(SETTINGS):
        return None
    if missing:
        given = ", ".join(env for name, env in SETTINGS.items() if values[name])
        raise SettingsError(
            f"sign-in needs all four of {', '.join(SETTINGS.values())}, or none; "
            f"{given} set but missing: {', '.join(missing)}")
    public_url = str(values["public_url"]).rstrip("/")
    for env, url in (("LIVEHUB_PUBLIC_URL", public_url),
                     ("LIVEHUB_OIDC_ISSUER", str(values["oidc_issuer"]))):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError(f"{env} must be an http or https URL (got {url!r})")
    return OidcSettings(issuer=str(values["oidc_issuer"]),
                        client_id=str(values["oidc_client_id"]),
                        client_secret=str(values["oidc_client_secret"]),
                        public_url=public_url)


class Provider:
    """One OpenID provider as this process knows it: cached discovery and keys."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: dict[str, jwt.PyJWK] = {}
        self._anonymous_keys: list[jwt.PyJWK] = []
        self._lock = asyncio.Lock()  # concurrent sign-ins share one fetch
        self._failure: tuple[float, str] | None = None  # (when, why) discovery last failed
        # Anyone can start a sign-in and send back a made-up code: bound what that makes
        # this process ask of the provider at once.
        self.calls = asyncio.Semaphore(MAX_CONCURRENT)

    # --- reading the provider ---------------------------------------------------------

    async def _get_json(self, client: httpx.AsyncClient, url: str, what: str) -> dict[str, Any]:
        try:
            response = await client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"cannot reach the provider's {what} at {url}: "
                                      f"{type(exc).__name__}") from None
        if response.status_code != 200:
            raise ProviderUnavailable(f"the provider's {what} at {url} answered "
                                      f"{response.status_code}")
        return _json_object(response, what)

    async def metadata(self, client: httpx.AsyncClient) -> dict[str, Any]:
        """The discovery document, read again when older than :data:`DISCOVERY_TTL`."""
        async with self._lock:
            fresh = time.monotonic() - self._metadata_at < DISCOVERY_TTL
            if self._metadata is None or not fresh:
                # A provider that is down is not asked again for every visitor.
                failed = self._failure
                if failed is not None and time.monotonic() - failed[0] < FAILURE_TTL:
                    raise ProviderUnavailable(failed[1])
                url = f"{self.settings.issuer.rstrip('/')}/.well-known/openid-configuration"
                try:
                    doc = await self._get_json(client, url, "discovery document")
                except ProviderUnavailable as exc:
                    self._failure = (time.monotonic(), str(exc))
                    raise
                self._failure = None
                for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(doc.get(key), str):
                        raise ProviderUnavailable(f"the provider's discovery document has "
                                                  f"no {key}")
                self._metadata, self._metadata_at = doc, time.monotonic()
            return self._metadata

    async def _key(self, client: httpx.AsyncClient, kid: str | None) -> jwt.PyJWK:
        """The provider's key named ``kid``; an unknown one makes us read ``jwks_uri`` again.

        Only the provider's own token endpoint hands us ID tokens, so an unknown key id
        costs one fetch per sign-in at most; the lock makes concurrent ones share it.
        """
        found = self._lookup(kid)
        if found is not None:
            return found
        metadata = await self.metadata(client)
        async with self._lock:
            found = self._lookup(kid)
            if found is None:
                doc = await self._get_json(client, metadata["jwks_uri"], "key set (JWKS)")
                self._store_keys(doc)
                found = self._lookup(kid)
        if found is None:
            raise SignInRefused(f"the ID token is signed with a key ({kid!r}) the provider "
                                "does not publish")
        return found

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        keys = [*self._keys.values(), *self._anonymous_keys]
        return keys[0] if len(keys) == 1 else None

    def _store_keys(self, doc: dict[str, Any]) -> None:
        try:
            keyset = jwt.PyJWKSet.from_dict(doc)
        except jwt.PyJWTError as exc:
            raise ProviderUnavailable(f"the provider's key set is unusable: {exc}") from None
        keys: dict[str, jwt.PyJWK] = {}
        anonymous: list[jwt.PyJWK] = []
        for key in keyset.keys:
            if key.public_key_use not in (None, "sig"):
                continue
            if key.key_id:
                keys[key.key_id] = key
            else:
                anonymous.append(key)
        self._keys, self._anonymous_keys = keys, anonymous

    # --- the code exchange and the ID token ----------------------------------------------

    async def exchange(self, client: httpx.AsyncClient, code: str, verifier: str) -> str:
        """The ID token the token endpoint gives for ``code`` (client_secret_basic)."""
        metadata = await self.metadata(client)
        s = self.settings
        # RFC 6749 2.3.1: id and secret are form-encoded before they go into Basic.
        auth = httpx.BasicAuth(quote(s.client_id, safe=""), quote(s.client_secret, safe=""))
        try:
            response = await client.post(metadata["token_endpoint"], auth=auth, data={
                "grant_type": "authorization_code", "code": code,
                "redirect_uri": s.redirect_uri, "code_verifier": verifier,
            }, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"cannot reach the provider's token endpoint: "
                                      f"{type(exc).__name__}") from None
        if response.status_code >= 500:
            raise ProviderUnavailable(f"the provider's token endpoint answered "
                                      f"{response.status_code}")
        if response.status_code != 200:
            reason = _oauth_error(response)
            raise SignInRefused(f"the provider refused the sign-in code ({reason})")
        body = _json_object(response, "token answer", refuse=SignInRefused)
        id_token = body.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise SignInRefused("the provider's token answer has no ID token")
        return id_token

    async def verify(self, client: httpx.AsyncClient, id_token: str,
                     nonce: str) -> dict[str, Any]:
        """The ID token's claims, once every check of the contract has passed."""
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise SignInRefused(f"the ID token is malformed: {exc}") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise SignInRefused(f"the ID token's algorithm {alg!r} is not an asymmetric one")
        kid = header.get("kid")
        key = await self._key(client, kid if isinstance(kid, str) else None)
        s = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token, key.key, algorithms=[alg], audience=s.client_id, issuer=s.issuer,
                options={"require": ["iss", "aud", "exp", "sub"]},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise SignInRefused(f"the ID token does not verify: {exc}") from None
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != s.client_id:
            raise SignInRefused("the ID token is for several audiences and its azp is not "
                                "this client")
        if claims.get("nonce") != nonce:
            raise SignInRefused("the ID token's nonce is not this sign-in's")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise SignInRefused("the ID token has no subject")
        return claims


def _json_object(response: httpx.Response, what: str,
                 refuse: type[Exception] = ProviderUnavailable) -> dict[str, Any]:
    if len(response.content) > MAX_BODY:
        raise refuse(f"the provider's {what} is too large")
    try:
        doc = response.json()
    except ValueError:
        raise refuse(f"the provider's {what} is not JSON") from None
    if not isinstance(doc, dict):
        raise refuse(f"the provider's {what} is not a JSON object")
    return doc


def _oauth_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    code = body.get("error") if isinstance(body, dict) else None
    return f"{code}, HTTP {response.status_code}" if isinstance(code, str) \
        else f"HTTP {response.status_code}"


def http_client() -> httpx.AsyncClient:
    """A client for one sign-in's calls to the provider (sign-ins are rare: none is kept)."""
    return httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False)
