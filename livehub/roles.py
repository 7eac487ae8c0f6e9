"""Who may send which request: the one table the room core consults.

Ownership rules ("the author of it" may delete) and state rules (muted, closed
room, slow mode) live in :mod:`livehub.room`; this table is only about roles.
"""

from __future__ import annotations

import enum
from typing import Final


class Role(enum.StrEnum):
    PARTICIPANT = "participant"
    SPEAKER = "speaker"
    MODERATOR = "moderator"

    @property
    def is_staff(self) -> bool:
        return self is not Role.PARTICIPANT


ALL: Final = frozenset(Role)
STAFF: Final = frozenset({Role.SPEAKER, Role.MODERATOR})
MODERATORS: Final = frozenset({Role.MODERATOR})

# request type -> roles allowed to send it. ``del`` is open to everyone here
# because authors may remove their own posts; the room core narrows it.
PERMISSIONS: Final[dict[str, frozenset[Role]]] = {
    "post": ALL,
    "ask": ALL,
    "vote": ALL,
    "ping": ALL,
    "del": ALL,
    "answer": STAFF,
    "qstate": STAFF,
    "pin": STAFF,
    "unpin": STAFF,
    "mute": MODERATORS,
    "unmute": MODERATORS,
    "ban": MODERATORS,
    "unban": MODERATORS,
    "settings": MODERATORS,
    "poll": STAFF,
    "pollstate": STAFF,
    "ballot": ALL,
    "report": ALL,
    "react": ALL,
    "resolve": MODERATORS,
    "release": MODERATORS,
}

# Roles exempt from slow mode and from a closed room's refusal of posts.
SLOW_MODE_EXEMPT: Final = STAFF
CLOSED_ROOM_EXEMPT: Final = MODERATORS


def may(role: Role, request_type: str) -> bool:
    return role in PERMISSIONS.get(request_type, frozenset())


def parse_role(value: object) -> Role | None:
    """The role named by ``value``, or None when it is not one of the three."""
    if isinstance(value, str):
        try:
            return Role(value)
        except ValueError:
            return None
    return None
