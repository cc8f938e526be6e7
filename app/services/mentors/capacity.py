"""Weekly slots and mentee load, evaluated in each mentor's own time zone.

"This week" is the ISO week (Monday 00:00 to the next Monday 00:00) in the mentor's zone
(`mentor_availability.timezone`, else the user's `timezone`), so a 09:00 Monday session in
London counts in the same week in winter and in summer. Live sessions (scheduled,
completed, no_show) count; cancelled ones free their slot.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import User

# SQL for a mentor's zone; used by every set-based capacity query. A stored name Postgres
# does not know (bad data) is UTC (`safe_timezone`, migration 0011), never a failed query.
MENTOR_ZONE_SQL = ("safe_timezone(coalesce(nullif(u.mentor_availability->>'timezone', ''), "
                   "u.timezone, 'UTC'))")
UTC_ZONE = ZoneInfo("UTC")


@functools.lru_cache(maxsize=1024)
def safe_zone(name: str | None) -> ZoneInfo:
    """The IANA zone `name`, or UTC when it is missing or unknown (bad stored data must
    degrade, not fail the reader with a 500). The same rule as SQL's `safe_timezone`.
    Cached: ZoneInfo keeps only a few zones strongly, and reading a zone file again per
    request showed in profiles (mentors use hundreds of zones)."""
    try:
        return ZoneInfo(name) if name else UTC_ZONE
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return UTC_ZONE


def mentor_zone(user: User) -> ZoneInfo:
    availability = user.mentor_availability if isinstance(user.mentor_availability, dict) else {}
    return safe_zone(availability.get("timezone") or user.timezone)


def iso_week_bounds(zone: ZoneInfo, at: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the ISO week containing `at`, in `zone`, as aware datetimes.
    The end is the next local Monday 00:00, so a DST change inside the week is respected."""
    local = at.astimezone(zone)
    monday = (local - timedelta(days=local.weekday())).date()
    start = datetime(monday.year, monday.month, monday.day, tzinfo=zone)
    next_monday = monday + timedelta(days=7)
    end = datetime(next_monday.year, next_monday.month, next_monday.day, tzinfo=zone)
    return start, end


def iso_week_label(zone: ZoneInfo, at: datetime) -> str:
    year, week, _ = at.astimezone(zone).isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(frozen=True, slots=True)
class MentorLoad:
    mentor_id: uuid.UUID
    weekly_slots_used: int
    weekly_slots_total: int
    mentees_active: int
    mentees_max: int

    @property
    def utilization(self) -> float:
        """Weekly slots used / weekly capacity (0 when the capacity is 0)."""
        return self.weekly_slots_used / self.weekly_slots_total if self.weekly_slots_total else 0.0


def loads_select(where: str, *, zone: str = MENTOR_ZONE_SQL, source: str = "users u") -> str:
    """SELECT of every mentor matching `where` (over `source`, which has `users u`) with
    their load for the ISO week containing `:at` in their zone (the SQL `zone`):
    mentor_id, weekly_slots_total, mentees_max, weekly_slots_used, mentees_active, zone.
    Shared by `mentor_loads` and the capacity checker so "weekly slots used" means the same
    thing everywhere."""
    return f"""
    select u.id as mentor_id,
           u.mentor_capacity_weekly as weekly_slots_total,
           u.mentor_max_mentees as mentees_max,
           (select count(*) from sessions s
             where s.mentor_id = u.id and s.status <> 'cancelled'
               and s.starts_at >= week.starts and s.starts_at < week.ends
           ) as weekly_slots_used,
           (select count(*) from assignments a
             where a.mentor_id = u.id and a.ended_at is null) as mentees_active,
           {zone} as zone
      from {source}
     -- The week's bounds once per mentor; OFFSET 0 keeps the sub-select from being inlined,
     -- so they reach the sessions scan as values: an index range on (mentor_id, starts_at)
     -- instead of filtering every session the mentor ever had.
     cross join lateral (
           select (date_trunc('week', :at at time zone {zone})
                   at time zone {zone}) as starts,
                  ((date_trunc('week', :at at time zone {zone}) + interval '7 days')
                   at time zone {zone}) as ends
           offset 0) as week
     where {where}"""


_LOAD_SQL = text(f"""
    select mentor_id, weekly_slots_total, mentees_max, weekly_slots_used, mentees_active
      from ({loads_select("u.id = any(:mentor_ids)")}) loads
""").bindparams(bindparam("mentor_ids", type_=ARRAY(UUID(as_uuid=True))))
# The same SQL for callers that fold the load into a larger read (the dashboard);
# binds :mentor_ids (uuid[]) and :at.
MENTOR_LOADS_SQL = _LOAD_SQL.text


async def mentor_loads(
    session: AsyncSession, *, mentor_ids: list[uuid.UUID], at: datetime
) -> dict[uuid.UUID, MentorLoad]:
    """Load of each mentor for the ISO week containing `at` (in each mentor's zone), in one
    query. Rows the caller may not see under RLS are simply absent."""
    rows = (await session.execute(_LOAD_SQL, {"mentor_ids": mentor_ids, "at": at})).mappings()
    return {row["mentor_id"]: MentorLoad(**row) for row in rows}
