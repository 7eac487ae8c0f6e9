"""``livehub`` with benchmark-only experiment switches, for before/after measurements.

Run as ``python -m bench.lh_serve serve ...`` (the same arguments as ``livehub``).
The switches are applied at import time, so the worker processes that
``--workers N`` spawns (which re-import this module as ``__mp_main__``) get them
too. Without any of these variables it is exactly ``livehub``.

- ``LIVEHUB_BENCH_SOURCE=DIR``: import livehub from ``DIR`` (a checkout of an earlier
  commit, e.g. ``git archive <commit> livehub | tar -x -C DIR``): before/after runs of
  the same harness in one session.
- ``LIVEHUB_COALESCE_AFTER=N`` (a livehub setting): coalesce once more than N frames
  wait (a huge N turns coalescing off); ``LIVEHUB_FLUSH_LINGER=S``: how long a busy
  process lets a flush wait (0: no wait).
- ``LIVEHUB_BENCH_COALESCE_AFTER`` / ``LIVEHUB_BENCH_LINGER``: the same, older names.
- ``LIVEHUB_BENCH_GC=1``: ``gc.freeze()`` after the imports and a higher ``gc``
  threshold (fewer, shorter collections).
- ``LIVEHUB_BENCH_LOOP=asyncio`` / ``LIVEHUB_BENCH_HTTP=h11``: without uvloop / httptools.
"""

from __future__ import annotations

import os
import sys
from typing import Any

if os.environ.get("LIVEHUB_BENCH_SOURCE"):
    sys.path.insert(0, os.environ["LIVEHUB_BENCH_SOURCE"])

for _old, _new in (("LIVEHUB_BENCH_COALESCE_AFTER", "LIVEHUB_COALESCE_AFTER"),
                   ("LIVEHUB_BENCH_LINGER", "LIVEHUB_FLUSH_LINGER")):
    if os.environ.get(_old):
        os.environ.setdefault(_new, os.environ[_old])

_overrides = {key: os.environ[var] for key, var in (
    ("loop", "LIVEHUB_BENCH_LOOP"), ("http", "LIVEHUB_BENCH_HTTP"),
) if os.environ.get(var)}
if _overrides:
    import livehub.server

    _original = livehub.server.uvicorn_config

    def _patched(cfg: Any, app: Any) -> Any:
        config = _original(cfg, app)
        for key, value in _overrides.items():
            setattr(config, key, value)
        return config

    livehub.server.uvicorn_config = _patched

if os.environ.get("LIVEHUB_BENCH_GC"):
    # "freeze": move everything imported so far out of the collector's sight and collect
    # the young generation less often (long-lived servers allocate in bursts).
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)

if __name__ == "__main__":
    from livehub.cli import main

    main()
