"""``livehub serve`` with injected faults, for tests of supervision.

``FAULTY_GAP_READS=N``: the first N log reads after a position (gap fills, replays)
raise an unexpected ``RuntimeError`` (not ``BrokerUnavailable``), as a bug or a bad log
entry would. Run as ``python -m tests.faulty_serve serve ...``.
"""

from __future__ import annotations

import os
import sys

from livehub.broker.base import History
from livehub.broker.redis import RedisBroker
from livehub.cli import main

_left = int(os.environ.get("FAULTY_GAP_READS", "0"))
_read = RedisBroker.read


async def _faulty_read(self: RedisBroker, room: str, after: int = 0,
                       limit: int | None = None) -> History:
    global _left
    if after > 0 and _left > 0:
        _left -= 1
        print(f"injected fault: read({room!r}, {after})", file=sys.stderr, flush=True)
        raise RuntimeError("injected fault in a log read")
    return await _read(self, room, after, limit)


RedisBroker.read = _faulty_read  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
