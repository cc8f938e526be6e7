"""What the database said when a statement failed: SQLSTATE and constraint name.

SQLAlchemy wraps the driver's exception (`DBAPIError.orig`); with asyncpg the adapter's
error carries the real one as `__cause__`. Every caller that branches on a SQLSTATE reads
it here, so the unwrapping lives in one place.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy.exc import DBAPIError


class DbErrorInfo(NamedTuple):
    sqlstate: str | None
    constraint: str | None


def db_error_info(exc: DBAPIError) -> DbErrorInfo:
    """(SQLSTATE, constraint name) of a failed statement; `None` for what is not known."""
    orig = getattr(exc, "orig", None)
    cause = getattr(orig, "__cause__", None) or orig  # the asyncpg error behind the adapter
    sqlstate = getattr(cause, "sqlstate", None) or getattr(orig, "sqlstate", None)
    return DbErrorInfo(sqlstate, getattr(cause, "constraint_name", None))


def sqlstate_of(exc: DBAPIError) -> str | None:
    return db_error_info(exc).sqlstate
