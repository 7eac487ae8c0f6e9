"""The programme's ``[sign_in]`` table: who gets which role after signing in.

Pure: parsing and validation of the table, and matching an ID token's claims
against it. No I/O, so the rules are tested with plain dicts::

    [sign_in]
    affiliation = "Eastmere District Council"
    moderators = ["comms@eastmere.gov.uk", "group:livehub-moderators"]
    speakers = ["*@eastmere.gov.uk"]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from livehub.roles import Role

FIELDS = ("affiliation", "moderators", "speakers")
AFFILIATION_MAX = 80

# A deliberately loose address shape: one @, no spaces, a dotted-or-not domain. Providers
# own the real rules; this only catches typos such as a missing @ or a stray space.
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# One line that cannot reorder the text around it: no CR, LF or other C0/C1 control, no
# line or paragraph separator, no bidirectional mark, embedding, override or isolate.
_NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


@dataclass(frozen=True, slots=True)
class Matcher:
    """One entry of ``moderators`` or ``speakers``: kind is email, domain or group."""

    kind: str
    value: str  # emails and domains lower-cased; group names exact

    def matches(self, email: str | None, groups: frozenset[str]) -> bool:
        if self.kind == "group":
            return self.value in groups
        if email is None:
            return False
        if self.kind == "email":
            return email == self.value
        local, _, domain = email.rpartition("@")
        return bool(local) and domain == self.value


@dataclass(frozen=True, slots=True)
class SignInRules:
    affiliation: str | None = None
    moderators: tuple[Matcher, ...] = ()
    speakers: tuple[Matcher, ...] = ()

    def role_for(self, claims: Mapping[str, Any]) -> Role:
        """The highest role with a matching entry; a person matching nothing participates."""
        email = verified_email(claims)
        groups = _groups(claims)
        if any(m.matches(email, groups) for m in self.moderators):
            return Role.MODERATOR
        if any(m.matches(email, groups) for m in self.speakers):
            return Role.SPEAKER
        return Role.PARTICIPANT


def verified_email(claims: Mapping[str, Any]) -> str | None:
    """The ID token's ``email``, lower-cased, only when the token says it is verified.

    ``email_verified`` must be ``true``; only a token with no ``email_verified`` at all
    may vouch with Entra ID's ``xms_edov`` (email domain owner verified) instead.
    """
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        return None
    if "email_verified" in claims:
        verified = claims["email_verified"] is True
    else:
        verified = claims.get("xms_edov") is True
    return email.lower() if verified else None


def _groups(claims: Mapping[str, Any]) -> frozenset[str]:
    groups = claims.get("groups")
    if not isinstance(groups, list):
        return frozenset()
    return frozenset(g for g in groups if isinstance(g, str))


def one_line_problem(value: object, limit: int = AFFILIATION_MAX) -> str | None:
    """Why ``value`` is not one line of 1 to ``limit`` characters, or None."""
    if not isinstance(value, str):
        return f"must be a string of 1 to {limit} characters"
    if not value.strip():
        return "must not be empty"
    if len(value) > limit:
        return f"must be at most {limit} characters (got {len(value)})"
    if _NOT_ONE_LINE.search(value):
        return "must be one line (no line breaks, control or bidirectional characters)"
    return None


def parse_matcher(entry: object) -> Matcher | str:
    """A matcher, or the reason the entry is not one."""
    if not isinstance(entry, str):
        return "must be a string: an email address, *@DOMAIN or group:NAME"
    if entry.startswith("group:"):
        name = entry[len("group:"):]
        if not name or _NOT_ONE_LINE.search(name):
            return "group:NAME needs a group name (one line) after group:"
        return Matcher("group", name)
    if entry.startswith("*@"):
        domain = entry[2:]
        if not _DOMAIN_RE.fullmatch(domain):
            return "*@DOMAIN needs a domain such as eastmere.gov.uk after *@"
        return Matcher("domain", domain.lower())
    if "*" in entry or not _EMAIL_RE.fullmatch(entry):
        return "must be an email address, *@DOMAIN or group:NAME"
    return Matcher("email", entry.lower())


def parse_sign_in(raw: object) -> tuple[SignInRules | None, list[tuple[str, str]]]:
    """The rules, and a list of (field, problem); rules are None when there is a problem."""
    if not isinstance(raw, dict):
        return None, [("sign_in", "must be a table ([sign_in])")]
    problems: list[tuple[str, str]] = []
    for key in raw:
        if key not in FIELDS:
            problems.append((key, "unknown field (the fields are affiliation, moderators "
                                  "and speakers)"))
    affiliation = raw.get("affiliation")
    if affiliation is not None:
        why = one_line_problem(affiliation)
        if why:
            problems.append(("affiliation", why))
    lists: dict[str, tuple[Matcher, ...]] = {}
    for name in ("moderators", "speakers"):
        entries = raw.get(name, [])
        if not isinstance(entries, list):
            problems.append((name, 'must be a list, e.g. ["*@eastmere.gov.uk"]'))
            continue
        matchers: list[Matcher] = []
        for index, entry in enumerate(entries, start=1):
            parsed = parse_matcher(entry)
            if isinstance(parsed, str):
                problems.append((name, f"item {index} {parsed} (got {entry!r})"))
            else:
                matchers.append(parsed)
        lists[name] = tuple(matchers)
    if problems:
        return None, problems
    return SignInRules(affiliation=affiliation, moderators=lists["moderators"],
                       speakers=lists["speakers"]), []
