"""Reassignment with the mentee's sessions: cancelled or transferred (all or nothing)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.models import Assignment, MentoringSession, TimeOff
from tests.support.workspace_support import outbox_events

ASSIGN = "/api/v1/director/assignments"
MONDAY_MORNINGS = {"timezone": "UTC", "windows": [{"weekday": 0, "start": "09:00",
                                                    "end": "12:00"}]}


@pytest.fixture
async def director(factory):
    return factory.headers(await factory.user("director"))


def _next_weekday(weekday: int, hour: int, weeks: int = 2) -> datetime:
    today = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    days = (weekday - today.weekday()) % 7 + 7 * weeks
    return today + timedelta(days=days)


async def _session(system_db, session_id) -> MentoringSession:
    async with system_db.transaction(None) as session:
        return await session.get_one(MentoringSession, session_id)


async def _active_mentor(system_db, mentee_id):
    async with system_db.transaction(None) as session:
        return await session.scalar(select(Assignment.mentor_id).where(
            Assignment.mentee_id == mentee_id, Assignment.ended_at.is_(None)))


async def _pair_with_sessions(factory, n: int = 2):
    """Mentor A with mentee P: `n` future sessions, one past (completed) session."""
    a, (p,) = await factory.mentor_with_mentees(1)
    future = [await factory.session(a, p, starts_at=_next_weekday(0, 9 + i))
              for i in range(n)]
    past = await factory.session(a, p, starts_at=datetime.now(UTC) - timedelta(days=3),
                                 status="completed")
    return a, p, future, past


async def _refused(client, director, mentee, mentor) -> dict:
    response = await client.post(ASSIGN, headers=director,
                                 json=_body(mentee, mentor, sessions="transfer"))
    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["code"] == "transfer_conflict"
    return problem


async def _nothing_moved(system_db, mentee, mentor, rows) -> None:
    assert await _active_mentor(system_db, mentee.id) == mentor.id
    for row in rows:
        stored = await _session(system_db, row.id)
        assert (stored.status, stored.mentor_id, stored.meeting_url) == (
            "scheduled", mentor.id, row.meeting_url)
    assert await outbox_events(system_db, type="session.rescheduled",
                               mentee_id=mentee.id) == []


def _body(mentee, mentor, **extra):
    return {"mentee_id": str(mentee.id), "mentor_id": str(mentor.id), **extra}


class TestCancel:
    async def test_reassignment_cancels_future_sessions_by_default(
            self, client, factory, system_db, director):
        a, p, future, past = await _pair_with_sessions(factory)
        b = await factory.mentor()
        response = await client.post(ASSIGN, headers=director, json=_body(p, b))
        assert response.status_code == 201, response.text
        body = response.json()
        assert sorted(body["sessions_cancelled"]) == sorted(str(s.id) for s in future)
        assert body["sessions_transferred"] == []
        for row in future:
            stored = await _session(system_db, row.id)
            assert (stored.status, stored.cancel_reason, stored.mentor_id) == (
                "cancelled", "reassigned", a.id)
            [event] = await outbox_events(system_db, type="session.cancelled",
                                          session_id=row.id)
            assert event.data["reason"] == "reassigned"
            assert set(event.recipients) == {a.id, p.id}
        assert (await _session(system_db, past.id)).status == "completed"  # history stays


class TestTransfer:
    async def test_sessions_move_to_the_new_mentor_with_a_new_link(
            self, client, factory, system_db, director):
        a, p, future, past = await _pair_with_sessions(factory)
        b = await factory.mentor()
        response = await client.post(ASSIGN, headers=director,
                                     json=_body(p, b, sessions="transfer"))
        assert response.status_code == 201, response.text
        assert sorted(response.json()["sessions_transferred"]) == sorted(
            str(s.id) for s in future)
        for row in future:
            stored = await _session(system_db, row.id)
            assert (stored.status, stored.mentor_id, stored.starts_at) == (
                "scheduled", b.id, row.starts_at)
            assert stored.meeting_url and stored.meeting_url != row.meeting_url
            assert stored.sequence == row.sequence + 1
            [event] = await outbox_events(system_db, type="session.rescheduled",
                                          session_id=row.id)
            assert set(event.recipients) == {a.id, b.id, p.id}
            assert event.data["previous_mentor_id"] == str(a.id)
            assert event.data["mentor_id"] == str(b.id)
            assert event.data["meeting_url"] == stored.meeting_url
        assert (await _session(system_db, past.id)).mentor_id == a.id
        # The old mentor no longer sees the moved sessions; the new one does.
        mine = await client.get("/api/v1/mentor/sessions", headers=factory.headers(b))
        assert {s["id"] for s in mine.json()["items"]} >= {str(s.id) for s in future}

    @pytest.mark.parametrize("conflict", ["outside_availability", "double_booking",
                                          "capacity_exceeded"])
    async def test_one_session_that_cannot_move_moves_none(
            self, client, factory, system_db, director, conflict):
        a, p, future, _ = await _pair_with_sessions(factory, n=2)
        if conflict == "outside_availability":
            # B works Monday 09:00-12:00: the 09:00 session fits, the 10:00 one too;
            # move the second one to a Tuesday first so it does not.
            b = await factory.mentor(mentor_availability=MONDAY_MORNINGS)
            tuesday = await factory.session(a, p, starts_at=_next_weekday(1, 15))
            future.append(tuesday)
        elif conflict == "double_booking":
            b, (other,) = await factory.mentor_with_mentees(1)
            await factory.session(b, other, starts_at=future[1].starts_at)
        else:
            b = await factory.mentor(mentor_capacity_weekly=2)
            other = await factory.mentee()
            await factory.assign(b, other)
            await factory.session(b, other, starts_at=future[0].starts_at + timedelta(hours=5))
        response = await client.post(ASSIGN, headers=director,
                                     json=_body(p, b, sessions="transfer"))
        assert response.status_code == 409, response.text
        problem = response.json()
        assert problem["code"] == "transfer_conflict"
        assert conflict in {c["reason"] for c in problem["conflicts"]}
        # Nothing changed: same mentor, every session where it was, no event.
        assert await _active_mentor(system_db, p.id) == a.id
        for row in future:
            stored = await _session(system_db, row.id)
            assert (stored.status, stored.mentor_id, stored.meeting_url) == (
                "scheduled", a.id, row.meeting_url)
        assert await outbox_events(system_db, type="assignment.ended", mentee_id=p.id) == []

    async def test_time_off_of_the_new_mentor_blocks_the_transfer(
            self, client, factory, system_db, director):
        a, p, future, _ = await _pair_with_sessions(factory, n=2)
        b = await factory.mentor()
        await factory.add(TimeOff(mentor_id=b.id, reason="conference",
                                  starts_at=future[1].starts_at + timedelta(minutes=15),
                                  ends_at=future[1].starts_at + timedelta(minutes=45)))
        problem = await _refused(client, director, p, b)
        assert [(c["session_id"], c["reason"]) for c in problem["conflicts"]] == [
            (str(future[1].id), "outside_availability")]
        assert "time off" in problem["conflicts"][0]["detail"]
        await _nothing_moved(system_db, p, a, future)

    async def test_the_new_mentors_buffer_binds_the_transfer(
            self, client, factory, system_db, director):
        a, p, future, _ = await _pair_with_sessions(factory, n=1)
        b, (other,) = await factory.mentor_with_mentees(1, mentor_buffer_minutes=30)
        # B's session ends 15 minutes before P's starts: no overlap, but inside B's buffer.
        await factory.session(b, other, starts_at=future[0].starts_at - timedelta(minutes=75))
        problem = await _refused(client, director, p, b)
        [conflict] = problem["conflicts"]
        assert conflict["reason"] == "double_booking"
        assert "30 minutes" in conflict["detail"]
        await _nothing_moved(system_db, p, a, future)

    async def test_sessions_moving_together_keep_the_buffer_between_them(
            self, client, factory, system_db, director):
        # A keeps no buffer: P's sessions at 09:00 and 10:00 touch. B keeps 15 minutes.
        a, p, future, _ = await _pair_with_sessions(factory, n=2)
        b = await factory.mentor(mentor_buffer_minutes=15)
        problem = await _refused(client, director, p, b)
        assert {c["session_id"] for c in problem["conflicts"]} == {str(s.id) for s in future}
        await _nothing_moved(system_db, p, a, future)

    async def test_minimum_notice_does_not_bind_a_transfer(
            self, client, factory, system_db, director):
        a, (p,) = await factory.mentor_with_mentees(1)
        soon = await factory.session(a, p, starts_at=(datetime.now(UTC) + timedelta(hours=3))
                                     .replace(second=0, microsecond=0))
        b = await factory.mentor(mentor_min_notice_hours=336, mentor_buffer_minutes=60)
        response = await client.post(ASSIGN, headers=director,
                                     json=_body(p, b, sessions="transfer"))
        assert response.status_code == 201, response.text
        assert response.json()["sessions_transferred"] == [str(soon.id)]
        assert (await _session(system_db, soon.id)).mentor_id == b.id

    async def test_transfer_without_sessions_is_a_plain_reassignment(
            self, client, factory, system_db, director):
        a, (p,) = await factory.mentor_with_mentees(1)
        b = await factory.mentor(mentor_availability=MONDAY_MORNINGS)
        response = await client.post(ASSIGN, headers=director,
                                     json=_body(p, b, sessions="transfer"))
        assert response.status_code == 201
        assert response.json()["previous_mentor_id"] == str(a.id)

    async def test_unknown_sessions_mode_is_422(self, client, factory, director):
        a, (p,) = await factory.mentor_with_mentees(1)
        response = await client.post(ASSIGN, headers=director,
                                     json=_body(p, a, sessions="keep"))
        assert response.status_code == 422


class TestInactive:
    async def test_a_deactivated_mentor_cannot_be_assigned(self, client, factory, director):
        mentor, mentee = await factory.mentor(active=False), await factory.mentee()
        response = await client.post(ASSIGN, headers=director, json=_body(mentee, mentor))
        assert response.status_code == 409
        assert response.json()["code"] == "user_inactive"

    async def test_unknown_mentee_is_404(self, client, factory, director):
        mentor = await factory.mentor()
        response = await client.post(ASSIGN, headers=director, json={
            "mentee_id": str(uuid.uuid4()), "mentor_id": str(mentor.id)})
        assert response.status_code == 404
