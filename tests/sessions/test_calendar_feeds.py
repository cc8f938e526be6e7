"""Calendar subscription URLs: random tokens stored hashed, rotating, revocable, dead once
the owner is no longer an active mentor or mentee; the document parsed back by two
independent iCalendar parsers (icalendar and vobject)."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from urllib.parse import urlsplit

import icalendar
import vobject
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient
from sqlalchemy import select, update

from app.main import create_app
from app.models import CalendarFeedToken, User
from tests.support.session_helpers import book, week_start

FEED_TOKEN = "/api/v1/calendar/feed-token"


async def issue(client, factory, user) -> str:
    response = await client.post(FEED_TOKEN, headers=factory.headers(user))
    assert response.status_code == 201, response.text
    return response.json()["url"]


async def fetch(client, url: str):
    parts = urlsplit(url)
    return await client.get(parts.path)  # no Authorization header


async def test_feed_url_works_without_a_jwt_and_parses_with_two_parsers(client, factory):
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    at = week_start(2) + timedelta(hours=10)
    booked = (await book(client, factory.headers(mentor), mentee, at, agenda="Plan, goals; ok")
              ).json()
    for user in (mentor, mentee):
        url = await issue(client, factory, user)
        assert url.startswith("http://test/api/v1/calendar/feeds/") and url.endswith(".ics")
        token = url.removeprefix("http://test/api/v1/calendar/feeds/").removesuffix(".ics")
        # an opaque random token (secrets.token_urlsafe(32)), not a JWT's three dotted parts
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token), token
        response = await fetch(client, url)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/calendar")

        parsed = icalendar.Calendar.from_ical(response.content)
        (event,) = [e for e in parsed.walk("VEVENT")]
        assert str(event["uid"]) == f"{booked['id']}@mentorship"
        assert event.decoded("dtstart") == at
        assert str(event["url"]) == booked["meeting_url"]

        other = vobject.readOne(response.text)
        (vevent,) = other.vevent_list
        assert vevent.uid.value == f"{booked['id']}@mentorship"
        assert vevent.dtstart.value == at
        assert vevent.description.value == "Plan, goals; ok"


async def test_tokens_are_stored_hashed_and_rotate(client, factory):
    mentor = await factory.mentor()
    first = await issue(client, factory, mentor)
    second = await issue(client, factory, mentor)
    assert first != second
    assert (await fetch(client, first)).status_code == 404
    assert (await fetch(client, second)).status_code == 200
    token = urlsplit(second).path.rsplit("/", 1)[1].removesuffix(".ics")

    async def stored(session):
        return (await session.scalars(select(CalendarFeedToken).where(
            CalendarFeedToken.user_id == mentor.id))).all()
    (row,) = await factory.run(stored)
    assert row.token_hash == hashlib.sha256(token.encode()).digest()
    assert token.encode() not in row.token_hash


async def test_revoked_or_unknown_feed_is_404(client, factory):
    mentee = await factory.mentee()
    url = await issue(client, factory, mentee)
    headers = factory.headers(mentee)
    assert (await client.delete(FEED_TOKEN, headers=headers)).status_code == 204
    gone = await fetch(client, url)
    assert gone.status_code == 404 and gone.json()["code"] == "feed_not_found"
    assert (await client.delete(FEED_TOKEN, headers=headers)).status_code == 404
    for path in ("/api/v1/calendar/feeds/nope.ics", "/api/v1/calendar/feeds/%00.ics",
                 "/api/v1/calendar/feeds/" + "x" * 300 + ".ics"):
        assert (await client.get(path)).status_code in (404, 422), path


async def test_feed_stops_when_the_owner_is_no_longer_a_mentor_or_mentee(client, factory):
    mentor = await factory.mentor()
    url = await issue(client, factory, mentor)

    async def promote(session):
        await session.execute(update(User).where(User.id == mentor.id).values(role="director"))
    await factory.run(promote)
    assert (await fetch(client, url)).status_code == 404


async def test_feed_stops_when_the_owner_is_deactivated(client, factory):
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    url = await issue(client, factory, mentee)
    admin = await factory.user("admin")
    response = await client.post(f"/api/v1/users/{mentee.id}/deactivate",
                                 headers=factory.headers(admin))
    assert response.status_code == 200, response.text
    assert (await fetch(client, url)).status_code == 404


async def test_only_mentors_and_mentees_get_a_feed(client, factory):
    director = await factory.user("director")
    assert (await client.post(FEED_TOKEN, headers=factory.headers(director))).status_code == 403
    assert (await client.post(FEED_TOKEN)).status_code == 401


async def test_public_base_url_makes_the_url(settings, factory):
    app = create_app(settings.model_copy(update={"public_base_url": "https://mentor.example/"}))
    mentor = await factory.mentor()
    async with LifespanManager(app):
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://x") as c:
            url = await issue(c, factory, mentor)
    assert url.startswith("https://mentor.example/api/v1/calendar/feeds/")
