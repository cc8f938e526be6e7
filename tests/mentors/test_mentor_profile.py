"""GET / PUT /api/v1/mentor/profile: capacity, specialties, availability and the week's load."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.services.mentors.capacity import iso_week_bounds
from tests.support.session_helpers import book, week_start

PROFILE = "/api/v1/mentor/profile"


def valid_profile(**changes):
    return {
        "mentor_capacity_weekly": 8,
        "mentor_max_mentees": 12,
        "mentor_specialties": ["python", " data ", "python"],
        "mentor_availability": {"timezone": "Europe/London", "windows": [
            {"weekday": 0, "start": "09:00", "end": "12:00"},
            {"weekday": 4, "start": "18:30", "end": "24:00"}]},
        **changes,
    }


async def test_profile_shows_this_weeks_slots(client, factory):
    mentor, mentees = await factory.mentor_with_mentees(3, mentor_capacity_weekly=10)
    now = datetime.now(UTC)
    this_week, week_end = iso_week_bounds(UTC, now)
    # Seven live sessions this week (some past, some future), a cancelled one, one next week.
    for i in range(7):
        await factory.session(mentor, mentees[i % 3],
                              starts_at=this_week + timedelta(hours=1 + i * 20),
                              status="scheduled" if i % 2 else "completed")
    await factory.session(mentor, mentees[0], starts_at=this_week + timedelta(minutes=30),
                          duration_minutes=15, status="cancelled")
    await factory.session(mentor, mentees[0], starts_at=week_end + timedelta(hours=1))
    response = await client.get(PROFILE, headers=factory.headers(mentor))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["capacity"]["weekly_slots"] == "7/10 weekly slots"
    assert (body["capacity"]["weekly_slots_used"], body["capacity"]["weekly_slots_total"]) \
        == (7, 10)
    assert (body["capacity"]["mentees_active"], body["capacity"]["mentees_max"]) == (3, 20)
    assert body["capacity"]["utilization"] == 0.7
    assert body["mentor_availability"]["timezone"] == "UTC"
    assert body["id"] == str(mentor.id)


async def test_put_replaces_the_profile_and_booking_follows_it(client, factory):
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    headers = factory.headers(mentor)
    response = await client.put(PROFILE, headers=headers, json=valid_profile(
        mentor_capacity_weekly=1))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mentor_specialties"] == ["python", "data"]
    assert body["mentor_capacity_weekly"] == 1 and body["mentor_max_mentees"] == 12
    assert body["mentor_availability"]["windows"][1] == {"weekday": 4, "start": "18:30",
                                                         "end": "24:00"}
    assert body["capacity"]["weekly_slots"] == "0/1 weekly slots"
    assert (await client.get(PROFILE, headers=headers)).json() == body

    # The new windows and capacity apply at once: Friday 23:00 London (the window runs to
    # midnight) fits, then that week is full; Friday noon is outside the windows.
    monday = week_start(zone=ZoneInfo("Europe/London"))
    friday = monday + timedelta(days=4)
    assert (await book(client, headers, mentee, friday + timedelta(hours=23), 60)
            ).status_code == 201
    full = await book(client, headers, mentee, monday + timedelta(hours=9), 60)
    assert full.json()["code"] == "capacity_exceeded"
    outside = await book(client, headers, mentee, friday + timedelta(days=7, hours=12), 60)
    assert outside.json()["code"] == "outside_availability"


@pytest.mark.parametrize("changes", [
    {"mentor_availability": {"timezone": "Mars/Olympus_Mons", "windows": []}},
    {"mentor_availability": {"timezone": "", "windows": []}},
    {"mentor_availability": {"timezone": "../../etc/passwd", "windows": []}},
    {"mentor_availability": {"timezone": "UTC", "windows": [
        {"weekday": 7, "start": "09:00", "end": "10:00"}]}},
    {"mentor_availability": {"timezone": "UTC", "windows": [
        {"weekday": -1, "start": "09:00", "end": "10:00"}]}},
    {"mentor_availability": {"timezone": "UTC", "windows": [
        {"weekday": 0, "start": "9:00", "end": "10:00"}]}},
    {"mentor_availability": {"timezone": "UTC", "windows": [
        {"weekday": 0, "start": "10:00", "end": "10:00"}]}},
    {"mentor_availability": {"timezone": "UTC", "windows": [
        {"weekday": 0, "start": "11:00", "end": "10:00"}]}},
    {"mentor_availability": {"timezone": "UTC", "windows": [
        {"weekday": 0, "start": "24:00", "end": "24:00"}]}},
    {"mentor_availability": {"timezone": "UTC", "windows": [
        {"weekday": 0, "start": "09:00", "end": "24:01"}]}},
    {"mentor_availability": {"timezone": "UTC", "windows": [
        {"weekday": 0, "start": "09:60", "end": "10:00"}]}},
    {"mentor_availability": {"windows": []}},
    {"mentor_capacity_weekly": -1},
    {"mentor_max_mentees": -5},
    {"mentor_specialties": [""]},
    {"mentor_specialties": "python"},
    {"unknown": 1},
])
async def test_invalid_profile_is_422_and_changes_nothing(client, factory, changes):
    mentor = await factory.mentor()
    headers = factory.headers(mentor)
    before = (await client.get(PROFILE, headers=headers)).json()
    response = await client.put(PROFILE, headers=headers, json=valid_profile(**changes))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert (await client.get(PROFILE, headers=headers)).json() == before


async def test_put_changes_only_the_fields_sent(client, factory):
    mentor = await factory.mentor()
    headers = factory.headers(mentor)
    before = (await client.get(PROFILE, headers=headers)).json()
    response = await client.put(PROFILE, headers=headers, json={"mentor_buffer_minutes": 15})
    assert response.status_code == 200, response.text
    after = (await client.get(PROFILE, headers=headers)).json()
    assert after["mentor_buffer_minutes"] == 15
    assert {k: v for k, v in after.items() if k != "mentor_buffer_minutes"} == {
        k: v for k, v in before.items() if k != "mentor_buffer_minutes"}

    response = await client.put(PROFILE, headers=headers, json={"mentor_capacity_weekly": 3})
    assert response.status_code == 200, response.text
    assert response.json()["mentor_capacity_weekly"] == 3
    assert response.json()["mentor_buffer_minutes"] == 15


@pytest.mark.parametrize("body", [{}, {"mentor_capacity_weekly": None},
                                  {"mentor_availability": None}, {"languages": None}])
async def test_put_refuses_an_empty_body_and_nulls(client, factory, body):
    mentor = await factory.mentor()
    headers = factory.headers(mentor)
    before = (await client.get(PROFILE, headers=headers)).json()
    response = await client.put(PROFILE, headers=headers, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert (await client.get(PROFILE, headers=headers)).json() == before
