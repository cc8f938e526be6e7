"""Loading the slot engine's inputs, and the slot routes' service.

Both people's data come through SECURITY DEFINER functions (migration 0014) that answer
only for an active pair the caller belongs to (staff and the workers: any pair), because
under RLS a mentee sees neither the mentor's other sessions nor their time off, and a
mentor does not see their mentee's sessions with someone else. They return start and end
only. `scheduling_mentor_lock` also takes the mentor's row lock: every booking of one
mentor, by the mentor, a mentee or a director, queues there, so what the engine reads next
(a new statement, a new snapshot) includes everything committed by the previous holder.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.auth import Principal
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.outbox import active_mentor_id
from app.services.mentors.availability import parse_availability
from app.services.sessions.slots import (
    Busy,
    Interval,
    MentorRules,
    count_weeks,
    load_period,
    offered_slots,
)

MAX_RANGE = timedelta(days=31)

_RULES = text("select * from scheduling_mentor(:mentor, :mentee)")
_RULES_LOCK = text("select * from scheduling_mentor_lock(:mentor, :mentee)")
_BUSY = text("select kind, starts_at, ends_at "
             "from scheduling_busy(:mentor, :mentee, :lo, :hi, :exclude)")


class NoMentor(Conflict):
    code, title = "no_mentor", "You have no mentor"


def not_assigned() -> NotFound:
    return NotFound("The mentee is not assigned to you", code="not_assigned")


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")  # bad data must not make a mentor unbookable with a 500


async def load_rules(session: AsyncSession, *, mentor_id: uuid.UUID, mentee_id: uuid.UUID,
                     lock: bool = False) -> MentorRules | None:
    """The mentor's scheduling rules, or None when the caller may not schedule this pair
    (not an active pair of theirs). `lock=True` also takes the mentor's row lock."""
    params = {"mentor": mentor_id, "mentee": mentee_id}
    if lock:
        # The lock only: what it guards (the assignment, the rules) is read by the next
        # statement, whose snapshot includes what the previous holder committed (e.g. a
        # reassignment that ended this pair while the booking waited).
        if (await session.execute(_RULES_LOCK, params)).first() is None:
            return None
    row = (await session.execute(_RULES, params)).one_or_none()
    if row is None:
        return None
    return MentorRules(
        mentor_id=mentor_id, name=row.name, zone=_zone(row.zone),
        availability=parse_availability(row.availability),
        capacity_weekly=row.capacity_weekly, buffer=timedelta(minutes=row.buffer_minutes),
        min_notice=timedelta(hours=row.min_notice_hours),
    )


async def load_busy(session: AsyncSession, *, rules: MentorRules, mentee_id: uuid.UUID,
                    lo: datetime, hi: datetime, exclude: uuid.UUID | None = None) -> Busy:
    """Everything that blocks starts in [lo, hi) for this pair (`exclude`: the session
    being rescheduled, which must not block itself nor count twice)."""
    period_lo, period_hi = load_period(rules, lo, hi)
    rows = (await session.execute(_BUSY, {"mentor": rules.mentor_id, "mentee": mentee_id,
                                          "lo": period_lo, "hi": period_hi,
                                          "exclude": exclude})).all()
    busy = Busy()
    for kind, starts_at, ends_at in rows:
        getattr(busy, kind).append((starts_at, ends_at))
    busy.week_counts = count_weeks(rules.zone, busy.mentor)
    return busy


async def mentee_pair(session: AsyncSession, *, principal: Principal) -> uuid.UUID:
    """The calling mentee's current mentor (409 `no_mentor` without one)."""
    mentor_id = await active_mentor_id(session, principal.user_id)
    if mentor_id is None:
        raise NoMentor("You have no mentor to book with")
    return mentor_id


def check_range(starts_from: datetime, starts_to: datetime) -> None:
    if starts_to <= starts_from:
        raise Unprocessable("`to` must be after `from`", errors=[
            {"loc": ["query", "to"], "msg": "must be after from", "type": "value_error"}])
    if starts_to - starts_from > MAX_RANGE:
        raise Unprocessable("`to - from` must be at most 31 days", errors=[
            {"loc": ["query", "to"], "msg": "at most 31 days after from",
             "type": "value_error"}])


async def free_slots(
    session: AsyncSession,
    *,
    principal: Principal,
    settings: Settings,
    starts_from: datetime | None,
    starts_to: datetime | None,
    duration_minutes: int,
    mentee_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> tuple[MentorRules, list[Interval]]:
    """Bookable starts in [from, to) for the calling mentee with their mentor (minimum
    notice applies), or for the calling mentor with `mentee_id` (it does not)."""
    now = now or datetime.now(UTC)
    starts_from = starts_from or now
    try:
        starts_to = starts_to or starts_from + timedelta(days=7)
    except OverflowError as exc:
        raise Unprocessable("`from` is out of range", errors=[
            {"loc": ["query", "from"], "msg": "out of range", "type": "value_error"}]) from exc
    check_range(starts_from, starts_to)
    if principal.role == "mentee":
        mentee_id = principal.user_id
        mentor_id = await mentee_pair(session, principal=principal)
    else:
        assert mentee_id is not None
        mentor_id = principal.user_id
    rules = await load_rules(session, mentor_id=mentor_id, mentee_id=mentee_id)
    if rules is None:
        if principal.role == "mentee":
            raise NoMentor("You have no mentor to book with")
        raise not_assigned()
    # Only [now, now + horizon] can book: clamp first (so far-off dates cost nothing and
    # cannot overflow), then compute.
    latest = now + timedelta(days=settings.session_booking_horizon_days)
    lo, hi = max(starts_from, now), min(starts_to, latest + timedelta(microseconds=1))
    if lo >= hi:
        return rules, []
    busy = await load_busy(session, rules=rules, mentee_id=mentee_id, lo=lo, hi=hi)
    slots = offered_slots(
        rules, busy, lo=lo, hi=hi, duration_minutes=duration_minutes, now=now,
        enforce_notice=principal.role == "mentee", step=settings.slot_step_minutes)
    return rules, slots
