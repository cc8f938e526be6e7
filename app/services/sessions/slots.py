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
import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from app.core.errors import (
    CapacityExceeded,
    Conflict,
    DomainError,
    DoubleBooking,
    OutsideAvailability,
)
from app.schemas.sessions import Availability, minutes_of
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
#
# Computed on integers: instants as microseconds since the Unix epoch (UTC), so a request
# converts each input once and each slot costs a few integer operations, not datetime
# objects and zone conversions. Zone offsets are read once per free interval.

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.date().toordinal()
_US = timedelta(microseconds=1)
_MINUTE = 60_000_000
_DAY = 86_400_000_000
IntInterval = tuple[int, int]


def to_us(t: datetime) -> int:
    """Microseconds since the epoch (exact, unlike `timestamp()`)."""
    return (t - _EPOCH) // _US


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _merge(intervals: list) -> list:
    merged: list = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _subtract(free: list, blocked: list) -> list:
    """`free` minus the merged `blocked` intervals (both sorted)."""
    result: list = []
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


@functools.lru_cache(maxsize=1 << 16)  # zones x days of the horizon: a few MB at most
def _midnight_offset(zone: ZoneInfo, day: int) -> int:
    """The zone's UTC offset (microseconds) at local midnight of `day` (days since
    1970-01-01), fold=0."""
    at = date.fromordinal(day + _EPOCH_ORDINAL)
    return datetime(at.year, at.month, at.day, tzinfo=zone).utcoffset() // _US


class _Offsets:
    """The zone's UTC offset (microseconds) at each local midnight (fold=0), cached: a day
    whose midnight and next midnight share an offset has no change inside (zones change at
    most once a day), so its wall times convert with one subtraction."""

    __slots__ = ("zone", "days", "uniform")

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone, self.days = zone, {}
        self.uniform: int | None = None  # the one offset of every day asked for, if known

    def midnight(self, day: int) -> int:
        offset = self.days.get(day)
        if offset is None:
            offset = self.days[day] = _midnight_offset(self.zone, day)
        return offset

    def to_us(self, day: int, minutes: int) -> int:
        """Local `day` (days since 1970-01-01) + `minutes` (0..1440) as a UTC instant, as
        availability.window_instants computes it (a skipped wall time takes the offset in
        force before the change)."""
        day, minutes = day + minutes // 1440, minutes % 1440
        offset = self.midnight(day)
        if minutes and offset != self.midnight(day + 1):  # a change that day: ask the zone
            at = date.fromordinal(day + _EPOCH_ORDINAL)
            local = datetime(at.year, at.month, at.day, minutes // 60, minutes % 60,
                             tzinfo=self.zone)
            return to_us(local)
        return (day * 1440 + minutes) * _MINUTE - offset


def _windows_us(availability: Availability, offsets: _Offsets, lo: datetime, hi: datetime
                ) -> list[IntInterval]:
    """availability.window_instants on integers: the merged windows on the local dates
    around [lo, hi)."""
    zone = offsets.zone
    by_weekday: list[list[tuple[int, int]]] = [[] for _ in range(7)]
    for window in availability.windows:
        by_weekday[window.weekday].append((minutes_of(window.start), minutes_of(window.end)))
    first = lo.astimezone(zone).date().toordinal() - _EPOCH_ORDINAL - 1
    last = hi.astimezone(zone).date().toordinal() - _EPOCH_ORDINAL + 1
    days = range(first, last + 1)
    if offsets.uniform is not None:  # one offset all along: plain integer arithmetic
        base = -offsets.uniform
        intervals = [((day * 1440 + start) * _MINUTE + base, (day * 1440 + end) * _MINUTE + base)
                     for day in days for start, end in by_weekday[(day + 3) % 7]]
    else:
        intervals = [(offsets.to_us(day, start), offsets.to_us(day, end))
                     for day in days for start, end in by_weekday[(day + 3) % 7]]
    return _merge(intervals)  # by_weekday: 1970-01-01 was a Thursday


def _free_us(rules: MentorRules, busy: Busy, lo: datetime, hi: datetime,
             offsets: _Offsets | None = None) -> list[IntInterval]:
    if rules.availability is None or not rules.availability.windows:
        return []
    windows = _windows_us(rules.availability, offsets or _Offsets(rules.availability.zone()),
                          lo, hi + MAX_DURATION)
    buffer = rules.buffer // _US
    blocked = _merge([*((to_us(a), to_us(b)) for a, b in busy.time_off),
                      *((to_us(a), to_us(b)) for a, b in busy.mentee),
                      *((to_us(a) - buffer, to_us(b) + buffer) for a, b in busy.mentor)])
    return _subtract(windows, blocked)


