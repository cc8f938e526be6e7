"""Loading the slot engine's inputs, and the slot routes' service.

Both people's data come through SECURITY DEFINER functions (migration 0014) that answer
only for an active pair the caller belongs to (staff and the workers: any pair), because
under RLS a mentee sees neither the mentor's other sessions nor their time off, and a
mentor does not see their mentee's sessions with someone else. They return start and end
only. `scheduling_mentor_lock` also takes the mentor's row lock: every booking of one
mentor, by the mentor, a mentee or a director, queues there, so what the engine reads next
(a new statement, a new snapshot) includes everything committed by the previous holder.
The engine's inputs come from `scheduling_inputs` (migration 0022): 0014's rules and busy
times in one PL/pgSQL call whose plans are cached per connection; a booking reads the same
row with the lock taken first (`scheduling_inputs_locked`, migration 0028).
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from asyncpg import Record
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.auth import Principal
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.outbox import active_mentor_id
from app.core.sql import DriverQuery
from app.services.mentors.availability import parse_stored_availability
from app.services.sessions.slots import (
    Busy,
    Interval,
    MentorRules,
    count_weeks,
    offered_starts,
)

MAX_RANGE = timedelta(days=31)

_RULES = text("select r.zone, r.availability::text as availability, r.capacity_weekly,"
              " r.buffer_minutes, r.min_notice_hours, r.name"
              " from scheduling_mentor(:mentor, :mentee) r")
_RULES_LOCK = text("select 1 from scheduling_mentor_lock(:mentor, :mentee)")
# The rules and the busy times in one round trip and one row, the busy times as arrays:
# `scheduling_inputs` (migration 0022) for the slot routes, `scheduling_inputs_locked`
# (0028: the mentor's row lock first, then the same row read under a snapshot taken after
# it) for a booking. For a mentee, their current mentor is found in the same statement.
_INPUT_COLUMNS = """
    i.zone, i.availability::text as availability, i.capacity_weekly, i.buffer_minutes,
    i.min_notice_hours, i.name,
    i.mentor_starts, i.mentor_ends, i.mentee_starts, i.mentee_ends, i.off_starts, i.off_ends"""


def _inputs_statement(function: str, *, current_mentor: bool) -> DriverQuery:
    if current_mentor:
        return DriverQuery(text(f"""
select a.mentor_id, {_INPUT_COLUMNS}
  from assignments a
 cross join lateral {function}(a.mentor_id, a.mentee_id, :lo, :hi, :exclude) i
 where a.mentee_id = :mentee and a.ended_at is null"""))
    return DriverQuery(text(f"""
select cast(:mentor as uuid) as mentor_id, {_INPUT_COLUMNS}
  from {function}(:mentor, :mentee, :lo, :hi, :exclude) i"""))


# (lock, current mentor) -> statement, run on the driver connection (app/core/sql.py: no
# ORM, no result wrapping; records read by key) like the other hot reads
_INPUTS = {(lock, current): _inputs_statement(
               "scheduling_inputs_locked" if lock else "scheduling_inputs",
               current_mentor=current)
           for lock in (False, True) for current in (False, True)}

# How far around [lo, hi) the busy times are read when the rules (zone, buffer) are not
# known yet: the whole ISO weeks of lo and hi in any zone (7 days plus an offset of at most
# 14 h) and what a 240-minute session or a 120-minute buffer can reach.
_MARGIN = timedelta(days=8)
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


def _widened(lo: datetime, hi: datetime) -> dict[str, datetime]:
    """[lo, hi) widened by `_MARGIN`, within what a datetime holds: a mentee's booking
    reaches the lock before its time is checked (409 `no_mentor` comes first), so an
    instant in year 1 or 9999 must get its 422 after the lock, not an OverflowError."""
    return {"lo": lo - _MARGIN if lo - _EARLIEST > _MARGIN else _EARLIEST,
            "hi": hi + _MARGIN if _LATEST - hi > _MARGIN else _LATEST}


class NoMentor(Conflict):
    code, title = "no_mentor", "You have no mentor"


def not_assigned() -> NotFound:
    return NotFound("The mentee is not assigned to you", code="not_assigned")


@functools.lru_cache(maxsize=1024)  # ZoneInfo's own strong cache holds only 8 zones
def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")  # bad data must not make a mentor unbookable with a 500


def _rules(mentor_id: uuid.UUID, row) -> MentorRules:
    """From a row of `scheduling_mentor` or of the inputs (read by key; the availability
    as its JSON text)."""
    return MentorRules(
        mentor_id=mentor_id, name=row["name"], zone=_zone(row["zone"]),
        availability=parse_stored_availability(row["availability"]),
        capacity_weekly=row["capacity_weekly"],
        buffer=timedelta(minutes=row["buffer_minutes"]),
        min_notice=timedelta(hours=row["min_notice_hours"]),
    )


def _pairs(starts, ends) -> list[Interval]:
    return list(zip(starts, ends, strict=True)) if starts else []  # null: none


def _inputs(row: Record | None) -> tuple[MentorRules, Busy] | None:
    if row is None:
        return None
    rules = _rules(row["mentor_id"], row)
    mentor = _pairs(row["mentor_starts"], row["mentor_ends"])
    busy = Busy(mentor=mentor, mentee=_pairs(row["mentee_starts"], row["mentee_ends"]),
                time_off=_pairs(row["off_starts"], row["off_ends"]),
                week_counts=count_weeks(rules.zone, mentor))
    return rules, busy


async def load_rules(session: AsyncSession, *, mentor_id: uuid.UUID,
                     mentee_id: uuid.UUID) -> MentorRules | None:
    """The mentor's scheduling rules, or None when the caller may not schedule this pair."""
    row = (await session.execute(_RULES, {"mentor": mentor_id, "mentee": mentee_id})
           ).one_or_none()
    return None if row is None else _rules(mentor_id, row._mapping)


