"""Isolation matrix for the session and scheduling routes (v1 sessions and the v2 "Mentees
act" and "Scheduling like a calendar product" routes).

Two mentors A and B, each with a mentee, a future session (with agenda and meeting link), a
completed one (with the mentor's notes), time off (with its reason), stated preferences, and
calendar feed tokens (the mentor's rotated once: the first URL is dead). Every route is called
by mentor A, mentor B, A's mentee, B's mentee, a director, an admin and a service account, on
A's objects and on B's; routes that take no one's object (the caller's own list, slots,
booking, tokens) are called once per caller. The status of every cell is fixed in `ROUTES`;
a refused call changes nothing in either world; a 2xx changes nothing outside the caller's
world (and a GET nothing at all); and no body carries the other world's data: names,
emails, ids, notes, agendas, reasons, meeting links, feed tokens.

The calendar feed by URL takes no JWT: the token in the path is the credential, so every
caller gets the token owner's calendar (and only theirs), and a rotated or revoked URL is
404 for everyone.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, or_, select

from app.core.auth import Principal
from app.models import (
    CalendarFeedToken,
    MenteePreferences,
    MentoringSession,
    OutboxEvent,
    SessionFeedback,
    TimeOff,
)
from app.services.sessions import feeds
from tests.support.isolation import assert_hits, matrix_cells
from tests.support.session_helpers import week_start
from tests.support.workspace_support import body_without_echo

CALLERS = ("mentor_a", "mentor_b", "mentee_a", "mentee_b", "director", "admin", "service")
OWNERS = ("a", "b")
CLASSES = ("own_mentor", "other_mentor", "own_mentee", "other_mentee", "director", "admin",
           "service")


def cells(**statuses: int) -> dict[str, int]:
    """A route's status per caller class: 403 `wrong_role` unless given. `mentor` and
    `mentee` set both the owner's and the other one; `everyone` sets every class."""
    table = dict.fromkeys(CLASSES, statuses.pop("everyone", 403))
    for key, status in statuses.items():
        for name in ((f"own_{key}", f"other_{key}") if key in ("mentor", "mentee") else (key,)):
            assert name in table, name
            table[name] = status
    return table


@dataclass(frozen=True)
class Cell:
    """One call of the matrix, for the checks of its 2xx answers."""
    client: Any
    factory: Any
    world: dict
    mine: str  # the world the answer may show
    owner: str
    user: Any


Check = Callable[[Cell, Any], Awaitable[None] | None]


@dataclass(frozen=True)
class Route:
    operation: str  # "METHOD /template", as in the OpenAPI document
    table: dict[str, int]
    path: Callable[[dict, str], dict] | None = None  # template values for owner's objects
    body: Callable[[dict, str], Any] | None = None
    params: Callable[[dict, str], dict] | None = None
    owned: bool = True  # False: no one's object in the request; called once per caller
    check: Check | None = None  # what a 2xx must hold


async def _issue_feed(factory, user) -> str:
    return await factory.run(feeds.issue_feed_token, principal=Principal(user.id, user.role))


async def _world(factory) -> dict:
    start = week_start(2) + timedelta(hours=10)  # a Monday 10:00 UTC, weeks ahead
    now = datetime.now(UTC)
    world: dict[str, Any] = {"start": start}
    for role in ("director", "admin", "service"):
        world[role] = await factory.user(role)
    for key in OWNERS:
        tag = f"{key}{uuid.uuid4().hex}"
        mentor = await factory.mentor(name=f"Mentor {tag}")
        mentee = await factory.mentee(name=f"Mentee {tag}")
        await factory.assign(mentor, mentee)
        # Both worlds' future sessions at the same instant: one period of time off covers
        # both, and only the caller's may show up in its `conflicts`.
        future = await factory.session(mentor, mentee, starts_at=start,
                                       agenda=f"Agenda {tag}")
        past = await factory.session(mentor, mentee, starts_at=now - timedelta(days=3),
                                     status="completed", mentor_notes=f"Notes {tag}")
        time_off = TimeOff(id=uuid.uuid4(), mentor_id=mentor.id,
                           starts_at=start + timedelta(days=1),
                           ends_at=start + timedelta(days=1, hours=8), reason=f"Holiday {tag}")
        preferences = MenteePreferences(mentee_id=mentee.id, specialties=[f"pref-{tag}"])
        await factory.add(time_off, preferences)
        rotated = await _issue_feed(factory, mentor)
        world[key] = {
            "mentor": mentor, "mentee": mentee, "future": future, "past": past,
            "time_off": time_off, "preference": f"pref-{tag}", "rotated_feed": rotated,
            "mentor_feed": await _issue_feed(factory, mentor),  # revokes `rotated`
            "mentee_feed": await _issue_feed(factory, mentee),
        }
    return world