def free_intervals(rules: MentorRules, busy: Busy, *, lo: datetime, hi: datetime
                   ) -> list[Interval]:
    """Availability windows around [lo, hi) minus time off, the mentor's sessions widened
    by the buffer, and the mentee's sessions (capacity and notice are per start, below)."""
    return [(from_us(a), from_us(b)) for a, b in _free_us(rules, busy, lo, hi)]


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


def _offset_us(zone: ZoneInfo, us: int) -> int:
    return from_us(us).astimezone(zone).utcoffset() // _US


def offered_starts(rules: MentorRules, busy: Busy, *, lo: datetime, hi: datetime,
                   duration_minutes: int, now: datetime, enforce_notice: bool, step: int,
                   latest: datetime | None = None) -> list[int]:
    """Every grid start in [lo, hi) (and after `now`, the notice, before `latest`) whose
    session books, in time order, as microseconds since the epoch (`from_us`)."""
    if rules.capacity_weekly <= 0:
        return []
    zone = rules.zone
    earliest_at = max(lo, now + (rules.min_notice if enforce_notice else timedelta(0)))
    stop_at = min(hi, latest) if latest is not None else hi
    duration = duration_minutes * _MINUTE
    stop = to_us(stop_at)
    # Strictly after now: the first grid start at or after max(earliest, now + 1 us).
    floor = max(to_us(earliest_at), to_us(now) + 1)
    full_weeks = {key for key, used in busy.week_counts.items()
                  if used + 1 > rules.capacity_weekly}
    # The same weeks as local epoch days of their Mondays (week_key on integers).
    full_days = {key.toordinal() - _EPOCH_ORDINAL for key in full_weeks}
    period = step * _MINUTE
    # One zone offset over every local day the windows can touch (the usual case: no DST
    # change in the range) spares a conversion per free interval below.
    offsets = _Offsets(zone)
    days = range(earliest_at.astimezone(zone).date().toordinal() - _EPOCH_ORDINAL - 1,
                 (stop_at + MAX_DURATION).astimezone(zone).date().toordinal()
                 - _EPOCH_ORDINAL + 3)
    uniform = len({offsets.midnight(day) for day in days}) == 1
    if uniform:
        offsets.uniform = offsets.midnight(days[0])
    window_offsets = (offsets if rules.availability is not None
                      and rules.availability.timezone == str(zone) else None)
    starts: list[int] = []
    for start, end in _free_us(rules, busy, earliest_at, stop_at, window_offsets):
        first, last = max(start, floor), min(stop - 1, end - duration)  # t < stop, t+d <= end
        if first > last:
            continue
        offset = offsets.uniform if uniform else _offset_us(zone, start)
        if not uniform and offset != _offset_us(zone, end):
            starts.extend(_starts_across_offset_change(
                rules, full_weeks, start=start, end=end, first=first, stop_at=stop_at,
                duration=duration, step=step))
            continue
        # One offset all along: the grid (local minutes a multiple of `step` past local
        # midnight; `step` divides a day) is every `period` from the first local multiple.
        grid = range(first + (-(first + offset)) % period, last + 1, period)
        if not full_days:
            starts.extend(grid)
            continue
        for t in grid:
            local_day = (t + offset) // _DAY
            if local_day - (local_day + 3) % 7 not in full_days:  # 1970-01-01: a Thursday
                starts.append(t)
    return starts


def _starts_across_offset_change(rules: MentorRules, full_weeks: set[date], *, start: int,
                                 end: int, first: int, stop_at: datetime, duration: int,
                                 step: int) -> list[int]:
    """A free interval with a DST change inside: walk the local grid step by step with the
    zone (rare, so plain datetimes)."""
    zone = rules.zone
    full_week_ends = sorted(
        iso_week_bounds(zone, datetime(k.year, k.month, k.day, 12, tzinfo=zone))[1]
        for k in full_weeks)
    ends_at = from_us(end)
    length = timedelta(microseconds=duration)
    t = ceil_to_grid(from_us(first), zone, step)
    starts: list[int] = []
    while t < stop_at and t + length <= ends_at:
        if full_weeks and week_key(zone, t) in full_weeks:
            # A start inside a full week jumps to that week's end.
            t = ceil_to_grid(full_week_ends[bisect.bisect_right(full_week_ends, t)], zone, step)
            continue
        starts.append(to_us(t))
        t = ceil_to_grid(t + timedelta(minutes=step), zone, step)
    return starts


def offered_slots(rules: MentorRules, busy: Busy, *, lo: datetime, hi: datetime,
                  duration_minutes: int, now: datetime, enforce_notice: bool, step: int,
                  latest: datetime | None = None) -> list[Interval]:
    """`offered_starts` as (start, end) datetimes in UTC."""
    duration = timedelta(minutes=duration_minutes)
    return [(at, at + duration) for at in map(from_us, offered_starts(
        rules, busy, lo=lo, hi=hi, duration_minutes=duration_minutes, now=now,
        enforce_notice=enforce_notice, step=step, latest=latest))]
