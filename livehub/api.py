"""Organisers' HTTP API: transcripts and announcements (moderator bearer tokens)."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    return []
