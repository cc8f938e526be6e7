"""Structured JSON logs (structlog) with a request id on every line of a request."""

from __future__ import annotations

import logging
import re
import sys

import structlog

_SECRET_QUERY = re.compile(r"((?:^|[?&])access_token=)[^&\s\"]*")


class RedactQueryTokens(logging.Filter):
    """Masks `access_token=` query values (SSE, calendar feeds) in log records' arguments.

    uvicorn's access log prints the full path with its query string; its formatter needs
    the argument tuple intact, so each string argument is masked in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_QUERY.sub(r"\1[redacted]", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        if isinstance(record.msg, str) and "access_token=" in record.msg:
            record.msg = _SECRET_QUERY.sub(r"\1[redacted]", record.msg)
        return True


def redact_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQueryTokens) for f in access.filters):
        access.addFilter(RedactQueryTokens())


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    redact_access_log()
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
