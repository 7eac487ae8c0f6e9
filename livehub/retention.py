"""Retention: archive and trim the logs of sessions that ended long enough ago.

Every ``retain_interval`` seconds one process of the deployment (the one holding the
``archiver`` lock in the broker) archives the log of every room whose session ``ends``
more than ``retain_after`` seconds ago, keeping its last ``retain_keep`` events live
(:mod:`livehub.broker.archive`). ``livehub archive`` runs the same pass once.
Rooms without an ``ends`` are never trimmed: nobody can say they are over.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from datetime import UTC, datetime, timedelta

import structlog

from livehub.broker.base import Archived, Broker, BrokerUnavailable
from livehub.hub import Hub
from livehub.programme import Programme, Session

log = structlog.get_logger("livehub.retention")

LOCK = "archiver"


def due(programme: Programme, retain_after: float, now: datetime) -> list[Session]:
    """The sessions whose rooms may be trimmed at ``now`` (none when ``retain_after`` is 0)."""
    if retain_after <= 0:
        return []
    cutoff = now - timedelta(seconds=retain_after)
    return [s for s in programme.sessions if s.ends is not None and s.ends <= cutoff]


def owner_id() -> str:
    """Who holds the lock: enough to find the process in logs."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


async def run_once(broker: Broker, programme: Programme, *, retain_after: float, keep: int,
                   now: datetime | None = None, dry_run: bool = False,
                   owner: str | None = None, lock_ttl: float = 600) -> list[Archived] | None:
    """One pass over the due rooms; None when another process holds the lock.

    A room that fails (say, its log was reset meanwhile) is logged and left for the
    next pass; the others go on. Raises :class:`BrokerUnavailable` if the broker is away.
    """
    owner = owner or owner_id()
    rooms = due(programme, retain_after, now or datetime.now(UTC))
    if not dry_run and not await broker.hold_lock(LOCK, owner, lock_ttl):
        return None
    done: list[Archived] = []
    try:
        for session in rooms:
            try:
                got = await broker.archive(session.slug, keep=keep, dry_run=dry_run)
            except BrokerUnavailable as exc:
                if not broker.ready:
                    raise
                log.warning("room not archived", room=session.slug, reason=str(exc))
                continue
            if got is not None:
                done.append(got)
            if not dry_run:  # a long pass keeps the lock as long as it works
                await broker.hold_lock(LOCK, owner, lock_ttl)
    finally:
        if not dry_run:
            await broker.release_lock(LOCK, owner)
    return done


async def archiver(hub: Hub) -> None:
    """The periodic pass, for :meth:`Supervisor.keep_running` (which restarts it); reads
    the hub's programme each time, so a reloaded programme counts from its next pass."""
    config = hub.config
    owner = owner_id()
    while True:
        try:
            got = await run_once(hub.broker, hub.programme, retain_after=config.retain_after,
                                 keep=config.retain_keep, owner=owner)
        except BrokerUnavailable as exc:
            log.warning("archiver: broker unavailable; next pass later", reason=str(exc))
        else:
            for a in got or ():
                if a.archived or a.trimmed:
                    log.info("room archived", room=a.room, archived=a.archived,
                             trimmed=a.trimmed, kept=a.kept, upto=a.upto)
        await asyncio.sleep(config.retain_interval)
