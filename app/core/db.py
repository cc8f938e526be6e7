"""Engines, session factories and the per-request RLS transaction.

Two engines: the API's (role `mentorship_app`, RLS applies) and the workers'
(role `mentorship_worker`, BYPASSRLS, acting as the system). Each request runs in exactly
one transaction that first switches to its identity's role (`mentorship_mentee`, ...:
SET LOCAL ROLE) and sets `app.user_id` / `app.role`, all transaction-locally, so nothing
leaks to the next user of a pooled connection.

The transaction is opened and closed here, on the driver connection, not by SQLAlchemy:
`Database.transaction` puts the connection it checked out in autocommit mode while it holds
it (SQLAlchemy then issues no BEGIN or COMMIT of its own; no round trip either way), sends
`BEGIN` and the identity's `set_config` calls in one round trip (a simple-protocol query of
two statements), then `COMMIT` or `ROLLBACK`.
SQLAlchemy's own BEGIN was a round trip of its own before the `set_config` statement. A
connection that goes back to the pool inside a transaction (a cancelled request) is never
handed out again (`_checkout_check`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import Depends, Request
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.config import IDENTITY_DB_ROLES, Settings
from app.core.auth import Principal, current_principal, principal_from_header_or_query

# One statement, one round trip: the identity's database role (SET LOCAL ROLE, which is what
# RLS trusts: migration 0009), then the user id, the role name and the request id (for the
# audit trail), all transaction-local.
SET_PRINCIPAL = text(
    "select set_config('role', :db_role, true), set_config('app.user_id', :user_id, true),"
    " set_config('app.role', :role, true), set_config('app.request_id', :request_id, true)"
)


# The same, with the values written into the text, sent with BEGIN as one simple-protocol
# query (which takes no parameters). Only values made of these characters are written in
# (every real one is: a role name from a fixed set, a UUID, a request id that matched the
# pipeline's strict pattern or was generated); anything else takes the parameterised
# statement after a plain BEGIN.
_LITERAL = re.compile(r"[A-Za-z0-9._-]{0,128}")
BEGIN_AS = ("begin; select set_config('role', '{db_role}', true),"
            " set_config('app.user_id', '{user_id}', true),"
            " set_config('app.role', '{role}', true),"
            " set_config('app.request_id', '{request_id}', true)")


def begin_as(parameters: dict[str, str]) -> str | None:
    """BEGIN and the identity in one statement text, or None if a value is not plain."""
    if all(_LITERAL.fullmatch(value) for value in parameters.values()):
        return BEGIN_AS.format(**parameters)
    return None


def current_request_id() -> str:
    """The request id the middleware bound for this task ('' outside a request): the audit
    trail's `request_id` (the audit migration reads `app.request_id`)."""
    return structlog.contextvars.get_contextvars().get("request_id", "")


def principal_parameters(principal: Principal) -> dict[str, str]:
    return {"db_role": IDENTITY_DB_ROLES[principal.role], "user_id": str(principal.user_id),
            "role": principal.role, "request_id": current_request_id()}


def _checkout_check(dbapi_connection, _record, _proxy) -> None:
    """Checkout check without a round trip: a pooled connection whose socket the server
    closed (restart, terminated backend, idle timeout) is replaced before use. SQLAlchemy's
    `pool_pre_ping` would cost three round trips per checkout with asyncpg (BEGIN, a ping,
    ROLLBACK), on every request. So is one still inside a transaction (its user was
    cancelled before COMMIT or ROLLBACK): closing it ends that transaction on the server,
    and no request ever starts inside another's (the driver knows the transaction status
    from the server's last message: no round trip either)."""
    raw = getattr(dbapi_connection, "_connection", None)
    if raw is not None and raw.is_closed():
        raise DisconnectionError("the server closed this pooled connection")
    if raw is not None and raw.is_in_transaction():
        raise DisconnectionError("this pooled connection was left inside a transaction")


def make_engine(url: str, settings: Settings, **kwargs) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=kwargs.pop("pool_size", settings.db_pool_size),
        max_overflow=kwargs.pop("max_overflow", settings.db_max_overflow),
        # Errors and logs never carry statement parameters (personal data, webhook secrets).
        hide_parameters=True,
        **kwargs,
    )
    event.listen(engine.sync_engine, "checkout", _checkout_check)
    return engine


