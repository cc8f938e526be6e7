"""Tokens are claims, the database is the truth: each user's current role and active flag.

A token is honoured only while its `sub` is an active user whose role in the database
equals the token's `role` (CONTRACT.md v2, "Who a token is"). Asking Postgres on every
request would add a round trip to each one, so every process keeps what it read for
`AUTH_CACHE_SECONDS` (default 60): a demotion or a deactivation takes effect within that
time on every replica, with no cross-process invalidation to get wrong. A change made by
this process (deactivate, role change) also forgets the entry at once (`forget`).

The lookup goes through `auth_identity(uuid)` (migration 0010), a SECURITY DEFINER function
that returns two columns of one row, so it needs no RLS identity. Concurrent misses for one
user share one query (single flight), unknown ids are cached too (a flood of forged subs
costs one query per id and TTL), and the table is bounded (oldest entries go first).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

LOOKUP = text("select role, active from auth_identity(:user_id)")


@dataclass(frozen=True, slots=True)
class Identity:
    role: str
    active: bool


class IdentityCache:
    """Per-process cache of `user id -> Identity | None` (None: no such user)."""

    def __init__(self, engine: AsyncEngine, *, ttl_seconds: float,
                 max_entries: int = 200_000) -> None:
        self.engine = engine
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[uuid.UUID, tuple[float, Identity | None]] = OrderedDict()
        self._inflight: dict[uuid.UUID, asyncio.Future[Identity | None]] = {}

    async def get(self, user_id: uuid.UUID) -> Identity | None:
        entry = self._entries.get(user_id)
        if entry is not None and time.monotonic() - entry[0] < self.ttl:
            return entry[1]
        pending = self._inflight.get(user_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Identity | None] = asyncio.get_running_loop().create_future()
        self._inflight[user_id] = future
        try:
            identity = await self._load(user_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(identity)
            self._store(user_id, identity)
            return identity
        finally:
            del self._inflight[user_id]

    async def honours(self, user_id: uuid.UUID, role: str) -> bool:
        """Whether a token naming `user_id` with `role` is honoured now."""
        identity = await self.get(user_id)
        return identity is not None and identity.active and identity.role == role

    def forget(self, *user_ids: uuid.UUID) -> None:
        """Drop entries this process knows to be stale (it just changed those users)."""
        for user_id in user_ids:
            self._entries.pop(user_id, None)

    def clear(self) -> None:
        self._entries.clear()

    async def _load(self, user_id: uuid.UUID) -> Identity | None:
        # Autocommit: one round trip (a plain connection would add BEGIN and ROLLBACK).
        async with self.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            row = (await connection.execute(LOOKUP, {"user_id": user_id})).first()
        return Identity(row.role, row.active) if row is not None else None

    def _store(self, user_id: uuid.UUID, identity: Identity | None) -> None:
        self._entries[user_id] = (time.monotonic(), identity)
        self._entries.move_to_end(user_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
