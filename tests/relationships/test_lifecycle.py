"""Relationships that end: ending an assignment, history, the waiting list, deactivation,
reactivation and role changes, each with its outbound events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from app.models import Assignment, MatchingRun, MentoringSession, User, WaitingMentee
from tests.support.workspace_support import outbox_events

ASSIGN = "/api/v1/director/assignments"
WAITING = "/api/v1/director/waiting"


def END(assignment_id):  # noqa: N802
    return f"/api/v1/director/assignments/{assignment_id}/end"


def HISTORY(mentee_id):  # noqa: N802
    return f"/api/v1/director/mentees/{mentee_id}/assignments"


def DEACTIVATE(user_id):  # noqa: N802
    return f"/api/v1/users/{user_id}/deactivate"


@pytest.fixture
async def director(factory):
    return factory.headers(await factory.user("director"))


@pytest.fixture
async def service(factory):
    return await factory.role_headers("service")


async def _get(system_db, model, row_id):
    async with system_db.transaction(None) as session:
        return await session.get_one(model, row_id)


async def _assignment_of(system_db, mentee_id) -> Assignment | None:
    async with system_db.transaction(None) as session:
        return await session.scalar(select(Assignment).where(
            Assignment.mentee_id == mentee_id, Assignment.ended_at.is_(None)))


async def _waiting(client, director) -> dict[str, dict]:
    found, cursor = {}, None
    while True:
        response = await client.get(WAITING, headers=director,
                                    params={"limit": 200, **({"cursor": cursor} if cursor
                                                             else {})})
        assert response.status_code == 200, response.text
        found.update({item["mentee_id"]: item for item in response.json()["items"]})
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return found


def _future(days: int = 3) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(minute=0, second=0,
                                                              microsecond=0)


class TestEnd:
    async def test_ending_cancels_the_pairs_future_sessions(
            self, client, factory, system_db, director):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        assignment = await _assignment_of(system_db, mentee.id)
        upcoming = await factory.session(mentor, mentee, starts_at=_future())
        response = await client.post(END(assignment.id), headers=director,
                                     json={"reason": "programme finished"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["end_reason"] == "programme finished" and body["ended_at"]
        assert body["sessions_cancelled"] == [str(upcoming.id)]
        stored = await _get(system_db, MentoringSession, upcoming.id)
        assert (stored.status, stored.cancel_reason) == ("cancelled", "assignment_ended")
        [ended] = await outbox_events(system_db, type="assignment.ended",
                                      assignment_id=assignment.id)
        assert ended.data["end_reason"] == "programme finished"
        assert {mentor.id, mentee.id} <= set(ended.recipients)
        # The mentor no longer has them; the mentee waits from now.
        listed = await client.get("/api/v1/mentor/mentees", headers=factory.headers(mentor))
        assert listed.json()["items"] == []
        assert str(mentee.id) in await _waiting(client, director)

    async def test_ending_twice_is_409_and_unknown_is_404(
            self, client, factory, system_db, director):
        _, (mentee,) = await factory.mentor_with_mentees(1)
        assignment = await _assignment_of(system_db, mentee.id)
        assert (await client.post(END(assignment.id), headers=director,
                                  json={"reason": "done"})).status_code == 200
        again = await client.post(END(assignment.id), headers=director, json={"reason": "x"})
        assert again.status_code == 409 and again.json()["code"] == "invalid_transition"
        missing = await client.post(END(uuid.uuid4()), headers=director, json={"reason": "x"})
        assert missing.status_code == 404
        empty = await client.post(END(assignment.id), headers=director, json={"reason": ""})
        assert empty.status_code == 422

    async def test_concurrent_ends_end_it_once(self, client, factory, system_db, director):
        _, (mentee,) = await factory.mentor_with_mentees(1)
        assignment = await _assignment_of(system_db, mentee.id)
        responses = await asyncio.gather(*(
            client.post(END(assignment.id), headers=director, json={"reason": "r"})
            for _ in range(5)))
        assert sorted(r.status_code for r in responses) == [200, 409, 409, 409, 409]
        assert len(await outbox_events(system_db, type="assignment.ended",
                                       assignment_id=assignment.id)) == 1


class TestHistory:
    async def test_newest_first_with_pages(self, client, factory, system_db, director):
        first, (mentee,) = await factory.mentor_with_mentees(1)
        second, third = await factory.mentor(), await factory.mentor()
        for mentor in (second, third):
            assert (await client.post(ASSIGN, headers=director, json={
                "mentee_id": str(mentee.id), "mentor_id": str(mentor.id)})).status_code == 201
        page = await client.get(HISTORY(mentee.id), headers=director, params={"limit": 2})
        assert page.status_code == 200
        items = page.json()["items"]
        assert [i["mentor_id"] for i in items] == [str(third.id), str(second.id)]
        assert items[0]["ended_at"] is None and items[1]["end_reason"] == "reassigned"
        assert {"id", "mentor_id", "source", "started_at", "ended_at", "end_reason"} <= \
            items[0].keys()
        rest = await client.get(HISTORY(mentee.id), headers=director,
                                params={"cursor": page.json()["next_cursor"]})
        assert [i["mentor_id"] for i in rest.json()["items"]] == [str(first.id)]
        assert rest.json()["next_cursor"] is None

    async def test_unknown_mentee_is_404(self, client, director):
        assert (await client.get(HISTORY(uuid.uuid4()), headers=director)).status_code == 404


class TestWaiting:
    async def test_who_waits_since_when_and_why(self, client, factory, system_db, director):
        new = await factory.mentee()
        _, (leaving,) = await factory.mentor_with_mentees(1)
        placed = await factory.mentee()
        await factory.assign(await factory.mentor(), placed)
        gone = await factory.mentee(active=False)
        await factory.add(MatchingRun(
            job_id=f"test-{uuid.uuid4()}", status="done", finished_at=datetime.now(UTC),
            unplaced={str(new.id): "no_capacity"}))
        assignment = await _assignment_of(system_db, leaving.id)
        await client.post(END(assignment.id), headers=director, json={"reason": "moved"})

        waiting = await _waiting(client, director)
        assert waiting[str(new.id)]["last_match_reason"] == "no_capacity"
        ended = await _get(system_db, Assignment, assignment.id)
        assert datetime.fromisoformat(waiting[str(leaving.id)]["waiting_since"]) == \
            ended.ended_at
        assert str(placed.id) not in waiting and str(gone.id) not in waiting
        # Longest waiting first.
        order = list(waiting)
        assert order.index(str(new.id)) < order.index(str(leaving.id))

    async def test_assigning_takes_them_off_the_list(self, client, factory, director):
        mentee, mentor = await factory.mentee(), await factory.mentor()
        assert str(mentee.id) in await _waiting(client, director)
        await client.post(ASSIGN, headers=director, json={
            "mentee_id": str(mentee.id), "mentor_id": str(mentor.id)})
        assert str(mentee.id) not in await _waiting(client, director)

    async def test_pages_walk_the_list_once_with_a_large_run(self, client, factory, director):
        """Any page size walks the same list in the same order, the page that reaches the
        end has no cursor, and reasons come from a run whose map is large enough to be
        stored compressed out of line (read once per page, not once per row)."""
        mentees = [await factory.mentee() for _ in range(5)]
        unplaced = {str(uuid.uuid4()): "no_candidate" for _ in range(3000)}
        unplaced.update({str(m.id): f"reason-{i}" for i, m in enumerate(mentees)})
        await factory.add(MatchingRun(
            job_id=f"test-{uuid.uuid4()}", status="done", finished_at=datetime.now(UTC),
            unplaced=unplaced))
        whole = await client.get(WAITING, headers=director, params={"limit": 200})
        everyone = whole.json()["items"]
        assert whole.json()["next_cursor"] is None and len(everyone) < 200
        assert {i["mentee_id"]: i["last_match_reason"] for i in everyone
                if i["mentee_id"] in unplaced} == {
            str(m.id): f"reason-{i}" for i, m in enumerate(mentees)}
        for limit in (2, len(everyone), len(everyone) - 1):
            pages, cursor = [], None
            while True:
                body = (await client.get(WAITING, headers=director, params={
                    "limit": limit, **({"cursor": cursor} if cursor else {})})).json()
                pages.append(body["items"])
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            assert [i for page in pages for i in page] == everyone, limit
            assert all(0 < len(page) <= limit for page in pages), limit
        assert len(pages) == 2 and len(pages[-1]) == 1  # limit = everyone - 1

    async def test_forged_cursor_is_422(self, client, director):
        response = await client.get(WAITING, headers=director, params={"cursor": "eyJ3IjoxfQ"})
        assert response.status_code == 422


class TestDeactivate:
    async def test_a_mentee_loses_mentor_sessions_and_access(
            self, client, factory, system_db, service, director):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        assignment = await _assignment_of(system_db, mentee.id)
        upcoming = await factory.session(mentor, mentee, starts_at=_future())
        token = factory.headers(mentee)
        assert (await client.get("/api/v1/mentee/me", headers=token)).status_code == 200

        response = await client.post(DEACTIVATE(mentee.id), headers=service)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["changed"], body["active"]) == (True, False)
        assert body["assignments_ended"] == [str(assignment.id)]
        assert body["sessions_cancelled"] == [str(upcoming.id)]
        assert (await _get(system_db, Assignment, assignment.id)).end_reason == "deactivated"
        assert (await _get(system_db, MentoringSession, upcoming.id)).status == "cancelled"
        [event] = await outbox_events(system_db, type="user.deactivated", user_id=mentee.id)
        assert event.recipients == [mentee.id]
        assert str(mentee.id) not in await _waiting(client, director)
        await asyncio.sleep(0.3)  # AUTH_CACHE_SECONDS in tests (this process forgot already)
        assert (await client.get("/api/v1/mentee/me", headers=token)).status_code == 401

        again = await client.post(DEACTIVATE(mentee.id), headers=service)
        assert again.status_code == 200 and again.json()["changed"] is False
        assert len(await outbox_events(system_db, type="user.deactivated",
                                       user_id=mentee.id)) == 1

    async def test_a_mentor_loses_every_mentee(self, client, factory, system_db, director):
        mentor, mentees = await factory.mentor_with_mentees(3)
        upcoming = await factory.session(mentor, mentees[0], starts_at=_future())
        admin = factory.headers(await factory.user("admin"))
        response = await client.post(DEACTIVATE(mentor.id), headers=admin)
        assert response.status_code == 200
        assert len(response.json()["assignments_ended"]) == 3
        assert response.json()["sessions_cancelled"] == [str(upcoming.id)]
        waiting = await _waiting(client, director)
        assert {str(m.id) for m in mentees} <= waiting.keys()
        mentors = await client.get("/api/v1/director/mentors", headers=director,
                                   params={"limit": 200})
        assert str(mentor.id) not in {m["mentor_id"] for m in mentors.json()["items"]}

    async def test_roles_and_unknown(self, client, factory, director):
        mentee = await factory.mentee()
        for headers in (director, factory.headers(mentee)):
            assert (await client.post(DEACTIVATE(mentee.id), headers=headers)
                    ).status_code == 403
        service = await factory.role_headers("service")
        assert (await client.post(DEACTIVATE(uuid.uuid4()), headers=service)
                ).status_code == 404


class TestUpsertedLifecycle:
    def _user(self, user: User, **changes) -> dict:
        return {"email": f"u{user.id.hex}@example.org", "name": user.name, "role": user.role,
                **changes}

    async def test_active_false_then_true(self, client, factory, system_db, service, director):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        upcoming = await factory.session(mentor, mentee, starts_at=_future())
        off = await client.put(f"/api/v1/users/{mentee.id}", headers=service,
                               json=self._user(mentee, active=False))
        assert off.status_code == 200, off.text
        assert off.json()["active"] is False
        assert await _assignment_of(system_db, mentee.id) is None
        assert (await _get(system_db, MentoringSession, upcoming.id)).status == "cancelled"
        assert len(await outbox_events(system_db, type="user.deactivated",
                                       user_id=mentee.id)) == 1

        on = await client.put(f"/api/v1/users/{mentee.id}", headers=service,
                              json=self._user(mentee, active=True))
        assert on.json()["active"] is True and on.json()["deactivated_at"] is None
        assert await _assignment_of(system_db, mentee.id) is None  # no relationships back
        assert str(mentee.id) in await _waiting(client, director)
        await asyncio.sleep(0.3)
        assert (await client.get("/api/v1/mentee/me",
                                 headers=factory.headers(mentee))).status_code == 200

    async def test_the_same_through_an_inbound_event(self, client, factory, system_db,
                                                     service):
        _, (mentee,) = await factory.mentor_with_mentees(1)
        event = {"id": str(uuid.uuid4()), "type": "user.upserted",
                 "occurred_at": datetime.now(UTC).isoformat(),
                 "data": {"id": str(mentee.id), **self._user(mentee, active=False)}}
        response = await client.post("/api/v1/events", headers=service, json=event)
        assert response.status_code == 202, response.text
        assert await _assignment_of(system_db, mentee.id) is None
        assert not (await _get(system_db, User, mentee.id)).active

    async def test_a_mentee_who_becomes_a_mentor_leaves_their_mentor(
            self, client, factory, system_db, service):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        assignment = await _assignment_of(system_db, mentee.id)
        response = await client.put(f"/api/v1/users/{mentee.id}", headers=service,
                                    json=self._user(mentee, role="mentor"))
        assert response.status_code == 200, response.text
        ended = await _get(system_db, Assignment, assignment.id)
        assert (ended.ended_at is not None, ended.end_reason) == (True, "role_changed")
        listed = await client.get("/api/v1/mentor/mentees", headers=factory.headers(mentor))
        assert listed.json()["items"] == []

    async def test_a_mentor_who_stops_mentoring_leaves_their_mentees(
            self, client, factory, system_db, service):
        mentor, mentees = await factory.mentor_with_mentees(2)
        response = await client.put(f"/api/v1/users/{mentor.id}", headers=service,
                                    json=self._user(mentor, role="director"))
        assert response.status_code == 200, response.text
        for mentee in mentees:
            assert await _assignment_of(system_db, mentee.id) is None

    async def test_a_plain_update_keeps_relationships(self, client, factory, system_db,
                                                      service):
        _, (mentee,) = await factory.mentor_with_mentees(1)
        response = await client.put(f"/api/v1/users/{mentee.id}", headers=service,
                                    json=self._user(mentee, name="Renamed"))
        assert response.status_code == 200
        assert await _assignment_of(system_db, mentee.id) is not None


async def _waiting_since(system_db, mentee_id):
    async with system_db.transaction(None) as session:
        return await session.scalar(select(WaitingMentee.since).where(
            WaitingMentee.mentee_id == mentee_id))


async def test_waiting_since_follows_every_path(factory, system_db):
    """The triggers keep the waiting list right whoever writes (here: the system directly)."""
    mentee = await factory.mentee()
    assert await _waiting_since(system_db, mentee.id) is not None
    mentor = await factory.mentor()
    assignment = await factory.assign(mentor, mentee)
    assert await _waiting_since(system_db, mentee.id) is None
    ended_at = datetime.now(UTC)

    async def end(session):
        await session.execute(update(Assignment).where(Assignment.id == assignment.id)
                              .values(ended_at=ended_at, end_reason="test"))
    await factory.run(end)
    assert await _waiting_since(system_db, mentee.id) == ended_at

    async def promote(session):
        await session.execute(update(User).where(User.id == mentee.id).values(role="mentor"))
    await factory.run(promote)
    assert await _waiting_since(system_db, mentee.id) is None
