"""`mentorship migrate`, `seed` and `dev` when the database is missing or cannot be used:
migrate creates a missing database; an unreachable server, a refused login or a URL that is
not PostgreSQL's is one `error:` line and exit status 1, never a traceback."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from app.devtools.seed import plain_dsn
from tests.support.harness import ROOT, ServerHarness


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once closed


def mentorship(*args: str, env: dict[str, str], cwd: Path = ROOT,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("DATABASE_URL", "REDIS_URL", "APP_DATABASE_URL", "WORKER_DATABASE_URL")}
    return subprocess.run([sys.executable, "-m", "app.devtools.cli", *args], cwd=cwd,
                          env={**clean, "PYTHONPATH": str(ROOT), **env}, capture_output=True,
                          text=True, timeout=timeout, check=False)


def assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and expected in errors[0], output


UNREACHABLE = f"postgresql://postgres@127.0.0.1:{_closed_port()}/mentorship"
BAD_URLS = [
    (UNREACHABLE, "no PostgreSQL server is listening at 127.0.0.1:"),
    ("postgresql://postgres@no-such-host.invalid/mentorship", "cannot resolve"),
    ("not a url", "DATABASE_URL is not a database URL"),
    ("mysql://root:s3cret@127.0.0.1/mentorship", "must be a PostgreSQL URL"),
    ("postgresql://postgres@127.0.0.1:5432", "names no database"),
]


CASES = [("migrate", url, expected) for url, expected in BAD_URLS] + [
    ("seed", url, expected) for url, expected in BAD_URLS[:2]]


@pytest.mark.parametrize(("command", "url", "expected"), CASES)
def test_bad_or_unreachable_database_is_one_line(command: str, url: str, expected: str) -> None:
    result = mentorship(command, env={"DATABASE_URL": url}, timeout=60)
    assert_one_line_error(result, expected)
    assert "s3cret" not in result.stdout + result.stderr


def test_dev_with_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    port = _closed_port()
    result = mentorship("dev", "--port", str(_closed_port()), "--data-dir",
                        str(tmp_path / "data"), cwd=tmp_path, timeout=90,
                        env={"DATABASE_URL": UNREACHABLE,
                             "REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    assert_one_line_error(result, "no PostgreSQL server is listening")
    assert "Stopped." in result.stdout and "Press Ctrl-C" not in result.stdout


def test_dev_with_a_bad_url_stops_before_starting_anything(tmp_path: Path) -> None:
    result = mentorship("dev", "--port", str(_closed_port()), "--data-dir",
                        str(tmp_path / "data"), cwd=tmp_path, timeout=90,
                        env={"DATABASE_URL": "mysql://root@localhost/x"})
    assert_one_line_error(result, "must be a PostgreSQL URL")
    assert not (tmp_path / "data").exists()


def test_a_refused_login_is_one_line(servers: ServerHarness) -> None:
    url = servers.database_url_for("postgres")
    from sqlalchemy.engine import make_url

    wrong = make_url(url).set(username="no_such_role_here", password="pw").render_as_string(
        hide_password=False)
    result = mentorship("migrate", env={"DATABASE_URL": wrong}, timeout=60)
    assert_one_line_error(result, "refused the login of 'no_such_role_here'")


async def _schema_version(url: str) -> str:
    connection = await asyncpg.connect(plain_dsn(url))
    try:
        return await connection.fetchval("select version_num from alembic_version")
    finally:
        await connection.close()


def test_migrate_creates_a_missing_database(servers: ServerHarness) -> None:
    name = f"{servers.name}_created"
    url = servers.database_url_for(name)
    try:
        result = mentorship("migrate", env={"DATABASE_URL": url})
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"created database {name}" in result.stderr
        assert asyncio.run(_schema_version(url))
        again = mentorship("migrate", env={"DATABASE_URL": url})
        assert again.returncode == 0 and "created database" not in again.stderr
    finally:
        servers.drop_database(name)