@dataclass
class Database:
    """The process's engines and session factories (one per process, built in lifespan)."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    @classmethod
    def connect(cls, url: str, settings: Settings, **kwargs) -> Database:
        engine = make_engine(url, settings, **kwargs)
        return cls(engine, async_sessionmaker(engine, expire_on_commit=False))

    async def dispose(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def transaction(self, principal: Principal | None) -> AsyncIterator[AsyncSession]:
        """One transaction as `principal` (None: an anonymous caller who sees nothing under
        RLS, or the system on the workers' BYPASSRLS engine). Commits on success (after
        flushing what the session still holds), rolls back on any error."""
        if principal is None:
            # The system's transactions (workers, relay, jobs) keep SQLAlchemy's own BEGIN:
            # with the driver-run BEGIN below, a separate relay process stopped publishing
            # after its first batch and did not stop on SIGTERM (sse_bench e2e, 2026-12-02;
            # cause not yet found). The saved round trip matters only per request.
            async with self.sessions() as session, session.begin():
                yield session
            return
        async with self.engine.connect() as connection:
            pooled = connection.sync_connection.connection
            driver = pooled.driver_connection
            parameters = principal_parameters(principal)
            opening = begin_as(parameters)
            # DBAPI autocommit, while this transaction holds the connection (restored before
            # it goes back to the pool, for code that lets SQLAlchemy begin transactions).
            pooled.dbapi_connection.autocommit = True
            try:
                await _run(driver, opening or "begin")
                session = self.sessions(bind=connection)
                if opening is None:  # a value that is not plain: bound, not written in
                    await session.execute(SET_PRINCIPAL, parameters)
                yield session
                if session.new or session.dirty or session.deleted:
                    await session.flush()
                await _run(driver, "commit")
            except BaseException:
                if driver.is_in_transaction():
                    with contextlib.suppress(Exception):  # the checkout check has it then
                        await _run(driver, "rollback")
                raise
            finally:
                pooled.dbapi_connection.autocommit = False


async def driver_connection(session: AsyncSession):  # -> asyncpg.Connection
    """The driver connection of the session's transaction (app/core/sql.py's DriverQuery
    runs hot reads on it). Without a round trip or a greenlet hop when the session came
    from `Database.transaction` (bound to its connection)."""
    bind = session.bind
    if not isinstance(bind, AsyncConnection):
        bind = await session.connection()
    return _driver(bind)


def _driver(connection: AsyncConnection):  # -> asyncpg.Connection
    """The asyncpg connection under a checked-out SQLAlchemy connection (no round trip)."""
    return connection.sync_connection.connection.driver_connection


async def _run(driver, statement: str) -> None:
    """A statement without parameters on the driver connection, in one round trip."""
    try:
        await driver.execute(statement)
    except Exception as error:
        raise driver_error(statement, error) from error


def driver_error(statement: str, error: Exception) -> Exception:
    """A driver's error as SQLAlchemy raises any statement's (DBAPIError, with the driver's
    error as `orig`: app/core/dberrors.py reads its SQLSTATE), so the error handlers map
    it alike."""
    return DBAPIError.instance(statement, None, error, Exception, hide_parameters=True)


# --- FastAPI dependencies -------------------------------------------------------------------
# The transaction commits when the route returns, before the response is sent
# (scope="function"), so a client never sees 2xx for a write that then failed.

async def _transaction_as(request: Request, principal: Principal) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.shared.db
    async with database.transaction(principal) as session:
        yield session


async def rls_session(
    request: Request, principal: Annotated[Principal, Depends(current_principal)]
) -> AsyncIterator[AsyncSession]:
    async for session in _transaction_as(request, principal):
        yield session


async def rls_session_query_token(
    request: Request, principal: Annotated[Principal, Depends(principal_from_header_or_query)]
) -> AsyncIterator[AsyncSession]:
    async for session in _transaction_as(request, principal):
        yield session


DbSession = Annotated[AsyncSession, Depends(rls_session, scope="function")]
# For routes that also accept `?access_token=` (calendar feed, SSE).
DbSessionQueryToken = Annotated[AsyncSession, Depends(rls_session_query_token, scope="function")]
