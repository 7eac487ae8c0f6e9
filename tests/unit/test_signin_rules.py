"""The [sign_in] table: matching ID token claims to roles, and validating the table."""

from __future__ import annotations

from typing import Any

import pytest

from livehub.programme import ProgrammeError, parse_programme
from livehub.roles import Role
from livehub.signin import display_name, pkce_challenge, subject, valid_next
from livehub.signin_rules import SignInRules, parse_sign_in, verified_email

TABLE = {
    "affiliation": "Eastmere District Council",
    "moderators": ["Comms@Eastmere.gov.uk", "group:livehub-moderators"],
    "speakers": ["*@eastmere.gov.uk", "group:Speakers"],
}


def rules(table: dict[str, Any] | None = None) -> SignInRules:
    parsed, problems = parse_sign_in(TABLE if table is None else table)
    assert problems == [] and parsed is not None
    return parsed


def person(email: str | None = None, verified: bool | None = True, **extra: Any
           ) -> dict[str, Any]:
    claims: dict[str, Any] = {"iss": "https://idp", "sub": "1", **extra}
    if email is not None:
        claims["email"] = email
    if verified is not None:
        claims["email_verified"] = verified
    return claims


@pytest.mark.parametrize(("claims", "role"), [
    (person("comms@eastmere.gov.uk"), Role.MODERATOR),
    (person("COMMS@EASTMERE.GOV.UK"), Role.MODERATOR),
    (person("other@example.org", groups=["livehub-moderators"]), Role.MODERATOR),
    (person(None, None, groups=["livehub-moderators"]), Role.MODERATOR),
    (person("jo@eastmere.gov.uk"), Role.SPEAKER),
    (person("jo@Eastmere.Gov.UK"), Role.SPEAKER),
    (person("jo@sub.eastmere.gov.uk"), Role.PARTICIPANT),
    (person("jo@xeastmere.gov.uk"), Role.PARTICIPANT),
    (person("jo@eastmere.gov.uk.evil.example"), Role.PARTICIPANT),
    (person("@eastmere.gov.uk"), Role.PARTICIPANT),
    (person("x@example.org", groups=["Speakers"]), Role.SPEAKER),
    (person("x@example.org", groups=["speakers"]), Role.PARTICIPANT),  # exact names
    (person("x@example.org", groups="livehub-moderators"), Role.PARTICIPANT),  # not a list
    (person("jo@eastmere.gov.uk", groups=["livehub-moderators"]), Role.MODERATOR),
    (person("x@example.org"), Role.PARTICIPANT),
    (person(None, None), Role.PARTICIPANT),
])
def test_matching(claims: dict[str, Any], role: Role) -> None:
    assert rules().role_for(claims) is role


@pytest.mark.parametrize(("claims", "email"), [
    (person("A@B.org", True), "a@b.org"),
    (person("a@b.org", False), None),
    (person("a@b.org", None), None),                                # says nothing
    (person("a@b.org", None, xms_edov=True), "a@b.org"),            # Entra ID
    (person("a@b.org", None, xms_edov=False), None),
    (person("a@b.org", None, xms_edov="true"), None),               # a string is not true
    (person("a@b.org", False, xms_edov=True), None),                # email_verified rules
    (person("a@b.org", "true"), None),
    (person(None, True), None),
])
def test_verified_email(claims: dict[str, Any], email: str | None) -> None:
    assert verified_email(claims) == email


@pytest.mark.parametrize(("table", "field", "words"), [
    ({"moderator": ["a@b.org"]}, "moderator", "unknown field"),
    ({"affiliation": ""}, "affiliation", "empty"),
    ({"affiliation": "A" * 81}, "affiliation", "at most 80"),
    ({"affiliation": "Two\nlines"}, "affiliation", "one line"),
    ({"affiliation": "Eastmere\u202e Council"}, "affiliation", "one line"),
    ({"affiliation": 5}, "affiliation", "string"),
    ({"moderators": "a@b.org"}, "moderators", "list"),
    ({"moderators": ["not-an-email"]}, "moderators", "item 1"),
    ({"speakers": ["ok@b.org", "*@"]}, "speakers", "item 2"),
    ({"speakers": ["*.b.org"]}, "speakers", "item 1"),
    ({"speakers": ["*@bad domain"]}, "speakers", "item 1"),
    ({"speakers": ["group:"]}, "speakers", "item 1"),
    ({"speakers": [3]}, "speakers", "item 1"),
])
def test_table_problems(table: dict[str, Any], field: str, words: str) -> None:
    parsed, problems = parse_sign_in(table)
    assert parsed is None
    assert [f for f, _ in problems] == [field]
    assert words in problems[0][1]


def test_programme_carries_the_table_and_names_file_table_and_field() -> None:
    head = '[conference]\ntitle = "C"\n[[session]]\nslug = "a"\ntitle = "A"\n'
    programme = parse_programme(head + '[sign_in]\nspeakers = ["*@eastmere.gov.uk"]\n',
                                "prog.toml")
    assert programme.sign_in is not None
    assert programme.sign_in.role_for(person("jo@eastmere.gov.uk")) is Role.SPEAKER
    assert parse_programme(head, "prog.toml").sign_in is None
    with pytest.raises(ProgrammeError) as caught:
        parse_programme(head + '[sign_in]\nmoderator = ["a@b.org"]\naffiliation = ""\n',
                        "prog.toml")
    assert caught.value.problems == [
        'prog.toml: sign_in: field "moderator": unknown field (the fields are affiliation, '
        "moderators and speakers)",
        'prog.toml: sign_in: field "affiliation": must not be empty',
    ]
    with pytest.raises(ProgrammeError) as caught:
        parse_programme('sign_in = "yes"\n' + head, "prog.toml")
    assert caught.value.problems == ['prog.toml: sign_in: must be a table ([sign_in]) '
                                     '(got "yes")']


@pytest.mark.parametrize(("value", "expected"), [
    (None, "/"), ("", "/"), ("/", "/"), ("/room/day1-opening", "/room/day1-opening"),
    ("/room/a?x=1", "/room/a?x=1"), ("/room/a#frag", "/room/a"),
    ("//evil.example", None), ("/\\evil.example", None), ("https://evil.example", None),
    ("evil", None), ("/a b", None), ("/a\tb", None), ("/a\x7f", None), ("/a\u0085", None),
])
def test_valid_next(value: str | None, expected: str | None) -> None:
    assert valid_next(value) == expected


def test_names_and_subjects() -> None:
    assert display_name({"name": "A\r\nB\u2067C", "email": "x@y"}) == "A  B C"
    assert display_name({"name": "   ", "preferred_username": "pu"}) == "pu"
    assert display_name({"email": "jo.b@y.org"}) == "jo.b"
    assert display_name({}) == "Signed-in person"
    one = subject({"iss": "https://a", "sub": "1"})
    assert one == subject({"iss": "https://a", "sub": "1"}) and one.startswith("oidc:")
    assert one != subject({"iss": "https://b", "sub": "1"})
    assert one != subject({"iss": "https://a1", "sub": ""})
    # RFC 7636 appendix B's example.
    assert pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == \
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
