"""Seeing the limits bite: a counter per refusal, one log line per address and limit.

A flood is thousands of refusals a minute; logging each would let the abuser fill the
operator's disk. So a limit is logged when it starts refusing an address, and again
only after that address has been quiet for a minute.
"""

from __future__ import annotations

import time

import structlog

from livehub import metrics

log = structlog.get_logger("livehub.limits")

QUIET_S = 60.0
_MAX_TRACKED = 10_000

# (limit, address) -> when it last refused; insertion order is oldest first
_last: dict[tuple[str, str], float] = {}


def refused(limit: str, address: str, **fields: object) -> None:
    """Count one refusal by ``limit``; log it if ``address`` was not being refused."""
    metrics.REFUSALS.labels(limit).inc()
    now = time.monotonic()
    key = (limit, address)
    last = _last.pop(key, None)
    _last[key] = now
    if last is None or now - last > QUIET_S:
        log.warning("limit refusing", limit=limit, address=address, **fields)
    while len(_last) > _MAX_TRACKED:
        del _last[next(iter(_last))]
