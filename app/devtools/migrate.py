"""Schema administration used by `mentorship migrate` and `mentorship dev`: create the
database when missing and bring it to the Alembic head, with the migration account."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str, *, configure_logger: bool = True) -> Config:
    """Alembic's config for this project (alembic.ini beside the `app` package, or in the
    working directory), pointed at `database_url`. `configure_logger=False` leaves the
    caller's logging alone (alembic.ini would otherwise reconfigure it)."""
    ini = ROOT / "alembic.ini"
    if not ini.exists():
        ini = Path.cwd() / "alembic.ini"
    config = Config(str(ini))
    # ConfigParser interpolates '%': percent-encoded URLs (socket paths, passwords) need '%%'.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logger"] = configure_logger
    return config


def upgrade(database_url: str, revision: str = "head", *, configure_logger: bool = True) -> None:
    command.upgrade(alembic_config(database_url, configure_logger=configure_logger), revision)


def _plain(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def _ensure_database(database_url: str) -> bool:
    name = make_url(database_url).database
    try:
        connection = await asyncpg.connect(_plain(database_url))
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await connection.close()
        return False
    # Connect to the server's maintenance database to create ours.
    connection = await asyncpg.connect(_plain(database_url, "postgres"))
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        await connection.execute(f"CREATE DATABASE {quoted}")
    except asyncpg.DuplicateDatabaseError:
        return False  # created meanwhile
    finally:
        await connection.close()
    return True


def ensure_database(database_url: str) -> bool:
    """Create the database named by `database_url` if it does not exist. True if created."""
    return asyncio.run(_ensure_database(database_url))
