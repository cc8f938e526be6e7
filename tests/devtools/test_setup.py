"""The setup of a fresh machine: scripts/bootstrap picks a supported Python or says in one
line that there is none (never a download); tests that need a Debian tool skip, naming the
package, except under CI=true where they fail."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.harness import ROOT
from tests.support.tools import require_tool


def fake_python(directory: Path, version: str) -> Path:
    path = directory / f"python{version}"
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_no_supported_python_is_one_line_and_nothing_is_downloaded(tmp_path: Path) -> None:
    too_new, too_old = fake_python(tmp_path, "3.13"), fake_python(tmp_path, "3.10")
    result = subprocess.run(
        [str(ROOT / "scripts" / "bootstrap")], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHON": f"{too_new} {too_old} no-such-python"}, timeout=60,
        check=False)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "needs Python 3.11 or 3.12" in result.stderr
    assert f"{too_new}=3.13" in result.stderr and f"{too_old}=3.10" in result.stderr


def test_a_missing_tool_skips_with_the_package_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install prometheus"):
        require_tool("promtool")


def test_a_missing_tool_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium.*CI=true"):
        require_tool("chromium")


def test_a_present_tool_is_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tool = fake_python(tmp_path, "wrk")
    tool.rename(tmp_path / "wrk")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert require_tool("wrk") == str(tmp_path / "wrk")
