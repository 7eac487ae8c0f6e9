"""``livehub`` with benchmark-only experiment switches, for before/after measurements.

Run as ``python -m bench.lh_serve serve ...`` (the same arguments as ``livehub``).
The switches are applied at import time, so the worker processes that
``--workers N`` spawns (which re-import this module as ``__mp_main__``) get them
too. Without any of these variables it is exactly ``livehub``.

- ``LIVEHUB_BENCH_COALESCE_AFTER=N``: coalesce once more than N frames wait
  (livehub's default is ``hub.COALESCE_AFTER``; a huge N turns coalescing off).
- ``LIVEHUB_BENCH_LINGER=S``: how long a busy process lets a flush wait (0: no wait).
- ``LIVEHUB_BENCH_WS=websockets``: uvicorn's older ``websockets`` protocol
  instead of ``websockets-sansio``.
- ``LIVEHUB_BENCH_BASELINE=1``: the ``Connection`` from before the benchmark work
  (:mod:`bench.baseline_hub`), for A/B runs.
- ``LIVEHUB_BENCH_RAW_SEND=1``: the hub sends through the raw ASGI ``send``, not
  Starlette's ``WebSocket.send`` wrapper.
- ``LIVEHUB_BENCH_GC=1``: ``gc.freeze()`` after the imports and a higher ``gc``
  threshold (fewer, shorter collections).
- ``LIVEHUB_BENCH_LOOP=asyncio`` / ``LIVEHUB_BENCH_HTTP=h11``: without uvloop / httptools.
"""

from __future__ import annotations

import os
from typing import Any

import livehub.hub
import livehub.server

_coalesce = os.environ.get("LIVEHUB_BENCH_COALESCE_AFTER")
if _coalesce:
    livehub.hub.COALESCE_AFTER = int(_coalesce)  # type: ignore[misc]
    livehub.hub.COALESCE_LOADED = max(  # type: ignore[misc]
        int(_coalesce), getattr(livehub.hub, "COALESCE_LOADED", 0))
_linger = os.environ.get("LIVEHUB_BENCH_LINGER")
if _linger and hasattr(livehub.hub, "_Flusher"):
    livehub.hub._Flusher.LINGER = float(_linger)  # type: ignore[misc]

if os.environ.get("LIVEHUB_BENCH_BASELINE"):
    import livehub.ws
    from bench.baseline_hub import BaselineConnection

    livehub.hub.Connection = BaselineConnection  # type: ignore[misc]
    livehub.ws.Connection = BaselineConnection  # type: ignore[misc]

if os.environ.get("LIVEHUB_BENCH_RAW_SEND"):
    import livehub.ws

    class RawSendConnection(livehub.hub.Connection):
        """Sends through the ASGI ``send`` under Starlette's ``WebSocket.send`` (and its
        state checks): what ws.py could hand the hub directly."""

        __slots__ = ()

        def __init__(self, send: Any, *args: Any, **kwargs: Any) -> None:
            owner = getattr(send, "__self__", None)
            super().__init__(getattr(owner, "_send", send), *args, **kwargs)

    livehub.hub.Connection = RawSendConnection  # type: ignore[misc]
    livehub.ws.Connection = RawSendConnection  # type: ignore[misc]

_overrides = {key: os.environ[var] for key, var in (
    ("ws", "LIVEHUB_BENCH_WS"), ("loop", "LIVEHUB_BENCH_LOOP"), ("http", "LIVEHUB_BENCH_HTTP"),
) if os.environ.get(var)}
if _overrides:
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
