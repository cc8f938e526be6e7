"""Property-based, through the real routes and database: for random mentors (zones with
and without DST, windows, buffer, notice, capacity, existing sessions and time off) over
weeks that contain a DST change,
- a slot offered to the mentee books for the mentee, and one offered to the mentor books
  for the mentor;
- any start (on the grid or not) books exactly when it lies in a free interval of the
  engine, in an ISO week with room, after the notice: every booking that succeeds lies in
  a free interval, and no free start is refused."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.auth import Principal
from app.services.sessions.scheduling import load_inputs
from app.services.sessions.slots import free_intervals, week_key
from tests.support.session_helpers import book, dst_changes

DST_ZONES = ["Europe/London", "America/New_York", "Australia/Sydney", "America/Santiago",
             "Australia/Lord_Howe"]
FIXED_ZONES = ["UTC", "Asia/Kolkata", "Asia/Kathmandu"]


def _window_set(rng: random.Random) -> list[dict]:
    windows = []
    for _ in range(rng.randint(2, 6)):
        start = rng.randint(0, 22 * 4) * 15
        end = min(1440, start + rng.randint(4, 40) * 15)
        windows.append({"weekday": rng.randint(0, 6),
                        "start": f"{start // 60:02d}:{start % 60:02d}",
                        "end": "24:00" if end == 1440 else f"{end // 60:02d}:{end % 60:02d}"})
    return windows


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), zone=st.sampled_from(DST_ZONES + FIXED_ZONES))
async def test_offered_slots_book_and_bookings_lie_in_free_intervals(
        client, factory, app_db, seed, zone):
    rng = random.Random(seed)
    tz = ZoneInfo(zone)
    mentor, (mentee, other) = await factory.mentor_with_mentees(
        2, mentor_availability={"timezone": zone, "windows": _window_set(rng)},
        mentor_capacity_weekly=rng.randint(1, 6),
        mentor_buffer_minutes=rng.choice([0, 0, 10, 15, 30, 60]),
        mentor_min_notice_hours=rng.choice([0, 24, 72]))
    if zone in DST_ZONES:
        change = dst_changes(tz, 1)[0]
        lo = datetime(change.year, change.month, change.day, tzinfo=tz) - timedelta(days=3)
    else:
        lo = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0) \
            + timedelta(days=rng.randint(8, 30))
    lo = lo.astimezone(UTC)
    hi = lo + timedelta(days=7)
    mentor_headers = factory.headers(mentor)
    # Existing sessions (whatever the rules accept) and a time off.
    for _ in range(rng.randint(0, 4)):
        await book(client, mentor_headers, other,
                   lo + timedelta(minutes=rng.randint(0, 7 * 24 * 4) * 15),
                   rng.choice([30, 60, 90]))
    if rng.random() < 0.5:
        start = lo + timedelta(hours=rng.randint(0, 150))
        await client.post("/api/v1/mentor/time-off", headers=mentor_headers, json={
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=rng.randint(1, 30))).isoformat()})
    duration = rng.choice([15, 30, 45, 60, 120])
    params = {"from": lo.isoformat(), "to": hi.isoformat(), "duration_minutes": duration}

    # Arbitrary starts, against the engine's view at that moment (read as the mentee).
    for _ in range(6):
        async with app_db.transaction(Principal(mentee.id, "mentee")) as session:
            rules, busy = await load_inputs(session, mentor_id=mentor.id,
                                            mentee_id=mentee.id, lo=lo, hi=hi)
        free = free_intervals(rules, busy, lo=lo, hi=hi)
        start = lo + timedelta(minutes=rng.randint(0, 7 * 24 * 60 - 1))
        now = datetime.now(UTC)
        end = start + timedelta(minutes=duration)
        expected = (any(a <= start and end <= b for a, b in free)
                    and busy.week_counts.get(week_key(rules.zone, start), 0)
                    < rules.capacity_weekly
                    and start >= now + rules.min_notice)
        response = await client.post("/api/v1/mentee/sessions", headers=factory.headers(mentee),
                                     json={"starts_at": start.isoformat(),
                                           "duration_minutes": duration})
        assert response.status_code in (201, 409), response.text
        assert (response.status_code == 201) == expected, (start, response.text)

    # Offered slots book, for the mentee and for the mentor.
    for who, url, headers in (
        ("mentee", "/api/v1/mentee/slots", factory.headers(mentee)),
        ("mentor", f"/api/v1/mentor/mentees/{mentee.id}/slots", mentor_headers),
    ):
        response = await client.get(url, headers=headers, params=params)
        assert response.status_code == 200, response.text
        slots = response.json()["slots"]
        if not slots:
            continue
        pick = rng.choice(slots)
        if who == "mentee":
            booked = await client.post("/api/v1/mentee/sessions", headers=headers, json={
                "starts_at": pick["starts_at"], "duration_minutes": duration})
        else:
            booked = await book(client, headers, mentee,
                                datetime.fromisoformat(pick["starts_at"]), duration)
        assert booked.status_code == 201, (who, pick, booked.text)
