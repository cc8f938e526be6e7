"""The slot engine on its own, property-based: for random mentors (zones with and without
DST, odd offsets), windows, sessions, time off, buffers, notice and capacity, over ranges
that straddle DST changes,
- every offered slot passes `violation()` (the booking rule) and sits on the local grid;
- every start that passes `violation()` lies in a free interval, in a week with room,
  after the notice; and if it is on the grid inside the range, it is offered.
The database-backed counterpart (real routes, real bookings) is test_slots_property.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.schemas.sessions import Availability
from app.services.sessions.slots import (
    Busy,
    MentorRules,
    ceil_to_grid,
    count_weeks,
    free_intervals,
    offered_slots,
    on_grid,
    violation,
    week_key,
)

ZONES = ["UTC", "Europe/London", "America/New_York", "Australia/Sydney", "Asia/Kolkata",
         "America/St_Johns", "Australia/Lord_Howe", "Pacific/Chatham", "Asia/Kathmandu",
         "Europe/Berlin", "America/Santiago"]
# Ranges start around DST changes of 2027 (both hemispheres) and plain weeks.
ANCHORS = [datetime(2027, 3, 12, tzinfo=UTC), datetime(2027, 3, 26, tzinfo=UTC),
           datetime(2027, 4, 2, tzinfo=UTC), datetime(2027, 10, 1, tzinfo=UTC),
           datetime(2027, 10, 29, tzinfo=UTC), datetime(2027, 11, 5, tzinfo=UTC),
           datetime(2027, 6, 14, tzinfo=UTC)]
STEP = 15


@st.composite
def windows(draw):
    result = []
    for _ in range(draw(st.integers(1, 8))):
        start = draw(st.integers(0, 23 * 4)) * 15
        end = draw(st.integers(start // 15 + 1, 96)) * 15
        result.append({"weekday": draw(st.integers(0, 6)),
                       "start": f"{start // 60:02d}:{start % 60:02d}",
                       "end": f"{end // 60:02d}:{end % 60:02d}"})
    return result


@st.composite
def scenarios(draw):
    zone = draw(st.sampled_from(ZONES))
    anchor = draw(st.sampled_from(ANCHORS))
    lo = anchor + timedelta(minutes=draw(st.integers(0, 7 * 24 * 60)))
    hi = lo + timedelta(hours=draw(st.integers(1, 24 * 6)))
    now = lo - timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))

    def interval(max_minutes: int):
        start = lo + timedelta(minutes=draw(st.integers(-24 * 60, int(
            (hi - lo).total_seconds() // 60) + 24 * 60)))
        return start, start + timedelta(minutes=draw(st.integers(15, max_minutes)))

    mentor = sorted(interval(240) for _ in range(draw(st.integers(0, 8))))
    mentee = [interval(240) for _ in range(draw(st.integers(0, 4)))]
    time_off = [interval(3 * 24 * 60) for _ in range(draw(st.integers(0, 2)))]
    rules = MentorRules(
        mentor_id=uuid.uuid4(), name="M", zone=ZoneInfo(zone),
        availability=Availability(timezone=zone, windows=draw(windows())),
        capacity_weekly=draw(st.integers(0, 12)),
        buffer=timedelta(minutes=draw(st.sampled_from([0, 0, 5, 10, 15, 30, 60, 120]))),
        min_notice=timedelta(hours=draw(st.sampled_from([0, 0, 1, 12, 24, 48, 336]))))
    busy = Busy(mentor=mentor, mentee=mentee, time_off=time_off,
                week_counts=count_weeks(rules.zone, mentor))
    duration = draw(st.sampled_from([15, 30, 45, 60, 90, 120, 240]))
    enforce = draw(st.booleans())
    return rules, busy, lo, hi, now, duration, enforce


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_every_offered_slot_books_and_sits_on_the_local_grid(scenario):
    rules, busy, lo, hi, now, duration, enforce = scenario
    slots = offered_slots(rules, busy, lo=lo, hi=hi, duration_minutes=duration, now=now,
                          enforce_notice=enforce, step=STEP)
    assert slots == sorted(set(slots))
    for start, end in slots:
        assert lo <= start < hi and start > now
        assert end - start == timedelta(minutes=duration)
        assert on_grid(start, rules.zone, STEP)
        assert violation(rules, busy, starts_at=start, duration_minutes=duration, now=now,
                         enforce_notice=enforce) is None, start


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.lists(st.integers(0, 10**9), min_size=20, max_size=40))
def test_every_start_that_books_is_free_and_offered_when_on_the_grid(scenario, picks):
    rules, busy, lo, hi, now, duration, enforce = scenario
    offered = {s for s, _ in offered_slots(rules, busy, lo=lo, hi=hi,
                                           duration_minutes=duration, now=now,
                                           enforce_notice=enforce, step=STEP)}
    free = free_intervals(rules, busy, lo=lo, hi=hi)
    span = int((hi - lo).total_seconds() // 60)
    # Arbitrary minutes (most off the grid) plus every grid start in the range.
    candidates = {lo + timedelta(minutes=p % span) for p in picks}
    t = lo
    while t < hi:
        candidates.add(t)
        t += timedelta(minutes=STEP)
    for start in sorted(candidates):
        if start <= now:
            continue
        books = violation(rules, busy, starts_at=start, duration_minutes=duration, now=now,
                          enforce_notice=enforce) is None
        end = start + timedelta(minutes=duration)
        in_free = any(a <= start and end <= b for a, b in free)
        week_ok = busy.week_counts.get(week_key(rules.zone, start), 0) < rules.capacity_weekly
        notice_ok = not enforce or start >= now + rules.min_notice
        assert books == (in_free and week_ok and notice_ok), start
        if on_grid(start, rules.zone, STEP):
            assert books == (start in offered), start


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_offered_slots_are_exactly_the_grid_starts_that_book(scenario):
    """The engine (integer arithmetic over free intervals) against the definition, start
    by start: every instant of the local grid in [lo, hi), after now, that `violation()`
    accepts, in order, and nothing else."""
    rules, busy, lo, hi, now, duration, enforce = scenario
    expected = []
    t = ceil_to_grid(lo, rules.zone, STEP)
    while t < hi:
        if t > now and violation(rules, busy, starts_at=t, duration_minutes=duration, now=now,
                                 enforce_notice=enforce) is None:
            expected.append((t, t + timedelta(minutes=duration)))
        t = ceil_to_grid(t + timedelta(microseconds=1), rules.zone, STEP)
    assert offered_slots(rules, busy, lo=lo, hi=hi, duration_minutes=duration, now=now,
                         enforce_notice=enforce, step=STEP) == expected


def test_london_window_follows_dst_in_utc():
    zone = "Europe/London"
    rules = MentorRules(uuid.uuid4(), "M", ZoneInfo(zone),
                        Availability(timezone=zone, windows=[
                            {"weekday": 0, "start": "09:00", "end": "10:00"}]),
                        10, timedelta(0), timedelta(0))
    now = datetime(2027, 1, 1, tzinfo=UTC)
    winter = offered_slots(rules, Busy(), lo=datetime(2027, 3, 22, tzinfo=UTC),
                           hi=datetime(2027, 3, 23, tzinfo=UTC), duration_minutes=60,
                           now=now, enforce_notice=False, step=STEP)
    summer = offered_slots(rules, Busy(), lo=datetime(2027, 3, 29, tzinfo=UTC),
                           hi=datetime(2027, 3, 30, tzinfo=UTC), duration_minutes=60,
                           now=now, enforce_notice=False, step=STEP)
    assert [s for s, _ in winter] == [datetime(2027, 3, 22, 9, tzinfo=UTC)]
    assert [s for s, _ in summer] == [datetime(2027, 3, 29, 8, tzinfo=UTC)]


def test_buffer_keeps_a_gap_on_both_sides_and_a_full_week_offers_nothing():
    rules = MentorRules(uuid.uuid4(), "M", ZoneInfo("UTC"),
                        Availability(timezone="UTC", windows=[
                            {"weekday": d, "start": "09:00", "end": "13:00"} for d in range(7)]),
                        2, timedelta(minutes=30), timedelta(0))
    monday = datetime(2027, 6, 14, tzinfo=UTC)
    session = (monday + timedelta(hours=10), monday + timedelta(hours=11))
    busy = Busy(mentor=[session], week_counts=count_weeks(rules.zone, [session]))
    starts = [s for s, _ in offered_slots(rules, busy, lo=monday, hi=monday + timedelta(days=1),
                                          duration_minutes=30, now=monday, enforce_notice=False,
                                          step=STEP)]
    assert monday + timedelta(hours=9) in starts
    assert monday + timedelta(hours=9, minutes=15) not in starts  # ends 9:45, gap 15 < 30
    assert monday + timedelta(hours=11, minutes=15) not in starts
    assert monday + timedelta(hours=11, minutes=30) in starts
    # A second session fills the week (capacity 2): nothing else this week, next week free.
    other = (monday + timedelta(days=2, hours=9), monday + timedelta(days=2, hours=10))
    busy = Busy(mentor=[session, other], week_counts=count_weeks(rules.zone, [session, other]))
    starts = [s for s, _ in offered_slots(rules, busy, lo=monday, hi=monday + timedelta(days=9),
                                          duration_minutes=30, now=monday, enforce_notice=False,
                                          step=STEP)]
    assert starts and min(starts) >= monday + timedelta(days=7)
