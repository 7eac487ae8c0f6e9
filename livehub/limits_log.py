"""Operators see the limits bite: a counter per limit, and one log line per address.

``refused(limit, address)`` is called once per refusal by every fair limit (connections
per address, the HTTP deadlines, and the per-person and per-address budgets). It counts
``livehub_refusals_total{limit=...}`` every time, but logs only when a limit *starts*
refusing an address: after that address has gone ``QUIET`` seconds without a refusal by
that limit. A flood therefore costs one log line, not one per request.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import structlog

from livehub import metrics

log = structlog.get_logger("livehub.limits")

QUIET = 60.0  # seconds without a refusal before the next one is logged again
_MAX_TRACKED = 10_000  # (limit, address) pairs remembered; the oldest are forgotten

_last: OrderedDict[tuple[str, str], float] = OrderedDict()


def refused(limit: str, address: str, reason: str | None = None, **info: object) -> bool:
    """Count one refusal; log it when this limit starts refusing this address.

    Returns whether a line was logged. ``reason`` is for people (what the client was
    told); ``limit`` is the metric label, a short fixed name such as
    ``connections_per_address``.
    """
    metrics.REFUSALS.labels(limit).inc()
    now = time.monotonic()
    key = (limit, address)
    last = _last.pop(key, None)
    _last[key] = now
    if len(_last) > _MAX_TRACKED:
        _last.popitem(last=False)
    if last is not None and now - last < QUIET:
        return False
    log.info("limit refusing", limit=limit, ip=address, reason=reason or limit, **info)
    return True