async def lock_mentor(session: AsyncSession, *, mentor_id: uuid.UUID,
                      mentee_id: uuid.UUID) -> bool:
    """Take the mentor's row lock (False when the caller may not schedule this pair). The
    lock only: what it guards (the assignment, the rules, the busy times) is read by the
    next statement, whose snapshot includes what the previous holder committed (e.g. a
    reassignment that ended this pair while the booking waited)."""
    params = {"mentor": mentor_id, "mentee": mentee_id}
    return (await session.execute(_RULES_LOCK, params)).first() is not None


async def _read_inputs(session: AsyncSession, *, lock: bool, mentor_id: uuid.UUID | None,
                       mentee_id: uuid.UUID, lo: datetime, hi: datetime,
                       exclude: uuid.UUID | None) -> tuple[MentorRules, Busy] | None:
    params = {"mentee": mentee_id, **_widened(lo, hi), "exclude": exclude}
    if mentor_id is not None:
        params["mentor"] = mentor_id
    if session.new or session.dirty or session.deleted:
        await session.flush()  # what `session.execute` would autoflush (e.g. a handover's)
    return _inputs(await _INPUTS[lock, mentor_id is None].fetchrow(session, params))


async def load_inputs(session: AsyncSession, *, mentor_id: uuid.UUID | None,
                      mentee_id: uuid.UUID, lo: datetime, hi: datetime,
                      exclude: uuid.UUID | None = None) -> tuple[MentorRules, Busy] | None:
    """The mentor's rules and everything that blocks starts in [lo, hi) for this pair, in
    one statement (`mentor_id=None`: the mentee's current mentor). None when the caller may
    not schedule this pair (not an active pair of theirs). `exclude`: the session being
    rescheduled, which must not block itself nor count twice."""
    return await _read_inputs(session, lock=False, mentor_id=mentor_id, mentee_id=mentee_id,
                              lo=lo, hi=hi, exclude=exclude)


async def lock_inputs(session: AsyncSession, *, mentor_id: uuid.UUID | None,
                      mentee_id: uuid.UUID, lo: datetime, hi: datetime,
                      exclude: uuid.UUID | None = None) -> tuple[MentorRules, Busy] | None:
    """`lock_mentor` and then `load_inputs`, in one statement: the mentor's row lock, then
    the rules and busy times as committed when the lock was granted (`mentor_id=None`: the
    mentee's current mentor, `rules.mentor_id`). None (and no lock) when the caller may not
    schedule this pair: not an active pair of theirs, or no longer once the lock was had."""
    return await _read_inputs(session, lock=True, mentor_id=mentor_id, mentee_id=mentee_id,
                              lo=lo, hi=hi, exclude=exclude)


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
) -> tuple[MentorRules, list[int]]:
    """Bookable starts in [from, to) for the calling mentee with their mentor (minimum
    notice applies), or for the calling mentor with `mentee_id` (it does not), as
    microseconds since the epoch (`slots.from_us`; the route formats them directly)."""
    now = now or datetime.now(UTC)
    starts_from = starts_from or now
    try:
        starts_to = starts_to or starts_from + timedelta(days=7)
    except OverflowError as exc:
        raise Unprocessable("`from` is out of range", errors=[
            {"loc": ["query", "from"], "msg": "out of range", "type": "value_error"}]) from exc
    check_range(starts_from, starts_to)
    mentor_id = None if principal.role == "mentee" else principal.user_id
    if principal.role == "mentee":
        mentee_id = principal.user_id
    assert mentee_id is not None
    # Only [now, now + horizon] can book: clamp first (so far-off dates cost nothing and
    # cannot overflow), then compute.
    latest = now + timedelta(days=settings.session_booking_horizon_days)
    lo, hi = max(starts_from, now), min(starts_to, latest + timedelta(microseconds=1))
    # An empty range still answers with the rules (the response names the zone); its busy
    # times are read around now (never around a far date, where the margin would overflow).
    read_lo, read_hi = (lo, hi) if lo < hi else (now, now)
    loaded = await load_inputs(session, mentor_id=mentor_id, mentee_id=mentee_id,
                               lo=read_lo, hi=read_hi)
    if loaded is None:
        if principal.role == "mentee":
            raise NoMentor("You have no mentor to book with")
        raise not_assigned()
    rules, busy = loaded
    if lo >= hi:
        return rules, []
    starts = offered_starts(
        rules, busy, lo=lo, hi=hi, duration_minutes=duration_minutes, now=now,
        enforce_notice=principal.role == "mentee", step=settings.slot_step_minutes)
    return rules, starts
