"""Migrations: upgrade -> downgrade -> upgrade is clean and models match the schema."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.support.harness import ServerHarness, _plain_dsn


@pytest.fixture(scope="module")
def scratch(servers: ServerHarness):
    """A second, empty database on the same server, so the main test database stays put."""
    scratch = ServerHarness.__new__(ServerHarness)
    scratch.__dict__.update(servers.__dict__)
    scratch.name = f"{servers.name}_mig_{uuid.uuid4().hex[:4]}"
    scratch.database_url = make_url(servers.server_url).set(
        database=scratch.name).render_as_string(hide_password=False)
    scratch._admin(f'CREATE DATABASE "{scratch.name}"')
    yield scratch
    scratch._admin(f'DROP DATABASE IF EXISTS "{scratch.name}" WITH (FORCE)')


def _ok(result) -> str:
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def test_upgrade_downgrade_upgrade_is_clean(scratch):
    _ok(scratch.alembic("upgrade", "head"))
    _ok(scratch.alembic("downgrade", "base"))
    _ok(scratch.alembic("upgrade", "head"))
    assert "(head)" in _ok(scratch.alembic("current"))


def test_models_and_migrations_do_not_drift(scratch):
    _ok(scratch.alembic("upgrade", "head"))
    assert "No new upgrade operations detected" in _ok(scratch.alembic("check"))


def test_single_head(scratch):
    heads = _ok(scratch.alembic("heads")).strip().splitlines()
    assert len([h for h in heads if "(head)" in h]) == 1, heads


async def test_0029_drops_scheduling_lock_inputs_and_its_downgrade_restores_it(scratch):
    """No code calls 0025's function since 0028; going back to 0026 brings it back as 0025
    made it (owner and grants: the code of that release calls it)."""
    async def lock_inputs() -> tuple[str, bool] | None:
        connection = await asyncpg.connect(_plain_dsn(scratch.database_url))
        try:
            row = await connection.fetchrow(
                "select pg_get_userbyid(proowner) as owner, has_function_privilege("
                "'mentorship_app', oid, 'execute') as granted from pg_proc "
                "where proname = 'scheduling_lock_inputs'")
        finally:
            await connection.close()
        return None if row is None else (row["owner"], row["granted"])

    _ok(scratch.alembic("upgrade", "head"))
    assert await lock_inputs() is None
    _ok(scratch.alembic("downgrade", "0026"))
    assert await lock_inputs() == ("mentorship_worker", True)
    _ok(scratch.alembic("upgrade", "head"))
    assert await lock_inputs() is None