def _secrets(part: dict) -> set[str]:
    """Every identifying value of one mentor's world."""
    mentor, mentee, future, past = part["mentor"], part["mentee"], part["future"], part["past"]
    return {
        str(mentor.id), mentor.name, mentor.email, str(mentee.id), mentee.name, mentee.email,
        str(future.id), future.meeting_url, future.agenda, str(past.id), past.meeting_url,
        past.mentor_notes, str(part["time_off"].id), part["time_off"].reason,
        part["preference"], part["rotated_feed"], part["mentor_feed"], part["mentee_feed"],
    }


async def _snapshot(system_db, part: dict) -> tuple:
    """Everything of one world that a call could change."""
    mentor_id, mentee_id = part["mentor"].id, part["mentee"].id
    async with system_db.transaction(None) as session:
        sessions = sorted(
            (row.id, row.mentor_id, row.status, row.starts_at, row.ends_at, row.cancel_reason,
             row.meeting_url, row.mentor_notes)
            for row in await session.scalars(select(MentoringSession).where(or_(
                MentoringSession.mentor_id == mentor_id,
                MentoringSession.mentee_id == mentee_id))))
        time_off = sorted((row.id, row.starts_at, row.ends_at, row.reason)
                          for row in await session.scalars(
                              select(TimeOff).where(TimeOff.mentor_id == mentor_id)))
        tokens = sorted((row.user_id, row.token_hash) for row in await session.scalars(
            select(CalendarFeedToken).where(
                CalendarFeedToken.user_id.in_([mentor_id, mentee_id]))))
        preferences = await session.get(MenteePreferences, mentee_id)
        feedback = await session.scalar(select(func.count()).select_from(SessionFeedback)
                                        .where(SessionFeedback.mentee_id == mentee_id))
        events = await session.scalar(select(func.count()).select_from(OutboxEvent).where(or_(
            OutboxEvent.data["mentee_id"].astext == str(mentee_id),
            OutboxEvent.data["mentor_id"].astext == str(mentor_id))))
    return (sessions, time_off, tokens, list(preferences.specialties), feedback, events)


def _ids(response) -> set[str]:
    return {item["id"] for item in response.json()["items"]}


# --- what the 2xx cells must hold ------------------------------------------------------------

def _is_future(c: Cell, response):
    assert response.json()["id"] == str(c.world[c.owner]["future"].id)


def _cancelled(c: Cell, response):
    body = response.json()
    assert (body["id"], body["status"]) == (str(c.world[c.owner]["future"].id), "cancelled")


def _moved(c: Cell, response):
    body = response.json()
    assert body["id"] == str(c.world[c.owner]["future"].id)
    assert datetime.fromisoformat(body["starts_at"]) == c.world["start"] + timedelta(hours=2)


def _booked(c: Cell, response):
    body = response.json()
    assert body["mentor_id"] == str(c.world[c.mine]["mentor"].id)
    assert body["mentee_id"] == str(c.world[c.mine]["mentee"].id)


def _by_mentee(c: Cell, response):
    # The other mentor filtering on this mentee gets an empty page, not their sessions.
    expected = ({str(c.world[c.owner]["future"].id), str(c.world[c.owner]["past"].id)}
                if c.mine == c.owner else set())
    assert _ids(response) == expected


def _has_slots(c: Cell, response):
    assert response.json()["slots"]


async def _time_off_gone(c: Cell, response):
    listing = await c.client.get("/api/v1/mentor/time-off",
                                 headers=c.factory.headers(c.world[c.mine]["mentor"]))
    assert listing.json()["items"] == []


def _own_time_off(c: Cell, response):
    assert _ids(response) == {str(c.world[c.mine]["time_off"].id)}


def _own_conflict(c: Cell, response):
    assert [row["session_id"] for row in response.json()["conflicts"]] == [
        str(c.world[c.mine]["future"].id)]


def _own_sessions(c: Cell, response):
    mine = c.world[c.mine]
    assert _ids(response) == {str(mine["future"].id), str(mine["past"].id)}


def _feedback(c: Cell, response):
    assert response.json()["session_id"] == str(c.world[c.owner]["past"].id)


def _own_calendar(c: Cell, response):
    assert c.world[c.mine]["future"].meeting_url in response.text


def _owner_calendar(c: Cell, response):
    assert c.world[c.owner]["future"].meeting_url in response.text


