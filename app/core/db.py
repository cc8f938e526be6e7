"""Engines, session factories and the per-request RLS transaction.

Two engines: the API's (role `mentorship_app`, RLS applies) and the workers'
(role `mentorship_worker`, BYPASSRLS, acting as the system). Each request runs in exactly
one transaction that first switches to its identity's role (`mentorship_mentee`, ...:
SET LOCAL ROLE) and sets `app.user_id` / `app.role`, all transaction-locally, so nothing
leaks to the next user of a pooled connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import Depends, Request
from sqlalchemy import event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
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


def current_request_id() -> str:
    """The request id the middleware bound for this task ('' outside a request): the audit
    trail's `request_id` (the audit migration reads `app.request_id`)."""
    return structlog.contextvars.get_contextvars().get("request_id", "")


def principal_parameters(principal: Principal) -> dict[str, str]:
    return {"db_role": IDENTITY_DB_ROLES[principal.role], "user_id": str(principal.user_id),
            "role": principal.role, "request_id": current_request_id()}


def _replace_closed(dbapi_connection, _record, _proxy) -> None:
    """Checkout check without a round trip: a pooled connection whose socket the server
    closed (restart, terminated backend, idle timeout) is replaced before use. SQLAlchemy's
    `pool_pre_ping` would cost three round trips per checkout with asyncpg (BEGIN, a ping,
    ROLLBACK), on every request."""
    raw = getattr(dbapi_connection, "_connection", None)
    if raw is not None and raw.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def make_engine(url: str, settings: Settings, **kwargs) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=kwargs.pop("pool_size", settings.db_pool_size),
        max_overflow=kwargs.pop("max_overflow", settings.db_max_overflow),
        # Errors and logs never carry statement parameters (personal data, webhook secrets).
        hide_parameters=True,
        **kwargs,
    )
    event.listen(engine.sync_engine, "checkout", _replace_closed)
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
        RLS, or the system on the workers' BYPASSRLS engine). Commits on success."""
        async with self.sessions() as session, session.begin():
            if principal is not None:
                await session.execute(SET_PRINCIPAL, principal_parameters(principal))
            yield session


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
