"""Sign-in: HS256 tokens (PyJWT) carrying ``sub``, ``name``, ``role``, ``exp``, ``rooms``."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from livehub.protocol import name_problem
from livehub.roles import Role, parse_role

ALGORITHM = "HS256"
DEFAULT_TTL = 8 * 3600


class AuthError(Exception):
    """A token that does not admit its bearer; the message says why, for logs."""


@dataclass(frozen=True, slots=True)
class Identity:
    uid: str
    name: str
    role: Role
    rooms: frozenset[str] | None = None  # None: valid in every room
    guest: bool = False
    affiliation: str | None = None  # the organisation shown beside the name (badges)

    def may_enter(self, room: str) -> bool:
        return self.rooms is None or room in self.rooms


GUEST_TTL = 24 * 3600


def mint(secret: str, *, name: str, role: Role, sub: str | None = None,
         rooms: list[str] | None = None, ttl: int = DEFAULT_TTL,
         now: float | None = None, guest: bool = False,
         affiliation: str | None = None) -> str:
    """A signed token; ``sub`` is made up when not given.

    ``guest`` tokens are what a guest gets back in ``welcome`` so that it stays the
    same guest across reconnects; they admit only where the room admits guests.
    """
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": sub or f"u-{secrets.token_hex(6)}",
        "name": name,
        "role": str(role),
        "iat": issued,
        "exp": issued + ttl,
    }
    if rooms:
        claims["rooms"] = list(rooms)
    if guest:
        claims["guest"] = True
    elif affiliation:  # a guest never carries one
        claims["affiliation"] = affiliation
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(secret: str, token: str) -> Identity:
    """The identity a token carries, or :class:`AuthError`."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM],
            options={"require": ["sub", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid token: {exc}") from None
    role = parse_role(claims.get("role"))
    if role is None:
        raise AuthError(f"unknown role {claims.get('role')!r}")
    sub, name = claims.get("sub"), claims.get("name", claims.get("sub"))
    if not isinstance(sub, str) or not sub or not isinstance(name, str) or not name:
        raise AuthError("token lacks a usable sub or name")
    problem = name_problem(name)
    if problem is not None:
        raise AuthError(f"token name: {problem}")
    rooms = claims.get("rooms")
    if rooms is not None and not (
        isinstance(rooms, list) and all(isinstance(r, str) for r in rooms)
    ):
        raise AuthError("token rooms must be a list of room slugs")
    is_guest = claims.get("guest") is True
    if is_guest and role is not Role.PARTICIPANT:
        raise AuthError("a guest token must be a participant's")
    affiliation = claims.get("affiliation")
    if affiliation is not None:
        problem = affiliation_problem(affiliation)
        if problem:
            raise AuthError(f"token affiliation {problem}")
    # Signed-in names may be longer than a guest's 50 (sign-in and invites allow 80).
    return Identity(uid=sub, name=name[:80], role=role,
                    rooms=None if rooms is None else frozenset(rooms), guest=is_guest,
                    affiliation=None if is_guest else affiliation)


MAX_AFFILIATION = 80


def affiliation_problem(value: object) -> str | None:
    """What is wrong with an affiliation badge, or None when it is fine."""
    if not isinstance(value, str):
        return "must be a string"
    if not 1 <= len(value) <= MAX_AFFILIATION:
        return f"must be 1 to {MAX_AFFILIATION} characters"
    # One line, as a name is: a badge must not run into the text around it.
    if name_problem(value) is not None or "\x7f" in value:
        return "must be one line without control or bidirectional characters"
    return None


def guest(name: str) -> Identity:
    """A participant with a server-made id, marked as a guest."""
    return Identity(uid=f"g-{secrets.token_hex(8)}", name=name, role=Role.PARTICIPANT,
                    guest=True)


def watcher() -> Identity:
    """A read-only viewer without a token (the presentation view, an embed)."""
    return Identity(uid=f"w-{secrets.token_hex(8)}", name="Watcher", role=Role.PARTICIPANT,
                    guest=True)


def parse_ttl(text: str) -> int:
    """``90``, ``90s``, ``30m``, ``8h``, ``2d`` -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    scale = units.get(text[-1:], None)
    number = text[:-1] if scale else text
    if not number.isdigit() or int(number) <= 0:
        raise ValueError(f"bad duration {text!r}: use a positive number with s, m, h or d")
    return int(number) * (scale or 1)
