"""No token appears in the logs of a test run.

Every token the tests mint is recorded (`Factory.token`, and `app.core.auth.mint_token` wrapped
by conftest for tests that mint directly). Every log line the application writes is
collected: live uvicorn servers' output files (tests/support/live.py registers them) and, for
in-process apps, each record formatted by the application's own JSON handler, exactly as
it would reach stderr. At the end of the session conftest scans the collected logs.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path

MINTED: set[str] = set()
LOG_FILES: list[Path] = []


def record(token: str) -> str:
    MINTED.add(token)
    return token


def recording(mint):
    @functools.wraps(mint)
    def wrapper(*args, **kwargs):
        return record(mint(*args, **kwargs))

    return wrapper


def _needles(token: str) -> Iterable[str]:
    """The whole token, and its signature alone (a log cutting the token in pieces still
    leaks it if the signature is there)."""
    yield token
    signature = token.rsplit(".", 1)[-1]
    if len(signature) >= 20:
        yield signature


def find_leaks(paths: Iterable[Path], tokens: Iterable[str]) -> list[str]:
    needles = {needle for token in tokens for needle in _needles(token)}
    leaks = []
    for path in paths:
        if not path.exists():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if any(needle in line for needle in needles):
                leaks.append(f"{path}:{number}: {line[:300]}")
    return leaks


class AppLogCapture(logging.Handler):
    """Root-logger handler writing what the app's own handler would write, to a file."""

    def __init__(self, handler_name: str, path: Path | None = None) -> None:
        """Without `path`: a temporary file, registered for the end-of-run scan."""
        super().__init__(logging.DEBUG)
        self.handler_name = handler_name
        if path is None:
            file = tempfile.NamedTemporaryFile(prefix="app-logs-", suffix=".log", delete=False)
            file.close()
            path = Path(file.name)
            LOG_FILES.append(path)
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        app_handler = next((h for h in logging.getLogger().handlers
                            if h.get_name() == self.handler_name), None)
        if app_handler is None or app_handler.formatter is None:
            return
        if record.levelno < logging.getLogger().getEffectiveLevel():
            return
        try:
            line = app_handler.formatter.format(record)
        except Exception:  # noqa: BLE001 - a capture must never break the code under test
            line = record.getMessage()
        with self.path.open("a") as out:
            out.write(line + "\n")
