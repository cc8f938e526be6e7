"""The slot engine: one definition of "this start time books", used by the slot routes and
by every booking rule (book, reschedule, transfer), so a slot offered is a slot that books.

Pure functions over loaded inputs (`MentorRules`, `Busy`); app/services/sessions/scheduling.py
loads them from the database. A start `t` with duration `d` is free when
1. (mentee routes only) `t >= now + minimum notice`;
2. [t, t+d) lies inside one merged availability window, evaluated as real instants in the
   mentor's zone (app/services/mentors/availability.py), so DST moves the UTC times;
3. it overlaps no time off;
4. the mentor's live sessions starting in t's ISO week (mentor's zone) are below the weekly
   capacity;
5. it overlaps no live session of the mentor widened by the mentor's buffer on both sides
   (a gap of at least `buffer` to each neighbour), and no live session of the mentee.
   Buffers are the mentor's (CONTRACT: "gap kept free before and after each live
   session" is a mentor profile setting): they keep that mentor's own calendar free, so
   the mentee's sessions with another mentor block by overlap only, and neither mentor's
   buffer applies between them (a mentee may go from one mentor's session to another's).
`violation()` names the first rule broken (the 409 a booking gets); `offered_slots()` lists
the starts on the grid for which `violation()` is None, computed as interval arithmetic
(windows minus everything blocked) rather than by testing each start.

The grid: starts whose wall-clock time in the mentor's zone is a whole multiple of
`step` minutes past local midnight (with 15 minutes, :00 :15 :30 :45 in every real zone,
whose offsets are multiples of 15 minutes). Bookings need not sit on the grid.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from app.core.errors import (
    CapacityExceeded,
    Conflict,
    DomainError,
    DoubleBooking,
    OutsideAvailability,
)
from app.schemas.sessions import Availability
from app.services.mentors.availability import window_instants
from app.services.mentors.capacity import iso_week_bounds, iso_week_label

Interval = tuple[datetime, datetime]
MAX_DURATION = timedelta(minutes=240)


class NoticeTooShort(Conflict):
    code, title = "notice_too_short", "Sooner than the mentor's minimum notice"


@dataclass(frozen=True, slots=True)
class MentorRules:
    mentor_id: uuid.UUID
    name: str
    zone: ZoneInfo
    availability: Availability | None
    capacity_weekly: int
    buffer: timedelta
    min_notice: timedelta


@dataclass(slots=True)
class Busy:
    """What blocks a pair in some period: the mentor's live sessions (their buffer applies),
    the mentee's live sessions with other mentors, the mentor's time off, and the number
    of the mentor's live sessions starting in each ISO week (keyed by the local Monday)."""

    mentor: list[Interval] = field(default_factory=list)
    mentee: list[Interval] = field(default_factory=list)
    time_off: list[Interval] = field(default_factory=list)
    week_counts: dict[date, int] = field(default_factory=dict)


def week_key(zone: ZoneInfo, at: datetime) -> date:
    local = at.astimezone(zone)
    return local.date() - timedelta(days=local.weekday())


def count_weeks(zone: ZoneInfo, sessions: Iterable[Interval]) -> dict[date, int]:
    counts: dict[date, int] = {}
    for start, _ in sessions:
        key = week_key(zone, start)
        counts[key] = counts.get(key, 0) + 1
    return counts


def _overlaps(intervals: Iterable[Interval], start: datetime, end: datetime,
              widen: timedelta = timedelta(0)) -> bool:
    return any(a - widen < end and start < b + widen for a, b in intervals)