async def _new_feed(c: Cell, response):
    role = "mentor" if c.world[c.mine]["mentor"].id == c.user.id else "mentee"
    old = await c.client.get(f"/api/v1/calendar/feeds/{c.world[c.mine][f'{role}_feed']}.ics")
    assert old.status_code == 404  # a new URL revokes the old one
    fresh = await c.client.get(response.json()["url"])
    assert fresh.status_code == 200 and c.world[c.mine]["future"].meeting_url in fresh.text


async def _feed_revoked(c: Cell, response):
    role = "mentor" if c.world[c.mine]["mentor"].id == c.user.id else "mentee"
    feed = await c.client.get(f"/api/v1/calendar/feeds/{c.world[c.mine][f'{role}_feed']}.ics")
    assert feed.status_code == 404


def _own_preferences(c: Cell, response):
    assert response.json()["specialties"] == [c.world[c.mine]["preference"]]


def _new_preferences(c: Cell, response):
    assert response.json()["specialties"] == ["isolation"]


def _own_home(c: Cell, response):
    assert response.json()["mentor"]["name"] == c.world[c.mine]["mentor"].name


def _after(world, hours: int) -> str:
    return (world["start"] + timedelta(hours=hours)).isoformat()


def _day(world, owner) -> dict:
    return {"from": world["start"].isoformat(), "to": _after(world, 24),
            "duration_minutes": 30}


MENTOR_OWNED = cells(own_mentor=200, other_mentor=404)
MENTEE_OWNED = cells(own_mentee=200, other_mentee=404)
FEED = "GET /api/v1/calendar/feeds/{token}.ics"

ROUTES: dict[str, Route] = {
    # mentor sessions (v1)
    "mentor_session_get": Route(
        "GET /api/v1/mentor/sessions/{session_id}", MENTOR_OWNED,
        path=lambda w, o: {"session_id": w[o]["future"].id}, check=_is_future),
    "mentor_session_cancel": Route(
        "PATCH /api/v1/mentor/sessions/{session_id}", MENTOR_OWNED,
        path=lambda w, o: {"session_id": w[o]["future"].id},
        body=lambda w, o: {"status": "cancelled", "reason": "isolation"}, check=_cancelled),
    "mentor_session_reschedule": Route(
        "PATCH /api/v1/mentor/sessions/{session_id}", MENTOR_OWNED,
        path=lambda w, o: {"session_id": w[o]["future"].id},
        body=lambda w, o: {"starts_at": _after(w, 2)}, check=_moved),
    "mentor_book": Route(
        "POST /api/v1/mentor/sessions", cells(own_mentor=201, other_mentor=404),
        body=lambda w, o: {"mentee_id": str(w[o]["mentee"].id), "starts_at": _after(w, 4),
                           "duration_minutes": 60, "agenda": "isolation"}, check=_booked),
    "mentor_sessions_by_mentee": Route(
        "GET /api/v1/mentor/sessions", cells(mentor=200),
        params=lambda w, o: {"mentee_id": str(w[o]["mentee"].id)}, check=_by_mentee),
    # v2: scheduling like a calendar product
    "mentor_slots": Route(
        "GET /api/v1/mentor/mentees/{mentee_id}/slots", MENTOR_OWNED,
        path=lambda w, o: {"mentee_id": w[o]["mentee"].id}, params=_day, check=_has_slots),
    "time_off_delete": Route(
        "DELETE /api/v1/mentor/time-off/{time_off_id}", cells(own_mentor=204, other_mentor=404),
        path=lambda w, o: {"time_off_id": w[o]["time_off"].id}, check=_time_off_gone),
    "time_off_list": Route(
        "GET /api/v1/mentor/time-off", cells(mentor=200), owned=False, check=_own_time_off),
    "time_off_add": Route(
        "POST /api/v1/mentor/time-off", cells(mentor=201), owned=False,
        body=lambda w, o: {"starts_at": _after(w, -1), "ends_at": _after(w, 2),
                           "reason": "isolation"}, check=_own_conflict),
    "calendar_feed_jwt": Route(
        "GET /api/v1/calendar.ics", cells(mentor=200, mentee=200), owned=False,
        check=_own_calendar),
    "feed_token_issue": Route(
        "POST /api/v1/calendar/feed-token", cells(mentor=201, mentee=201), owned=False,
        check=_new_feed),
    "feed_token_revoke": Route(
        "DELETE /api/v1/calendar/feed-token", cells(mentor=204, mentee=204), owned=False,
        check=_feed_revoked),
    "feed_of_mentor": Route(FEED, cells(everyone=200), check=_owner_calendar,
                            path=lambda w, o: {"token": w[o]["mentor_feed"]}),
    "feed_of_mentee": Route(FEED, cells(everyone=200), check=_owner_calendar,
                            path=lambda w, o: {"token": w[o]["mentee_feed"]}),
    "feed_rotated": Route(FEED, cells(everyone=404),
                          path=lambda w, o: {"token": w[o]["rotated_feed"]}),
    # v2: mentees act
    "mentee_slots": Route(
        "GET /api/v1/mentee/slots", cells(mentee=200), owned=False, params=_day,
        check=_has_slots),
    "mentee_book": Route(
        "POST /api/v1/mentee/sessions", cells(mentee=201), owned=False,
        body=lambda w, o: {"starts_at": _after(w, 6), "duration_minutes": 60,
                           "agenda": "isolation"}, check=_booked),
    "mentee_session_cancel": Route(
        "PATCH /api/v1/mentee/sessions/{session_id}", MENTEE_OWNED,
        path=lambda w, o: {"session_id": w[o]["future"].id},
        body=lambda w, o: {"status": "cancelled", "reason": "isolation"}, check=_cancelled),
    "mentee_session_reschedule": Route(
        "PATCH /api/v1/mentee/sessions/{session_id}", MENTEE_OWNED,
        path=lambda w, o: {"session_id": w[o]["future"].id},
        body=lambda w, o: {"starts_at": _after(w, 2)}, check=_moved),
    "mentee_feedback": Route(
        "POST /api/v1/mentee/sessions/{session_id}/feedback",
        cells(own_mentee=201, other_mentee=404),
        path=lambda w, o: {"session_id": w[o]["past"].id},
        body=lambda w, o: {"rating": 5, "comment": "isolation"}, check=_feedback),
    "mentee_sessions": Route(
        "GET /api/v1/mentee/sessions", cells(mentee=200), owned=False, check=_own_sessions),
    "mentee_home": Route("GET /api/v1/mentee/me", cells(mentee=200), owned=False,
                         check=_own_home),
    "mentee_preferences_get": Route(
        "GET /api/v1/mentee/preferences", cells(mentee=200), owned=False,
        check=_own_preferences),
    "mentee_preferences_put": Route(
        "PUT /api/v1/mentee/preferences", cells(mentee=200), owned=False,
        body=lambda w, o: {"specialties": ["isolation"]}, check=_new_preferences),
}
COVERS = {route.operation for route in ROUTES.values()}


