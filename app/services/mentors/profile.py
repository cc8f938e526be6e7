"""The mentor's own profile: capacity, specialties, availability, and this week's load."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.errors import NotFound
from app.core.sql import DriverQuery
from app.models import User
from app.schemas.sessions import (
    Availability,
    CapacityPublic,
    MentorProfilePublic,
    MentorProfileUpdate,
)
from app.services.mentors.availability import (
    parse_availability,
    parse_stored_availability,
)
from app.services.mentors.capacity import (
    MentorLoad,
    iso_week_label,
    loads_select,
    mentor_loads,
    mentor_zone,
    safe_zone,
)

# The profile and this week's load in one read (the load's SQL is `mentor_loads`'s).
_PROFILE = DriverQuery(text(f"""
    select u.id, u.name, u.email, u.timezone, u.mentor_capacity_weekly,
           u.mentor_max_mentees, u.mentor_specialties,
           u.mentor_availability::text as availability, u.languages,
           u.mentor_buffer_minutes, u.mentor_min_notice_hours,
           load.weekly_slots_used, load.weekly_slots_total, load.mentees_active,
           load.mentees_max, load.zone
      from ({loads_select("u.id = :mentor_id")}) load
      join users u on u.id = load.mentor_id
"""))


def weekly_slots_label(used: int, total: int) -> str:
    return f"{used}/{total} weekly slots"


async def mentor_capacity(session: AsyncSession, *, mentor: User,
                          now: datetime) -> CapacityPublic:
    """This ISO week's load (in the mentor's zone), e.g. "7/10 weekly slots"."""
    load = (await mentor_loads(session, mentor_ids=[mentor.id], at=now))[mentor.id]
    return _capacity(load, iso_week_label(mentor_zone(mentor), now))


async def _profile(session: AsyncSession, mentor: User, now: datetime) -> MentorProfilePublic:
    availability = parse_availability(mentor.mentor_availability)
    return MentorProfilePublic(
        id=mentor.id,
        name=mentor.name,
        email=mentor.email,
        timezone=mentor.timezone,
        mentor_capacity_weekly=mentor.mentor_capacity_weekly,
        mentor_max_mentees=mentor.mentor_max_mentees,
        mentor_specialties=list(mentor.mentor_specialties or []),
        mentor_availability=availability or dict(mentor.mentor_availability or {}),
        languages=list(mentor.languages or []),
        mentor_buffer_minutes=mentor.mentor_buffer_minutes,
        mentor_min_notice_hours=mentor.mentor_min_notice_hours,
        capacity=await mentor_capacity(session, mentor=mentor, now=now),
    )


async def _me(session: AsyncSession, principal: Principal, *, lock: bool = False) -> User:
    query = select(User).where(User.id == principal.user_id)
    if lock:
        query = query.with_for_update(key_share=True)  # same lock as booking: one at a time
    mentor = await session.scalar(query.execution_options(populate_existing=True))
    if mentor is None:
        raise NotFound("Your mentor profile does not exist")
    return mentor


def _stored_availability(stored: str | None) -> Availability | dict:
    """The stored availability (jsonb text) as the profile shows it: parsed (and cached,
    `parse_stored_availability`), or as stored when it does not parse."""
    parsed = parse_stored_availability(stored)
    return parsed if parsed is not None else dict(json.loads(stored) if stored else {})


async def get_profile(session: AsyncSession, *, principal: Principal,
                      now: datetime | None = None) -> MentorProfilePublic:
    now = now or datetime.now(UTC)
    row = await _PROFILE.fetchrow(session, {"mentor_id": principal.user_id, "at": now})
    if row is None:
        raise NotFound("Your mentor profile does not exist")
    load = MentorLoad(row["id"], row["weekly_slots_used"], row["weekly_slots_total"],
                      row["mentees_active"], row["mentees_max"])
    return MentorProfilePublic(
        id=row["id"],
        name=row["name"],
        email=row["email"],
        timezone=row["timezone"],
        mentor_capacity_weekly=row["mentor_capacity_weekly"],
        mentor_max_mentees=row["mentor_max_mentees"],
        mentor_specialties=row["mentor_specialties"] or [],
        mentor_availability=_stored_availability(row["availability"]),
        languages=row["languages"] or [],
        mentor_buffer_minutes=row["mentor_buffer_minutes"],
        mentor_min_notice_hours=row["mentor_min_notice_hours"],
        capacity=_capacity(load, iso_week_label(safe_zone(row["zone"]), now)),
    )


def _capacity(load: MentorLoad, iso_week: str) -> CapacityPublic:
    return CapacityPublic(
        iso_week=iso_week,
        weekly_slots_used=load.weekly_slots_used,
        weekly_slots_total=load.weekly_slots_total,
        weekly_slots=weekly_slots_label(load.weekly_slots_used, load.weekly_slots_total),
        mentees_active=load.mentees_active,
        mentees_max=load.mentees_max,
        utilization=round(load.utilization, 4),
    )


async def update_profile(session: AsyncSession, *, principal: Principal,
                         changes: MentorProfileUpdate,
                         now: datetime | None = None) -> MentorProfilePublic:
    """Change the fields sent. Lowering capacity below what is already booked is allowed
    (existing sessions stay); new bookings are refused until there is room."""
    mentor = await _me(session, principal, lock=True)
    for column, value in changes.changed().items():
        setattr(mentor, column, value)
    await session.flush()
    await session.refresh(mentor)
    return await _profile(session, mentor, now or datetime.now(UTC))
