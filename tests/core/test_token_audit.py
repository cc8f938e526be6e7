"""The end-of-run token audit (tests/support/token_audit.py, `no_token_in_logs`) can fail."""

from __future__ import annotations

import logging
import uuid

import structlog

from app.core.auth import mint_token
from app.core.logging import _HANDLER_NAME, configure_logging
from tests.support.token_audit import MINTED, AppLogCapture, find_leaks


def test_a_token_or_its_signature_in_a_log_is_a_leak(settings, tmp_path):
    token = mint_token(uuid.uuid4(), "mentor", settings)
    assert token in MINTED  # recorded by conftest's wrapper
    log = tmp_path / "server.log"
    log.write_text("start\nGET /x?access_token=[REDACTED]\n")
    assert find_leaks([log], MINTED) == []
    log.write_text(f"start\nraw {token}\n")
    assert find_leaks([log], [token]) == [f"{log}:2: raw {token}"]
    log.write_text(f"signature only {token.rsplit('.', 1)[1]}\n")
    assert len(find_leaks([log], [token])) == 1


def test_in_process_app_logs_are_captured_as_written_and_redacted(settings, tmp_path):
    configure_logging("INFO")
    capture = AppLogCapture(_HANDLER_NAME, tmp_path / "app.log")
    logging.getLogger().addHandler(capture)
    token = mint_token(uuid.uuid4(), "mentor", settings)
    try:
        structlog.get_logger("probe").info("probe_line", note=f"Bearer {token}", n=1)
        logging.getLogger("probe.std").warning("std line %s", token)
    finally:
        logging.getLogger().removeHandler(capture)
    text = capture.path.read_text()
    assert "probe_line" in text and "std line" in text
    assert find_leaks([capture.path], [token]) == []  # the app's redaction held
    # Without redaction the capture would show the token: the scan is not vacuous.
    capture.path.write_text(text + f'{{"event": "oops", "t": "{token}"}}\n')
    assert find_leaks([capture.path], [token])
