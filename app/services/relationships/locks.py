"""Locking users rows for a relationship change, in the one order every path follows.

Users rows first (all of them in one statement, in id order, `FOR NO KEY UPDATE`, which
does not block the foreign-key checks of session inserts), then assignment rows, then
session rows (app/services/programme/__init__.py writes the whole order down).

Which users a change needs is sometimes known only by reading assignments (the mentee's
current mentor, a mentor's mentees), which may change between that read and the lock.
`lock_stable` reads, locks inside a savepoint, and reads again: if the set changed, it rolls
the savepoint back (which releases the row locks taken inside) and tries again, so rows are
never locked outside id order.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict
from app.models import User

# Each retry means another transaction changed these relationships and committed, so retries
# make progress; the bound only stops a pathological storm (409 `concurrent_change`).
ATTEMPTS = 50


async def lock_users(session: AsyncSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, User]:
    """Lock these users' rows (id order, one statement); the rows found, by id."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await session.scalars(
        select(User).where(User.id.in_(wanted)).order_by(User.id)
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE
        .execution_options(populate_existing=True)
    )
    return {user.id: user for user in rows}


async def lock_stable(
    session: AsyncSession, needed: Callable[[], Awaitable[set[uuid.UUID]]],
) -> dict[uuid.UUID, User]:
    """Lock the users `needed()` names, such that `needed()` still names exactly them once
    they are locked (the caller's changes all lock those rows, so it then stays true)."""
    for _ in range(ATTEMPTS):
        ids = await needed()
        savepoint = await session.begin_nested()
        users = await lock_users(session, ids)
        if await needed() == ids:
            await savepoint.commit()  # RELEASE SAVEPOINT keeps the locks
            return users
        await savepoint.rollback()  # releases the row locks taken inside
    raise Conflict("The relationships involved kept changing; retry", code="concurrent_change")
