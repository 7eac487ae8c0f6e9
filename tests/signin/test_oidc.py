"""Signing in through a real OpenID provider (tests/signin/provider.py, its own process).

Each test drives the flow as a browser would: /auth/login at livehub, the
provider's login form, then the provider's redirect back to /auth/callback.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.signin.flow import (
    CLIENT_ID,
    COOKIE,
    TestProvider,
    answer,
    callback,
    claims_of,
    query,
    refused,
    sign_in,
    start,
    token_of,
)
from tests.support import Client, LivehubProcess

EASTMERE = "Eastmere District Council"


@pytest.fixture(autouse=True)
def plain_provider(provider: TestProvider) -> Any:
    """Every test starts with the provider issuing good ID tokens."""
    provider.control(tweaks={})
    yield
    provider.control(tweaks={})


def role_after(livehub: LivehubProcess, provider: TestProvider, **person: str) -> str:
    claims = claims_of(token_of(sign_in(livehub.url, provider, **person), livehub.url))
    role: str = claims["role"]
    return role


# --- the happy path, and what the token holds ------------------------------------------


def test_login_redirects_to_the_provider_with_pkce_state_and_nonce(
        livehub: LivehubProcess, provider: TestProvider) -> None:
    first, second = start(livehub.url), start(livehub.url)
    q = query(first.authorize_url)
    assert first.authorize_url.startswith(f"{provider.issuer}/authorize?")
    assert q["response_type"] == "code" and q["client_id"] == CLIENT_ID
    assert q["redirect_uri"] == f"{livehub.url}/auth/callback"
    assert q["scope"] == "openid email profile"
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    for key in ("state", "nonce", "code_challenge"):
        assert len(q[key]) >= 22 and q[key] != query(second.authorize_url)[key]
    set_cookie = first.login.headers["set-cookie"]
    attrs = [a.strip().lower() for a in set_cookie.split(";")]
    assert "httponly" in attrs and "samesite=lax" in attrs and "secure" not in attrs
    max_age = next(int(a.split("=")[1]) for a in attrs if a.startswith("max-age="))
    assert 0 < max_age <= 600
    assert first.login.headers["cache-control"] == "no-store"


def test_signed_in_token_joins_with_role_and_affiliation(
        livehub: LivehubProcess, provider: TestProvider) -> None:
    before = time.time()
    response = sign_in(livehub.url, provider, email="comms@eastmere.gov.uk",
                       name="Cllr Jo Bloggs", sub="entra-object-id-123")
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE}=") and "Max-Age=0" in set_cookie
    token = token_of(response, livehub.url)
    claims = claims_of(token)
    assert claims["role"] == "moderator"
    assert claims["affiliation"] == EASTMERE
    assert claims["name"] == "Cllr Jo Bloggs"
    assert claims["sub"].startswith("oidc:") and "entra-object-id-123" not in claims["sub"]
    assert "rooms" not in claims
    assert before + 8 * 3600 - 5 <= claims["exp"] <= time.time() + 8 * 3600
    # The same person gets the same sub every time.
    again = claims_of(token_of(sign_in(livehub.url, provider, email="comms@eastmere.gov.uk",
                                       sub="entra-object-id-123"), livehub.url))
    assert again["sub"] == claims["sub"]

    async def join() -> dict[str, Any]:
        # "board" admits no guests: a signed-in participant is no guest.
        client = await Client.join(livehub.ws_url, "board", token=token)
        await client.close()
        return client.welcome

    import asyncio
    welcome = asyncio.run(join())
    assert welcome["me"]["role"] == "moderator"
    assert welcome["me"]["name"] == "Cllr Jo Bloggs"
    assert welcome["me"].get("guest") is not True
    if "affiliation" in welcome["me"]:  # shown once badges (issue 16) are in
        assert welcome["me"]["affiliation"] == EASTMERE


def test_a_signed_in_participant_joins_a_room_without_guests(
        livehub: LivehubProcess, provider: TestProvider) -> None:
    token = token_of(sign_in(livehub.url, provider, next_path="/room/panel",
                             email="resident@example.org", name="Ann"),
                     livehub.url, "/room/panel")
    assert claims_of(token)["role"] == "participant"

    async def join() -> dict[str, Any]:
        client = await Client.join(livehub.ws_url, "panel", token=token)
        await client.close()
        return client.welcome

    import asyncio
    assert asyncio.run(join())["me"]["role"] == "participant"


# --- [sign_in] matchers through real ID tokens --------------------------------------------


@pytest.mark.parametrize(("person", "role"), [
    ({"email": "COMMS@eastmere.GOV.uk"}, "moderator"),                  # email, any case
    ({"email": "a@example.org", "groups": "livehub-moderators"}, "moderator"),  # group
    ({"email": "a@example.org", "groups": "Livehub-Moderators"}, "participant"),  # exact
    ({"email": "jo@eastmere.gov.uk"}, "speaker"),                       # *@domain
    ({"email": "jo@EASTMERE.gov.uk"}, "speaker"),
    ({"email": "jo@sub.eastmere.gov.uk"}, "participant"),               # not a subdomain
    ({"email": "jo@noteastmere.gov.uk"}, "participant"),                # not a suffix
    ({"email": "a@example.org", "groups": "speakers"}, "speaker"),
    ({"email": "a@example.org"}, "participant"),                        # matches nothing
])
def test_each_matcher_kind(livehub: LivehubProcess, provider: TestProvider,
                           person: dict[str, str], role: str) -> None:
    assert role_after(livehub, provider, **person) == role


def test_highest_role_wins(livehub: LivehubProcess, provider: TestProvider) -> None:
    # Speaker by domain and by group, moderator by group: moderator.
    assert role_after(livehub, provider, email="jo@eastmere.gov.uk",
                      groups="speakers,livehub-moderators") == "moderator"
    # Speaker by domain, moderator by email: moderator.
    assert role_after(livehub, provider, email="comms@eastmere.gov.uk",
                      groups="speakers") == "moderator"


def test_an_unverified_email_never_matches(livehub: LivehubProcess,
                                           provider: TestProvider) -> None:
    assert role_after(livehub, provider, email="comms@eastmere.gov.uk",
                      email_verified="false") == "participant"
    assert role_after(livehub, provider, email="jo@eastmere.gov.uk",
                      email_verified="false") == "participant"
    # email_verified false is not overruled by xms_edov.
    assert role_after(livehub, provider, email="comms@eastmere.gov.uk",
                      email_verified="false", xms_edov="true") == "participant"
    # Groups do not depend on the email being verified.
    assert role_after(livehub, provider, email="x@eastmere.gov.uk", email_verified="false",
                      groups="livehub-moderators") == "moderator"


def test_entra_xms_edov_stands_in_for_email_verified(livehub: LivehubProcess,
                                                    provider: TestProvider) -> None:
    assert role_after(livehub, provider, email="comms@eastmere.gov.uk",
                      email_verified="absent", xms_edov="true") == "moderator"
    assert role_after(livehub, provider, email="jo@eastmere.gov.uk",
                      email_verified="absent", xms_edov="true") == "speaker"
    assert role_after(livehub, provider, email="comms@eastmere.gov.uk",
                      email_verified="absent", xms_edov="false") == "participant"
    assert role_after(livehub, provider, email="comms@eastmere.gov.uk",
                      email_verified="absent") == "participant"


@pytest.mark.parametrize(("person", "name"), [
    ({"name": "Cllr\nJo\tBloggs\u202e", "preferred_username": "jo"}, "Cllr Jo Bloggs "),
    ({"name": "N" * 100}, "N" * 80),
    ({"preferred_username": "jo.bloggs"}, "jo.bloggs"),
    ({"email": "jo.bloggs@example.org"}, "jo.bloggs"),
])
def test_name_rules(livehub: LivehubProcess, provider: TestProvider,
                    person: dict[str, str], name: str) -> None:
    person = {"email": "x@example.org", **person}
    claims = claims_of(token_of(sign_in(livehub.url, provider, **person), livehub.url))
    assert claims["name"] == name


def test_api_rooms_says_sign_in_is_on(livehub: LivehubProcess) -> None:
    assert httpx.get(f"{livehub.url}/api/rooms", timeout=10).json()["sign_in"] is True


# --- refusals ---------------------------------------------------------------------------


def test_provider_error_access_denied(livehub: LivehubProcess, provider: TestProvider) -> None:
    started = start(livehub.url)
    cancelled = httpx.post(f"{provider.issuer}/authorize",
                           data={**started.form, "action": "cancel"}, timeout=10)
    url = cancelled.headers["location"]
    assert query(url)["error"] == "access_denied"
    text = refused(callback(url, started.cookie))
    assert "cancelled" in text
    assert 'href="/auth/login?next=%2Froom%2Fboard"' in text


def test_tampered_state(livehub: LivehubProcess, provider: TestProvider) -> None:
    started = start(livehub.url)
    url = answer(provider, started, email="comms@eastmere.gov.uk")
    state = query(url)["state"]
    refused(callback(url.replace(f"state={state}", f"state={state[:-2]}xy"), started.cookie))


def test_tampered_or_foreign_cookie(livehub: LivehubProcess, provider: TestProvider) -> None:
    started = start(livehub.url)
    url = answer(provider, started, email="comms@eastmere.gov.uk")
    head, payload, signature = started.cookie.split(".")
    flipped = signature[:-3] + ("AAA" if signature[-3:] != "AAA" else "BBB")
    refused(callback(url, f"{head}.{payload}.{flipped}"))
    # A cookie from another sign-in in the same browser does not fit this answer either.
    other = start(livehub.url)
    refused(callback(url, other.cookie))


def test_missing_cookie(livehub: LivehubProcess, provider: TestProvider) -> None:
    started = start(livehub.url)
    url = answer(provider, started, email="comms@eastmere.gov.uk")
    text = refused(callback(url, None))
    assert "another browser" in text


def test_replayed_code(livehub: LivehubProcess, provider: TestProvider) -> None:
    started = start(livehub.url)
    url = answer(provider, started, email="comms@eastmere.gov.uk")
    token_of(callback(url, started.cookie), livehub.url)
    refused(callback(url, started.cookie))  # the provider refuses a used code


@pytest.mark.parametrize("tweaks", [
    {"aud": "someone-else"},
    {"aud": [CLIENT_ID, "someone-else"]},                       # several, and no azp
    {"aud": [CLIENT_ID, "someone-else"], "azp": "someone-else"},
    {"iss": "http://127.0.0.1:1/other-issuer"},
    {"nonce": "not-the-cookies-nonce"},
    {"exp_in": -60},
    {"alg": "HS256"},                                           # signed with the client secret
    {"alg": "none"},
])
def test_id_token_that_does_not_verify(livehub: LivehubProcess, provider: TestProvider,
                                       tweaks: dict[str, Any]) -> None:
    provider.control(tweaks=tweaks)
    refused(sign_in(livehub.url, provider, email="comms@eastmere.gov.uk"))


def test_several_audiences_with_azp_of_this_client(livehub: LivehubProcess,
                                                   provider: TestProvider) -> None:
    provider.control(tweaks={"aud": [CLIENT_ID, "someone-else"], "azp": CLIENT_ID})
    token_of(sign_in(livehub.url, provider, email="comms@eastmere.gov.uk"), livehub.url)


def test_key_rotation_fetches_the_new_key_once(livehub: LivehubProcess,
                                               provider: TestProvider) -> None:
    token_of(sign_in(livehub.url, provider, email="a@example.org"), livehub.url)
    hits = provider.control()["jwks_hits"]
    token_of(sign_in(livehub.url, provider, email="a@example.org"), livehub.url)
    assert provider.control()["jwks_hits"] == hits  # cached
    old_kid = provider.control()["kid"]
    assert provider.control(rotate=True)["kid"] != old_kid
    token_of(sign_in(livehub.url, provider, email="a@example.org"), livehub.url)
    assert provider.control()["jwks_hits"] == hits + 1
    token_of(sign_in(livehub.url, provider, email="a@example.org"), livehub.url)
    assert provider.control()["jwks_hits"] == hits + 1


@pytest.mark.parametrize("next_path", [
    "//evil.example/room/board", "https://evil.example/", "/\\evil.example", "room/board",
    "/room/board x", "/room/\tboard", "/\x00", "/room/board\n",
])
def test_open_redirect_refused(livehub: LivehubProcess, next_path: str) -> None:
    response = httpx.get(f"{livehub.url}/auth/login?next={quote(next_path, safe='')}",
                         timeout=10)
    assert response.status_code == 400
    assert "location" not in response.headers and COOKIE not in response.cookies


def test_default_next_is_the_programme(livehub: LivehubProcess,
                                       provider: TestProvider) -> None:
    started = start(livehub.url, None)
    response = callback(answer(provider, started, email="a@example.org"), started.cookie)
    assert response.headers["location"].startswith(f"{livehub.url}/#token=")


def test_provider_errors_are_502(livehub: LivehubProcess, provider: TestProvider) -> None:
    started = start(livehub.url)
    url = answer(provider, started, email="a@example.org")
    provider.control(tweaks={"token_status": 503})
    refused(callback(url, started.cookie), 502)
    # A new key to fetch, and a JWKS that answers with an error.
    provider.control(rotate=True, tweaks={"jwks_status": 500})
    refused(sign_in(livehub.url, provider, email="a@example.org"), 502)
    provider.control(tweaks={})
    token_of(sign_in(livehub.url, provider, email="a@example.org"), livehub.url)
