"""The iCalendar feed: parsed back with `icalendar`, for mentors and mentees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from icalendar import Calendar

from tests.support.session_helpers import SESSIONS, book, week_start

FEED = "/api/v1/calendar.ics"


def events_by_uid(body: bytes) -> dict[str, object]:
    calendar = Calendar.from_ical(body)
    assert str(calendar["VERSION"]) == "2.0" and calendar["PRODID"]
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


def utc(value) -> datetime:
    moment = value.dt
    assert moment.utcoffset() == timedelta(0), moment  # always UTC
    return moment


async def test_feed_follows_booking_reschedule_and_cancel(client, factory):
    mentor, (mentee, other) = await factory.mentor_with_mentees(2)
    headers = factory.headers(mentor)
    starts = week_start() + timedelta(days=1, hours=9, minutes=30)
    booked = (await book(client, headers, mentee, starts, 45, agenda="CV review")).json()
    second = (await book(client, headers, other, starts + timedelta(days=1))).json()
    uid = f"{booked['id']}@mentorship"

    response = await client.get(FEED, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/calendar")
    events = events_by_uid(response.content)
    assert set(events) == {uid, f"{second['id']}@mentorship"}
    event = events[uid]
    assert utc(event["DTSTART"]) == starts
    assert utc(event["DTEND"]) == starts + timedelta(minutes=45)
    assert int(event["SEQUENCE"]) == 0
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["URL"]) == str(event["LOCATION"]) == booked["meeting_url"]
    assert str(event["DESCRIPTION"]) == "CV review"
    assert mentee.name in str(event["SUMMARY"])

    moved = starts + timedelta(hours=2)
    await client.patch(f"{SESSIONS}/{booked['id']}", headers=headers,
                       json={"starts_at": moved.isoformat()})
    event = events_by_uid((await client.get(FEED, headers=headers)).content)[uid]
    assert int(event["SEQUENCE"]) == 1
    assert utc(event["DTSTART"]) == moved
    assert str(event["UID"]) == uid  # stable: calendars update the same event

    await client.patch(f"{SESSIONS}/{booked['id']}", headers=headers,
                       json={"status": "cancelled"})
    event = events_by_uid((await client.get(FEED, headers=headers)).content)[uid]
    assert str(event["STATUS"]) == "CANCELLED"
    assert int(event["SEQUENCE"]) == 2


async def test_mentee_feed_by_query_token_shows_only_own_sessions(client, factory):
    mentor, (mentee, other) = await factory.mentor_with_mentees(2)
    mine = await factory.session(mentor, mentee)
    await factory.session(mentor, other, starts_at=datetime.now(UTC) + timedelta(days=3))
    old = await factory.session(mentor, mentee, status="completed",
                                starts_at=datetime.now(UTC) - timedelta(days=400))
    response = await client.get(FEED, params={"access_token": factory.token(mentee)})
    assert response.status_code == 200, response.text
    events = events_by_uid(response.content)
    assert list(events) == [f"{mine.id}@mentorship"]  # not other's, not a year-old one
    assert mentor.name in str(events[f"{mine.id}@mentorship"]["SUMMARY"])
    assert f"{old.id}@mentorship" not in events


async def test_feed_needs_a_valid_token(client, factory):
    assert (await client.get(FEED)).status_code == 401
    assert (await client.get(FEED, params={"access_token": "nope"})).status_code == 401
    service = await factory.user("service")
    assert (await client.get(FEED, params={"access_token": factory.token(service)})
            ).status_code == 403


async def test_empty_feed_is_a_valid_calendar(client, factory):
    mentor = await factory.mentor()
    response = await client.get(FEED, headers=factory.headers(mentor))
    assert events_by_uid(response.content) == {}
