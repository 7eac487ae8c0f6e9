"""Logging setup: structlog over the standard library, text or JSON lines.

With ``LIVEHUB_LOG_FORMAT=json`` every line on standard error is one JSON object
with at least ``event`` (the message), ``level``, ``logger`` and ``timestamp``
(ISO 8601, UTC), plus the fields of the call and whatever is bound with
``structlog.contextvars.bind_contextvars`` in the task that logs (the transport
binds ``room`` and ``uid`` for a connection; the organisers' API binds
``endpoint``, ``room`` and ``uid``). Logs of other libraries (uvicorn, redis)
go through the same renderer.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(fmt: str = "text", level: str = "info") -> None:
    """Route livehub's and uvicorn's logs through one renderer."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.PositionalArgumentsFormatter(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
        foreign_pre_chain=shared,
    ))
    logging.captureWarnings(True)  # Python warnings too: one renderer for everything
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