def _caller(world: dict, caller: str):
    if caller in ("director", "admin", "service"):
        return world[caller]
    role, key = caller.split("_")
    return world[key][role]


def _class(caller: str, owner: str) -> str:
    if caller in ("director", "admin", "service"):
        return caller
    role, key = caller.split("_")
    return f"{'own' if key == owner else 'other'}_{role}"


@pytest.mark.parametrize("route,caller,owner", matrix_cells(ROUTES, CALLERS, OWNERS))
async def test_scheduling_isolation_matrix(client, factory, system_db, route, caller, owner):
    world = await _world(factory)
    spec = ROUTES[route]
    method, template = spec.operation.split(" ", 1)
    url = template.format(**spec.path(world, owner)) if spec.path else template
    user = _caller(world, caller)
    before = {key: await _snapshot(system_db, world[key]) for key in OWNERS}

    extra: dict[str, Any] = {}
    if spec.body is not None:
        extra["json"] = spec.body(world, owner)
    if spec.params is not None:
        extra["params"] = spec.params(world, owner)
    response = await client.request(method, url, headers=factory.headers(user), **extra)

    assert_hits(spec.operation, response)
    expected = spec.table[_class(caller, owner)]
    assert response.status_code == expected, (route, caller, owner, response.text)
    text = body_without_echo(response)
    after = {key: await _snapshot(system_db, world[key]) for key in OWNERS}
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
        if response.status_code == 403:
            assert response.json()["code"] == "wrong_role"
        leaked = {s for key in OWNERS for s in _secrets(world[key]) if s in text}
        assert not leaked, (route, caller, owner, leaked)
        assert after == before, "a refused call must change nothing"
        return
    # A feed URL shows its owner's calendar whoever calls; every other route shows only
    # the caller's own world.
    mine = owner if spec.operation == FEED else caller.split("_")[1]
    theirs = "b" if mine == "a" else "a"
    leaked = {s for s in _secrets(world[theirs]) if s in text}
    assert not leaked, (route, caller, owner, leaked)
    assert after[theirs] == before[theirs], "a call changed the other world"
    if method == "GET":
        assert after == before, "a GET changed something"
    if spec.check is not None:
        result = spec.check(Cell(client, factory, world, mine, owner, user), response)
        if result is not None:
            await result
