"""Structured logs (structlog), one JSON object per line, with secrets redacted.

Everything goes through one handler on the root logger: our own structlog loggers and the
standard library's (uvicorn, arq, SQLAlchemy, httpx) alike, so every line has the same
shape and passes the same redaction. A request's lines carry its `request_id` (bound by
the request pipeline, app/core/middleware.py). uvicorn's own access log is switched off: it
prints the raw query string (where `?access_token=` lives) and our access line
(`app.access`) replaces it with the route template, user id, status and duration.
"""

from __future__ import annotations

import functools
import json as jsonlib
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any

import structlog

REDACTED = "[REDACTED]"
# A key containing any of these names a secret, whatever its value.
_SENSITIVE_KEY_PARTS = ("authorization", "token", "secret", "password", "passwd", "cookie",
                        "api_key", "apikey", "signature", "credential")
# Secrets inside free text: query parameters, bearer credentials, JWTs, DSN passwords.
_TEXT_PATTERNS = (
    (re.compile(r"(?i)\b((?:access_|refresh_|id_)?token|api_?key|password|secret|signature)"
                r"=[^&\s\"'#]+"), rf"\1={REDACTED}"),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*"), f"Bearer {REDACTED}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/\s@]+):[^@/\s]+@"), rf"\1:{REDACTED}@"),
)
# Every pattern above needs one of these in the text: most strings (paths, ids, messages)
# have none, and one search is much cheaper than four substitutions.
_MAYBE_SECRET = re.compile(r"=|://|eyJ|(?i:bearer)")
_PLAIN = (int, float, bool, type(None))
_HANDLER_NAME = "mentorship-json"


@functools.lru_cache(maxsize=4096)  # keys are a small vocabulary: decide each once
def _sensitive_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SENSITIVE_KEY_PARTS)


def _sensitive(key: Any) -> bool:
    return _sensitive_name(str(key))


def redact_text(text: str) -> str:
    if not _MAYBE_SECRET.search(text):
        return text
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, _PLAIN):
        return value
    if depth > 5:
        return REDACTED
    if isinstance(value, dict):
        return {k: REDACTED if _sensitive(k) else _scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v, depth + 1) for v in value]
    # URLs, exceptions, anything else: rendered as text, then scrubbed.
    return redact_text(str(value))


def redact_secrets(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: values under sensitive keys are replaced; every string (the
    message and formatted tracebacks included) loses query-string secrets, bearer
    credentials, JWTs and URL passwords."""
    return {key: REDACTED if _sensitive(key) and key != "event" else _scrub(value)
            for key, value in event_dict.items()}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _: object) -> None:
        pass


def use_colours() -> bool:
    """ANSI colours for people at a terminal only: not in a file, a pipe or CI logs, and
    never with NO_COLOR set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


class _Formatter(structlog.stdlib.ProcessorFormatter):
    """Structlog's formatter, except for a record that carries its line already rendered
    (`log_access`)."""

    def format(self, record: logging.LogRecord) -> str:
        rendered = record.__dict__.get("rendered_line")
        return rendered if rendered is not None else super().format(record)


_access = logging.getLogger("app.access")
_access_structlog = structlog.get_logger("app.access")
_json_lines = True  # configure_logging's `json`


def log_access(**fields: Any) -> None:
    """The access line (event "request", logger `app.access`, INFO): the same JSON object,
    through the same handler and redaction, as `structlog.get_logger("app.access")
    .info("request", **fields)`, built directly instead of through structlog's processor
    chain, the standard library's caller lookup and the formatter's record copy: it is
    written once per request (~0.15 ms per line that way, py-spy). Console logs
    (development) take the ordinary path."""
    if not _json_lines:
        _access_structlog.info("request", **fields)
        return
    if not _access.isEnabledFor(logging.INFO):
        return
    event = {**fields, "event": "request"}
    for key, value in structlog.contextvars.get_contextvars().items():
        event.setdefault(key, value)
    event["logger"] = "app.access"
    event["level"] = "info"
    event["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    record = logging.LogRecord("app.access", logging.INFO, __file__, 0, event, None, None)
    record.rendered_line = jsonlib.dumps(redact_secrets(None, "info", event))
    _access.handle(record)


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    global _json_lines
    _json_lines = json
    renderer = (structlog.processors.JSONRenderer() if json
                else structlog.dev.ConsoleRenderer(colors=use_colours()))
    formatter = _Formatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_secrets,  # after format_exc_info: tracebacks are scrubbed too
            renderer,
        ],
    )
    handler = _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())

    # Libraries that install their own handlers (uvicorn's dictConfig, arq's CLI) log
    # through ours instead.
    for name in ("uvicorn", "uvicorn.error", "arq", "arq.worker", "arq.jobs"):
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per outbound request