def violation(rules: MentorRules, busy: Busy, *, starts_at: datetime, duration_minutes: int,
              now: datetime, enforce_notice: bool) -> DomainError | None:
    """The first booking rule that [starts_at, +duration) breaks, or None when it books.
    (The caller has already checked the instant itself: in the future, within the horizon.)"""
    ends_at = starts_at + timedelta(minutes=duration_minutes)
    if enforce_notice and starts_at < now + rules.min_notice:
        hours = int(rules.min_notice.total_seconds() // 3600)
        return NoticeTooShort(f"{rules.name} takes bookings at least {hours} hours ahead")
    windows = (window_instants(rules.availability, starts_at, ends_at)
               if rules.availability and rules.availability.windows else [])
    if not any(a <= starts_at and ends_at <= b for a, b in windows):
        if rules.availability is None:
            return OutsideAvailability("The mentor has no valid availability windows")
        return OutsideAvailability(
            "The session is not inside one of the mentor's availability windows "
            f"({rules.availability.timezone})")
    if _overlaps(busy.time_off, starts_at, ends_at):
        return OutsideAvailability("The mentor is on time off then")
    used = busy.week_counts.get(week_key(rules.zone, starts_at), 0)
    if used + 1 > rules.capacity_weekly:
        return CapacityExceeded(
            f"{iso_week_label(rules.zone, starts_at)} is full: "
            f"{used}/{rules.capacity_weekly} weekly slots used",
            weekly_slots_used=used, weekly_slots_total=rules.capacity_weekly)
    if _overlaps(busy.mentor, starts_at, ends_at):
        return DoubleBooking("The mentor already has a session at that time")
    if _overlaps(busy.mentee, starts_at, ends_at):
        return DoubleBooking("The mentee already has a session at that time")
    if _overlaps(busy.mentor, starts_at, ends_at, rules.buffer):
        minutes = int(rules.buffer.total_seconds() // 60)
        return DoubleBooking(f"Too close to another session: the mentor keeps {minutes} "
                             "minutes free before and after each session")
    return None


# --- the free intervals and the grid ------------------------------------------------------

def _merge(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _subtract(free: list[Interval], blocked: list[Interval]) -> list[Interval]:
    """`free` minus the merged `blocked` intervals (both sorted)."""
    result: list[Interval] = []
    j = 0
    for start, end in free:
        while j < len(blocked) and blocked[j][1] <= start:
            j += 1
        k, cursor = j, start
        while k < len(blocked) and blocked[k][0] < end:
            if blocked[k][0] > cursor:
                result.append((cursor, blocked[k][0]))
            cursor = max(cursor, blocked[k][1])
            k += 1
        if cursor < end:
            result.append((cursor, end))
    return result


def free_intervals(rules: MentorRules, busy: Busy, *, lo: datetime, hi: datetime
                   ) -> list[Interval]:
    """Availability windows around [lo, hi) minus time off, the mentor's sessions widened
    by the buffer, and the mentee's sessions (capacity and notice are per start, below)."""
    if rules.availability is None or not rules.availability.windows:
        return []
    windows = window_instants(rules.availability, lo, hi + MAX_DURATION)
    blocked = _merge([*busy.time_off, *busy.mentee,
                      *((a - rules.buffer, b + rules.buffer) for a, b in busy.mentor)])
    return _subtract(windows, blocked)


def _local_minutes(t: datetime, zone: ZoneInfo) -> tuple[int, int]:
    local = t.astimezone(zone)
    return local.hour * 60 + local.minute, local.second * 1_000_000 + local.microsecond


def ceil_to_grid(t: datetime, zone: ZoneInfo, step: int) -> datetime:
    """The first instant at or after `t` on the local grid (re-checked after a move, in
    case the move crossed an offset change)."""
    for _ in range(8):
        minutes, micro = _local_minutes(t, zone)
        remainder = minutes % step
        if remainder == 0 and micro == 0:
            return t
        t = t + timedelta(minutes=step - remainder) - timedelta(microseconds=micro)
    return t


def on_grid(t: datetime, zone: ZoneInfo, step: int) -> bool:
    minutes, micro = _local_minutes(t, zone)
    return minutes % step == 0 and micro == 0


def offered_slots(rules: MentorRules, busy: Busy, *, lo: datetime, hi: datetime,
                  duration_minutes: int, now: datetime, enforce_notice: bool, step: int,
                  latest: datetime | None = None) -> list[Interval]:
    """Every grid start in [lo, hi) (and after `now`, the notice, before `latest`) whose
    session books, with its end, in time order."""
    duration = timedelta(minutes=duration_minutes)
    earliest = max(lo, now + (rules.min_notice if enforce_notice else timedelta(0)))
    stop = min(hi, latest) if latest is not None else hi
    if rules.capacity_weekly <= 0:
        return []
    full_weeks = {key for key, used in busy.week_counts.items()
                  if used + 1 > rules.capacity_weekly}
    # The ends of the full weeks, sorted: a start inside one jumps to its end.
    full_week_ends = sorted(
        iso_week_bounds(rules.zone, datetime(k.year, k.month, k.day, 12, tzinfo=rules.zone))[1]
        for k in full_weeks)
    slots: list[Interval] = []
    stepping = timedelta(minutes=step)
    for start, end in free_intervals(rules, busy, lo=earliest, hi=stop):
        t = ceil_to_grid(max(start, earliest), rules.zone, step)
        if t <= now:  # strictly in the future
            t = ceil_to_grid(now + timedelta(microseconds=1), rules.zone, step)
        # Without an offset change inside the interval, the grid is plain UTC steps.
        steady = start.astimezone(rules.zone).utcoffset() == end.astimezone(
            rules.zone).utcoffset()
        while t < stop and t + duration <= end:
            if full_weeks and week_key(rules.zone, t) in full_weeks:
                week_end = full_week_ends[bisect.bisect_right(full_week_ends, t)]
                t = ceil_to_grid(week_end, rules.zone, step)
                continue
            slots.append((t, t + duration))
            t = t + stepping if steady else ceil_to_grid(t + stepping, rules.zone, step)
    return slots
