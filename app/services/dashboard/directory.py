"""The directors' view of every active mentor's load, a page at a time.

Three set-based queries per page, whatever its size: the page of mentors (sorted, keyset),
their weekly slots and mentees (`capacity.mentor_loads`), and their open and overdue items.
`load` = active mentees / `mentor_max_mentees` (1.0 when the maximum is 0).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    Float,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Unprocessable
from app.core.pagination import Keyset
from app.core.text import safe_text
from app.models import Assignment, User, WorkItem
from app.schemas.dashboard import MentorLoadPublic
from app.services.mentors.capacity import mentor_loads
from app.services.workqueue.queue import UNFINISHED, overdue_expr

INVALID_CURSOR = "The cursor is not one this service issued (or was made for another sort)"


def _load_ranked():
    """Every mentor with `load` (active mentees / max), from one aggregate over the active
    assignments (a hash aggregate on the partial index), for the load sorts."""
    active = (
        select(Assignment.mentor_id, func.count().label("n"))
        .where(Assignment.ended_at.is_(None))
        .group_by(Assignment.mentor_id)
        .subquery("active")
    )
    load = case(
        (User.mentor_max_mentees > 0,
         cast(func.coalesce(active.c.n, 0), Float) / User.mentor_max_mentees),
        else_=literal(1.0, Float),
    )
    return (
        select(User.id, User.name, User.email, User.timezone, User.mentor_specialties,
               load.label("load"))
        .outerjoin(active, active.c.mentor_id == User.id)
        .where(User.is_mentor, User.active)
        .subquery("ranked")
    )


# (sort, load, name, id): a cursor made for one sort is refused by another.
LOADS_CURSOR = Keyset("mentor_loads", safe_text(8), float, safe_text(10_000), uuid.UUID,
                      detail=INVALID_CURSOR)


def _decode(cursor: str | None, sort: str) -> tuple[float, str, uuid.UUID] | None:
    value = LOADS_CURSOR.decode(cursor)
    if value is None:
        return None
    if value[0] != sort:
        raise Unprocessable(INVALID_CURSOR, code="invalid_cursor")
    return value[1:]


async def list_mentor_loads(
    session: AsyncSession,
    *,
    sort: str = "name",
    limit: int = 50,
    cursor: str | None = None,
    now: datetime | None = None,
) -> tuple[list[MentorLoadPublic], str | None]:
    at = now or datetime.now(UTC)
    decoded = _decode(cursor, sort)
    if sort in ("name", "-name"):
        # Name order needs no load figures: page the mentors first, count for the page only.
        m = (select(User.id, User.name, User.email, User.timezone, User.mentor_specialties,
                   literal(None, Float).label("load"))
             .where(User.is_mentor, User.active).subquery("m"))
    else:
        m = _load_ranked()
    stmt = select(m)
    if decoded:
        last_load, last_name, last_id = decoded
        l_ = literal(last_load, Float)
        n_ = literal(last_name, String)
        i_ = literal(last_id, UUID(as_uuid=True))
        after = {
            "name": tuple_(m.c.name, m.c.id) > tuple_(n_, i_),
            "-name": tuple_(m.c.name, m.c.id) < tuple_(n_, i_),
            "load": tuple_(m.c.load, m.c.name, m.c.id) > tuple_(l_, n_, i_),
            "-load": or_(m.c.load < l_,
                         and_(m.c.load == l_, tuple_(m.c.name, m.c.id) > tuple_(n_, i_))),
        }[sort]
        stmt = stmt.where(after)
    order = {
        "name": (m.c.name, m.c.id),
        "-name": (m.c.name.desc(), m.c.id.desc()),
        "load": (m.c.load, m.c.name, m.c.id),
        "-load": (m.c.load.desc(), m.c.name, m.c.id),
    }[sort]
    rows = (await session.execute(stmt.order_by(*order).limit(limit + 1))).all()
    page, more = rows[:limit], len(rows) > limit
    ids = [row.id for row in page]
    if not ids:
        return [], None

    loads = await mentor_loads(session, mentor_ids=ids, at=at)
    overdue = overdue_expr(at)
    item_counts = {
        r.mentor_id: r for r in (await session.execute(
            select(Assignment.mentor_id,
                   func.count().label("open"),
                   func.count().filter(overdue).label("overdue"))
            .join(WorkItem, WorkItem.mentee_id == Assignment.mentee_id)
            .where(Assignment.mentor_id.in_(ids), Assignment.ended_at.is_(None),
                   WorkItem.status.in_(UNFINISHED))
            .group_by(Assignment.mentor_id)
        )).all()
    }
    items = []
    for row in page:
        cap, counts = loads[row.id], item_counts.get(row.id)
        items.append(MentorLoadPublic(
            mentor_id=row.id, name=row.name, email=row.email, timezone=row.timezone,
            mentor_specialties=list(row.mentor_specialties or []),
            mentees_active=cap.mentees_active, mentees_max=cap.mentees_max,
            mentees=f"{cap.mentees_active}/{cap.mentees_max}",
            load=(cap.mentees_active / cap.mentees_max) if cap.mentees_max else 1.0,
            weekly_slots_used=cap.weekly_slots_used, weekly_slots_total=cap.weekly_slots_total,
            weekly_slots=f"{cap.weekly_slots_used}/{cap.weekly_slots_total}",
            utilization=cap.utilization,
            open_items=counts.open if counts else 0,
            overdue_items=counts.overdue if counts else 0,
        ))
    next_cursor = None
    if more:
        last = page[-1]
        next_cursor = LOADS_CURSOR.encode(sort, last.load or 0.0, last.name, last.id)
    return items, next_cursor
