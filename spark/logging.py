"""Structured logging: structlog for our code, stdlib logging (Temporal's workflow.logger and
activity.logger) routed through the same renderer. JSON lines unless a console is attached."""

from __future__ import annotations

import logging
import sys

import structlog

_SHARED_PROCESSORS: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(level: str = "INFO", *, json: bool | None = None) -> None:
    """Configure structlog and stdlib logging once per process."""
    use_json = (not sys.stderr.isatty()) if json is None else json
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*_SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a logger cached under one configuration keeps it for good, so a later
        # ``configure`` (the CLI's stderr-only setup, ``structlog.testing.capture_logs``) would
        # silently miss module-level loggers already used. Logging is off the request path.
        cache_logger_on_first_use=False,
    )
    # JSON lines carry a rendered traceback ("exception" key) instead of the repr of the
    # exc_info tuple (``<traceback object at 0x...>``); the console renderer formats it itself
    exceptions: list[structlog.types.Processor] = (
        [structlog.processors.StackInfoRenderer(), structlog.processors.format_exc_info]
        if use_json
        else []
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED_PROCESSORS, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exceptions,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
