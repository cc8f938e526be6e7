"""Schema administration used by `mentorship migrate` and `mentorship dev`: create the
database when missing and bring it to the Alembic head, with the migration account.

A server that cannot be reached, a login refused or a URL that is not PostgreSQL's is
`DatabaseUnavailable`: one line for the person at the terminal, not a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url

ROOT = Path(__file__).resolve().parents[2]
URL_SHAPE = "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"


class DatabaseUnavailable(RuntimeError):
    """The database cannot be used as configured; the message is one line, secret-free."""


def parse_database_url(database_url: str, variable: str = "DATABASE_URL") -> URL:
    """The URL, or DatabaseUnavailable saying what is wrong with it."""
    try:
        url = make_url(database_url)
    except (sa_exc.ArgumentError, ValueError):
        raise DatabaseUnavailable(
            f"{variable} is not a database URL; expected {URL_SHAPE}") from None
    if url.get_backend_name() != "postgresql":
        raise DatabaseUnavailable(
            f"{variable} must be a PostgreSQL URL ({URL_SHAPE}), not {url.drivername}://...")
    if not url.database:
        raise DatabaseUnavailable(f"{variable} names no database; expected {URL_SHAPE}")
    return url


def _where(url: URL) -> str:
    if url.host:
        return f"{url.host}:{url.port or 5432}"
    socket_dir = url.query.get("host")
    return f"the socket in {socket_dir}" if socket_dir else "the local socket"


def describe_database_error(error: BaseException, database_url: str) -> str | None:
    """One line for a connection-level failure (None for anything else: a real bug keeps
    its traceback). Never prints the password."""
    if isinstance(error, sa_exc.DBAPIError) and error.orig is not None:
        error = error.orig.__cause__ or error.orig
    url = make_url(database_url)
    where, user = _where(url), url.username or "(default user)"
    if isinstance(error, socket.gaierror):
        return (f"cannot resolve the PostgreSQL host {url.host!r} of DATABASE_URL "
                f"({error.strerror or error})")
    if isinstance(error, ConnectionRefusedError | FileNotFoundError):
        return f"no PostgreSQL server is listening at {where}: is it running? (DATABASE_URL)"
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return f"PostgreSQL at {where} did not answer in time (DATABASE_URL)"
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return (f"database {url.database!r} does not exist at {where}: "
                "`mentorship migrate` creates it")
    if isinstance(error, asyncpg.InvalidAuthorizationSpecificationError):  # password too
        return f"PostgreSQL at {where} refused the login of {user!r}: {error}"
    if isinstance(error, asyncpg.InsufficientPrivilegeError):
        return (f"{user!r} may not do this at {where}: {error} (run `mentorship migrate` "
                "with an account that may create databases and roles)")
    if isinstance(error, OSError):
        return f"cannot connect to PostgreSQL at {where}: {error.strerror or error}"
    if isinstance(error, asyncpg.PostgresConnectionError | asyncpg.CannotConnectNowError):
        return f"PostgreSQL at {where} refused the connection: {error}"
    return None


@contextlib.contextmanager
def database_errors(database_url: str) -> Iterator[None]:
    """Turn connection-level failures inside the block into DatabaseUnavailable."""
    parse_database_url(database_url)
    try:
        yield
    except DatabaseUnavailable:
        raise
    except Exception as error:
        message = describe_database_error(error, database_url)
        if message is None:
            raise
        raise DatabaseUnavailable(message) from error


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
    with database_errors(database_url):
        return asyncio.run(_ensure_database(database_url))


def migrate(database_url: str, revision: str = "head") -> bool:
    """`mentorship migrate`: create the database if missing, then upgrade. True if created."""
    created = ensure_database(database_url)
    with database_errors(database_url):
        upgrade(database_url, revision)
    return created
