"""Booking rules, transitions, feedback, lists and who may see what (real Postgres, RLS)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from app.core.auth import Principal
from app.core.errors import Unprocessable
from app.models import Assignment, MentoringSession, SessionFeedback, WorkItem
from app.services.sessions.booking import book_session
from app.services.sessions.queries import upcoming_sessions
from app.services.sessions.video import JitsiProvider
from tests.support.session_helpers import SESSIONS, book, outbox_events, week_start


async def count_sessions(factory, **where) -> int:
    async def run(session):
        query = select(func.count()).select_from(MentoringSession)
        for key, value in where.items():
            query = query.where(getattr(MentoringSession, key) == value)
        return await session.scalar(query)

    return await factory.run(run)


class TestBookSession:
    async def test_books_with_a_meeting_link_and_writes_the_event(self, client, factory,
                                                                  settings):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        starts = week_start() + timedelta(days=1, hours=10)
        response = await book(client, factory.headers(mentor), mentee, starts, 45,
                              agenda="Portfolio review")
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["mentor_id"] == str(mentor.id) and body["mentee_id"] == str(mentee.id)
        assert datetime.fromisoformat(body["starts_at"]) == starts
        assert datetime.fromisoformat(body["ends_at"]) == starts + timedelta(minutes=45)
        assert (body["status"], body["duration_minutes"], body["sequence"]) == ("scheduled", 45, 0)
        assert body["agenda"] == "Portfolio review"
        prefix = f"{settings.video_base_url}/mentorship-"
        assert body["meeting_url"].startswith(prefix)
        assert len(body["meeting_url"]) - len(prefix) >= 21  # >= 128 random bits

        second = await book(client, factory.headers(mentor), mentee, starts + timedelta(hours=2))
        assert second.json()["meeting_url"] != body["meeting_url"]

        (event,) = await outbox_events(factory, body["id"])
        assert event.type == "session.scheduled" and event.refresh_priority == "high"
        assert set(event.recipients) == {mentor.id, mentee.id}
        assert event.data["meeting_url"] == body["meeting_url"]
        assert event.data["status"] == "scheduled"

    async def test_mentee_not_assigned_to_the_caller_is_404(self, client, factory):
        mentor, _ = await factory.mentor_with_mentees(1)
        _, (someone_elses,) = await factory.mentor_with_mentees(1)
        former = await factory.mentee()
        await factory.assign(mentor, former, ended_at=datetime.now(UTC))
        starts = week_start() + timedelta(hours=10)
        for mentee_id in (someone_elses.id, former.id, uuid.uuid4()):
            response = await book(client, factory.headers(mentor), mentee_id, starts)
            assert response.status_code == 404, response.text
            assert response.json()["code"] == "not_assigned"
        assert await count_sessions(factory, mentor_id=mentor.id) == 0

    @pytest.mark.parametrize("change", [
        {"starts_at": "2020-01-01T10:00:00+00:00"},
        {"starts_at": "2030-01-01T10:00:00"},  # naive: no offset
        {"starts_at": "2099-01-01T10:00:00+00:00"},  # beyond the booking horizon
        {"starts_at": "not a date"},
        {"duration_minutes": 14},
        {"duration_minutes": 241},
        {"duration_minutes": "sixty"},
        {"mentee_id": "not-a-uuid"},
        {"surprise": True},
    ])
    async def test_bad_input_is_422_and_writes_nothing(self, client, factory, change):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        payload = {"mentee_id": str(mentee.id),
                   "starts_at": (week_start() + timedelta(hours=10)).isoformat(),
                   "duration_minutes": 60, **change}
        response = await client.post(SESSIONS, json=payload, headers=factory.headers(mentor))
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert await count_sessions(factory, mentor_id=mentor.id) == 0

    async def test_service_refuses_a_naive_start(self, factory, app_db, settings):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        naive = (week_start() + timedelta(hours=10)).replace(tzinfo=None)
        with pytest.raises(Unprocessable):
            async with app_db.transaction(Principal(mentor.id, "mentor")) as session:
                await book_session(session, principal=Principal(mentor.id, "mentor"),
                                   settings=settings, video=JitsiProvider("https://x"),
                                   mentee_id=mentee.id, starts_at=naive, duration_minutes=60,
                                   agenda=None)

    async def test_missing_fields_are_422(self, client, factory):
        mentor, _ = await factory.mentor_with_mentees(1)
        response = await client.post(SESSIONS, json={}, headers=factory.headers(mentor))
        assert response.status_code == 422
        missing = {e["loc"][-1] for e in response.json()["errors"]}
        assert missing == {"mentee_id", "starts_at", "duration_minutes"}

    async def test_overlap_is_409_double_booking_back_to_back_is_fine(self, client, factory):
        mentor, (a, b) = await factory.mentor_with_mentees(2)
        headers = factory.headers(mentor)
        starts = week_start() + timedelta(days=2, hours=9)
        assert (await book(client, headers, a, starts, 60)).status_code == 201
        clash = await book(client, headers, b, starts + timedelta(minutes=30), 60)
        assert clash.status_code == 409
        assert clash.json()["code"] == "double_booking"
        assert "mentor" in clash.json()["detail"]
        assert (await book(client, headers, b, starts + timedelta(minutes=60), 60)).status_code \
            == 201
        assert (await book(client, headers, a, starts - timedelta(minutes=30), 30)).status_code \
            == 201

    async def test_cancelled_session_frees_its_slot(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        headers = factory.headers(mentor)
        starts = week_start() + timedelta(days=3, hours=9)
        first = (await book(client, headers, mentee, starts)).json()
        cancel = await client.patch(f"{SESSIONS}/{first['id']}", headers=headers,
                                    json={"status": "cancelled", "reason": "clash"})
        assert cancel.status_code == 200, cancel.text
        assert (await book(client, headers, mentee, starts)).status_code == 201

    async def test_mentee_busy_with_previous_mentor_is_refused_by_the_database(
            self, client, factory, system_db):
        old_mentor, (mentee,) = await factory.mentor_with_mentees(1)
        new_mentor = await factory.mentor()
        starts = week_start() + timedelta(days=1, hours=14)
        assert (await book(client, factory.headers(old_mentor), mentee, starts)).status_code \
            == 201

        async def reassign(session):  # what a director's reassignment does
            await session.execute(
                text("update assignments set ended_at = now(), end_reason = 'reassigned' "
                     "where mentee_id = :m and ended_at is null"), {"m": mentee.id})
            session.add(Assignment(mentor_id=new_mentor.id, mentee_id=mentee.id))

        await factory.run(reassign)
        clash = await book(client, factory.headers(new_mentor), mentee,
                           starts + timedelta(minutes=15), 30)
        assert clash.status_code == 409
        assert clash.json()["code"] == "double_booking"
        assert "mentee" in clash.json()["detail"]

        # Not an application check: the database itself refuses the row, even for the system.
        with pytest.raises(IntegrityError) as refused:
            async with system_db.transaction(None) as session:
                session.add(MentoringSession(
                    mentor_id=new_mentor.id, mentee_id=mentee.id, duration_minutes=30,
                    starts_at=starts, ends_at=starts + timedelta(minutes=30)))
        cause = refused.value.orig.__cause__
        assert (cause.sqlstate, cause.constraint_name) == ("23P01", "ex_sessions_mentee_overlap")

    async def test_weekly_capacity_counts_live_sessions_of_the_week(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1, mentor_capacity_weekly=2)
        headers = factory.headers(mentor)
        monday = week_start()
        first = (await book(client, headers, mentee, monday + timedelta(hours=9))).json()
        await book(client, headers, mentee, monday + timedelta(days=6, hours=22))  # Sunday
        full = await book(client, headers, mentee, monday + timedelta(days=3, hours=9))
        assert full.status_code == 409
        problem = full.json()
        assert problem["code"] == "capacity_exceeded"
        assert (problem["weekly_slots_used"], problem["weekly_slots_total"]) == (2, 2)
        # The next week is empty; a cancelled session frees its slot.
        assert (await book(client, headers, mentee, monday + timedelta(days=7, hours=9))
                ).status_code == 201
        await client.patch(f"{SESSIONS}/{first['id']}", headers=headers,
                           json={"status": "cancelled"})
        assert (await book(client, headers, mentee, monday + timedelta(days=3, hours=9))
                ).status_code == 201

    async def test_the_week_is_the_mentor_local_iso_week(self, client, factory):
        zone = ZoneInfo("America/Los_Angeles")
        availability = {"timezone": "America/Los_Angeles", "windows": [
            {"weekday": d, "start": "00:00", "end": "24:00"} for d in range(7)]}
        mentor, (mentee,) = await factory.mentor_with_mentees(
            1, mentor_capacity_weekly=1, mentor_availability=availability)
        headers = factory.headers(mentor)
        monday = week_start(zone=zone)
        sunday_night = monday + timedelta(days=6, hours=22)  # Monday 05:00/06:00 UTC
        next_monday = monday + timedelta(days=7, hours=10)  # same UTC ISO week as above
        assert sunday_night.astimezone(UTC).isocalendar()[1] \
            == next_monday.astimezone(UTC).isocalendar()[1]
        assert (await book(client, headers, mentee, sunday_night)).status_code == 201
        assert (await book(client, headers, mentee, next_monday)).status_code == 201
        third = await book(client, headers, mentee, monday + timedelta(days=2, hours=10))
        assert third.json()["code"] == "capacity_exceeded"

    async def test_outside_availability_is_409(self, client, factory):
        availability = {"timezone": "Europe/Berlin",
                        "windows": [{"weekday": 1, "start": "09:00", "end": "12:00"}]}
        mentor, (mentee,) = await factory.mentor_with_mentees(
            1, mentor_availability=availability)
        headers = factory.headers(mentor)
        tuesday = week_start(zone=ZoneInfo("Europe/Berlin")) + timedelta(days=1)
        inside = await book(client, headers, mentee, tuesday + timedelta(hours=11), 60)
        assert inside.status_code == 201, inside.text
        for starts, minutes in [(tuesday + timedelta(hours=11, minutes=30), 60),  # runs over
                                (tuesday + timedelta(hours=8, minutes=45), 30),  # starts early
                                (tuesday + timedelta(days=1, hours=10), 30)]:  # Wednesday
            response = await book(client, headers, mentee, starts, minutes)
            assert response.status_code == 409, response.text
            assert response.json()["code"] == "outside_availability"

    @pytest.mark.parametrize("stored", [
        {"timezone": "UTC", "windows": []},
        {"timezone": "Mars/Base", "windows": [{"weekday": 0, "start": "00:00", "end": "24:00"}]},
        {"windows": "every day"},
    ])
    async def test_mentor_without_valid_windows_cannot_be_booked(self, client, factory,
                                                                 stored):
        mentor, (mentee,) = await factory.mentor_with_mentees(1, mentor_availability=stored)
        response = await book(client, factory.headers(mentor), mentee,
                              week_start() + timedelta(hours=10))
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "outside_availability"


class TestUpdateSession:
    async def _booked(self, client, factory, **mentor_fields):
        mentor, (mentee,) = await factory.mentor_with_mentees(1, **mentor_fields)
        headers = factory.headers(mentor)
        starts = week_start() + timedelta(days=1, hours=10)
        body = (await book(client, headers, mentee, starts)).json()
        return mentor, mentee, headers, body

    async def test_reschedule_moves_the_session_and_raises_sequence(self, client, factory):
        mentor, mentee, headers, body = await self._booked(client, factory)
        new_start = datetime.fromisoformat(body["starts_at"]) + timedelta(days=1)
        response = await client.patch(f"{SESSIONS}/{body['id']}", headers=headers, json={
            "starts_at": new_start.isoformat(), "duration_minutes": 90})
        assert response.status_code == 200, response.text
        moved = response.json()
        assert datetime.fromisoformat(moved["starts_at"]) == new_start
        assert datetime.fromisoformat(moved["ends_at"]) == new_start + timedelta(minutes=90)
        assert (moved["sequence"], moved["status"]) == (1, "scheduled")
        assert moved["meeting_url"] == body["meeting_url"]
        again = await client.patch(f"{SESSIONS}/{body['id']}", headers=headers,
                                   json={"duration_minutes": 30})
        assert again.json()["sequence"] == 2
        events = await outbox_events(factory, body["id"])
        assert [e.type for e in events] == ["session.scheduled", "session.rescheduled",
                                            "session.rescheduled"]
        assert datetime.fromisoformat(events[1].data["previous_starts_at"]) \
            == datetime.fromisoformat(body["starts_at"])
        assert events[1].data["previous_duration_minutes"] == 60
        assert set(events[1].recipients) == {mentor.id, mentee.id}

    async def test_reschedule_rechecks_every_rule(self, client, factory):
        mentor, mentee, headers, body = await self._booked(
            client, factory, mentor_capacity_weekly=2)
        starts = datetime.fromisoformat(body["starts_at"])
        other = (await book(client, headers, mentee, starts + timedelta(hours=3))).json()
        url = f"{SESSIONS}/{body['id']}"
        overlap = await client.patch(url, headers=headers, json={
            "starts_at": (starts + timedelta(hours=2, minutes=30)).isoformat()})
        assert overlap.json()["code"] == "double_booking"
        # Moving within its own full week is fine (it does not count itself)...
        assert (await client.patch(url, headers=headers, json={
            "starts_at": (starts + timedelta(days=2)).isoformat()})).status_code == 200
        # ...into another week that is full is not.
        next_week = starts + timedelta(days=7)
        await book(client, headers, mentee, next_week)
        await book(client, headers, mentee, next_week + timedelta(hours=2))
        full = await client.patch(url, headers=headers, json={
            "starts_at": (next_week + timedelta(hours=4)).isoformat()})
        assert full.json()["code"] == "capacity_exceeded"
        past = await client.patch(url, headers=headers, json={
            "starts_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()})
        assert past.status_code == 422
        await factory.run(lambda s, **_: s.execute(text(
            "update users set mentor_availability = "
            "'{\"timezone\": \"UTC\", \"windows\": [{\"weekday\": 0, \"start\": \"09:00\", "
            "\"end\": \"10:00\"}]}' where id = :id"), {"id": mentor.id}))
        outside = await client.patch(f"{SESSIONS}/{other['id']}", headers=headers,
                                     json={"duration_minutes": 30})
        assert outside.json()["code"] == "outside_availability"
        # Nothing of the refused changes was written.
        current = (await client.get(url, headers=headers)).json()
        assert current["sequence"] == 1

    async def test_reschedule_after_the_mentee_left_is_404(self, client, factory):
        mentor, mentee, headers, body = await self._booked(client, factory)
        await factory.run(lambda s, **_: s.execute(text(
            "update assignments set ended_at = now() where mentee_id = :m"), {"m": mentee.id}))
        response = await client.patch(f"{SESSIONS}/{body['id']}", headers=headers,
                                      json={"duration_minutes": 30})
        assert response.status_code == 404
        assert response.json()["code"] == "not_assigned"

    async def test_cancel_then_no_further_transition(self, client, factory):
        mentor, mentee, headers, body = await self._booked(client, factory)
        url = f"{SESSIONS}/{body['id']}"
        response = await client.patch(url, headers=headers,
                                      json={"status": "cancelled", "reason": "Mentor ill"})
        assert response.status_code == 200, response.text
        cancelled = response.json()
        assert (cancelled["status"], cancelled["cancel_reason"], cancelled["sequence"]) == (
            "cancelled", "Mentor ill", 1)
        for change in ({"status": "cancelled"}, {"status": "completed"}, {"status": "no_show"},
                       {"status": "scheduled"}, {"duration_minutes": 30}):
            refused = await client.patch(url, headers=headers, json=change)
            assert refused.status_code == 409, (change, refused.text)
            assert refused.json()["code"] == "invalid_transition"
        events = await outbox_events(factory, body["id"])
        assert [e.type for e in events] == ["session.scheduled", "session.cancelled"]
        assert events[1].data["reason"] == "Mentor ill"

    async def test_complete_only_after_start(self, client, factory):
        mentor, mentee, headers, body = await self._booked(client, factory)
        early = await client.patch(f"{SESSIONS}/{body['id']}", headers=headers,
                                   json={"status": "completed"})
        assert early.status_code == 409
        assert early.json()["code"] == "invalid_transition"

    @pytest.mark.parametrize("outcome", ["completed", "no_show"])
    async def test_complete_or_no_show_emits_and_opens_a_followup(self, client, factory,
                                                                   outcome):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        row = await factory.session(mentor, mentee,
                                    starts_at=datetime.now(UTC) - timedelta(minutes=70))
        headers = factory.headers(mentor)
        response = await client.patch(f"{SESSIONS}/{row.id}", headers=headers, json={
            "status": outcome, "mentor_notes": "notes"})
        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["mentor_notes"]) == (outcome, "notes")
        (event,) = await outbox_events(factory, row.id)
        assert event.type == "session.completed" and event.data["status"] == outcome
        assert set(event.recipients) == {mentor.id, mentee.id}

        async def followups(session):
            return list(await session.scalars(select(WorkItem).where(
                WorkItem.source_key == f"session.completed:{row.id}")))

        (item,) = await factory.run(followups)
        assert (item.kind, item.priority, item.mentee_id) == ("session_followup", "low",
                                                              mentee.id)
        again = await client.patch(f"{SESSIONS}/{row.id}", headers=headers,
                                   json={"status": "cancelled"})
        assert again.json()["code"] == "invalid_transition"

    @pytest.mark.parametrize("change", [
        {},
        {"status": "done"},
        {"status": "cancelled", "starts_at": "2030-01-01T10:00:00+00:00"},
        {"status": "completed", "reason": "why"},
        {"status": "cancelled", "mentor_notes": "n"},
        {"duration_minutes": 5},
        {"agenda": "not editable here"},
    ])
    async def test_malformed_changes_are_422(self, client, factory, change):
        mentor, mentee, headers, body = await self._booked(client, factory)
        response = await client.patch(f"{SESSIONS}/{body['id']}", headers=headers, json=change)
        assert response.status_code == 422, response.text

    async def test_concurrent_cancel_and_complete_settle_on_one(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        row = await factory.session(mentor, mentee,
                                    starts_at=datetime.now(UTC) - timedelta(minutes=30))
        headers = factory.headers(mentor)
        responses = await asyncio.gather(*(
            client.patch(f"{SESSIONS}/{row.id}", headers=headers, json={"status": status})
            for status in ["cancelled", "completed", "no_show"] * 4))
        assert sorted(r.status_code for r in responses) == [200] + [409] * 11
        assert len(await outbox_events(factory, row.id)) == 1


class TestVisibility:
    async def test_another_mentors_session_is_404_on_every_route(self, client, factory):
        owner, (mentee,) = await factory.mentor_with_mentees(1)
        row = await factory.session(owner, mentee,
                                    starts_at=datetime.now(UTC) - timedelta(minutes=90))
        intruder, (own_mentee,) = await factory.mentor_with_mentees(1)
        headers = factory.headers(intruder)
        url = f"{SESSIONS}/{row.id}"
        later = (week_start() + timedelta(hours=10)).isoformat()
        attempts = [client.get(url, headers=headers)] + [
            client.patch(url, headers=headers, json=change)
            for change in ({"starts_at": later}, {"duration_minutes": 30},
                           {"status": "cancelled"}, {"status": "completed"},
                           {"status": "no_show"})]
        for response in await asyncio.gather(*attempts):
            assert response.status_code == 404, response.text
            assert response.json()["code"] == "not_found"
        listed = (await client.get(SESSIONS, headers=headers)).json()["items"]
        assert all(item["id"] != str(row.id) for item in listed)
        unknown = await client.get(f"{SESSIONS}/{uuid.uuid4()}", headers=headers)
        assert unknown.status_code == 404
        # Another mentee's session: 404 for feedback too.
        other_mentee_headers = factory.headers(own_mentee)
        feedback = await client.post(f"/api/v1/mentee/sessions/{row.id}/feedback",
                                     headers=other_mentee_headers, json={"rating": 5})
        assert feedback.status_code == 404
        assert (await count_sessions(factory, id=row.id, status="scheduled")) == 1

    async def test_wrong_roles_are_403_and_no_token_401(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        director = await factory.user("director")
        row = await factory.session(mentor, mentee)
        url = f"{SESSIONS}/{row.id}"
        body = {"mentee_id": str(mentee.id), "duration_minutes": 60,
                "starts_at": (week_start() + timedelta(hours=10)).isoformat()}
        profile = {"mentor_capacity_weekly": 5, "mentor_max_mentees": 5,
                   "mentor_specialties": [], "mentor_availability": {"timezone": "UTC"}}
        mentee_h, mentor_h = factory.headers(mentee), factory.headers(mentor)
        calls = {
            "book": lambda h: client.post(SESSIONS, headers=h, json=body),
            "list": lambda h: client.get(SESSIONS, headers=h),
            "get": lambda h: client.get(url, headers=h),
            "patch": lambda h: client.patch(url, headers=h, json={"status": "cancelled"}),
            "profile": lambda h: client.get("/api/v1/mentor/profile", headers=h),
            "put_profile": lambda h: client.put("/api/v1/mentor/profile", headers=h,
                                                json=profile),
        }
        for name, call in calls.items():
            for headers in (mentee_h, factory.headers(director)):
                response = await call(headers)
                assert response.status_code == 403, (name, response.text)
                assert response.json()["code"] == "wrong_role"
            assert (await call({})).status_code == 401, name
        for response in [
            await client.get("/api/v1/mentee/sessions", headers=mentor_h),
            await client.post(f"/api/v1/mentee/sessions/{row.id}/feedback", headers=mentor_h,
                              json={"rating": 5}),
            await client.get("/api/v1/calendar.ics", headers=factory.headers(director)),
        ]:
            assert response.status_code == 403
        assert (await count_sessions(factory, id=row.id, status="scheduled")) == 1


class TestLists:
    async def test_mentor_list_filters_by_window_and_pages(self, client, factory):
        mentor, (a, b) = await factory.mentor_with_mentees(2, mentor_capacity_weekly=50)
        headers = factory.headers(mentor)
        monday = week_start()
        starts = [monday + timedelta(days=d, hours=h) for d in range(3) for h in (9, 11, 13)]
        for i, at in enumerate(starts):
            assert (await book(client, headers, (a, b)[i % 2], at)).status_code == 201
        seen, cursor = [], None
        while True:
            params = {"limit": 4, "from": (monday + timedelta(hours=10)).isoformat(),
                      "to": (monday + timedelta(days=2, hours=11)).isoformat()}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get(SESSIONS, headers=headers, params=params)).json()
            seen += [datetime.fromisoformat(item["starts_at"]) for item in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == [at for at in starts
                        if monday + timedelta(hours=10) <= at < monday + timedelta(days=2,
                                                                                   hours=11)]
        only_b = (await client.get(SESSIONS, headers=headers,
                                   params={"mentee_id": str(b.id)})).json()["items"]
        assert {item["mentee_id"] for item in only_b} == {str(b.id)} and len(only_b) == 4

    @pytest.mark.parametrize("params", [
        {"from": "2030-01-01T00:00:00"},  # naive
        {"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"},
        {"cursor": "garbage!"},
        {"cursor": "eyJ4IjoxfQ"},  # valid base64 JSON, not ours
        {"limit": 0},
        {"limit": 201},
        {"status": "done"},
    ])
    async def test_bad_list_queries_are_422(self, client, factory, params):
        mentor = await factory.mentor()
        response = await client.get(SESSIONS, headers=factory.headers(mentor), params=params)
        assert response.status_code == 422, response.text

    async def test_empty_cursor_is_the_first_page(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        await factory.session(mentor, mentee)
        response = await client.get(SESSIONS, headers=factory.headers(mentor),
                                    params={"cursor": ""})
        assert response.status_code == 200 and len(response.json()["items"]) == 1

    async def test_mentee_sees_own_sessions_with_any_mentor(self, client, factory):
        old, (mentee,) = await factory.mentor_with_mentees(1)
        other_mentee = await factory.mentee()
        await factory.assign(old, other_mentee)
        past = await factory.session(old, mentee, status="completed",
                                     starts_at=datetime.now(UTC) - timedelta(days=3))
        await factory.session(old, other_mentee)
        mentee_h = factory.headers(mentee)
        await client.post(f"/api/v1/mentee/sessions/{past.id}/feedback", headers=mentee_h,
                          json={"rating": 4, "comment": "useful"})
        upcoming = await factory.session(old, mentee, starts_at=datetime.now(UTC)
                                         + timedelta(days=2))
        items = (await client.get("/api/v1/mentee/sessions", headers=mentee_h)).json()["items"]
        assert [(i["id"], i["feedback_given"]) for i in items] == [
            (str(past.id), True), (str(upcoming.id), False)]
        assert "mentor_notes" not in items[0]

    async def test_upcoming_sessions_service(self, factory, app_db):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        now = datetime.now(UTC)
        await factory.session(mentor, mentee, starts_at=now - timedelta(days=2),
                              status="completed")
        running = await factory.session(mentor, mentee, starts_at=now - timedelta(minutes=30))
        await factory.session(mentor, mentee, starts_at=now + timedelta(days=1),
                              status="cancelled")
        later = [await factory.session(mentor, mentee, starts_at=now + timedelta(days=d))
                 for d in (3, 2, 4)]
        async with app_db.transaction(Principal(mentee.id, "mentee")) as session:
            upcoming = await upcoming_sessions(session, mentee_id=mentee.id, limit=3)
        assert [s.id for s in upcoming] == [running.id, later[1].id, later[0].id]
        assert all(s.meeting_url for s in upcoming)


class TestFeedback:
    async def test_once_per_completed_session(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        done = await factory.session(mentor, mentee, status="completed",
                                     starts_at=datetime.now(UTC) - timedelta(days=1))
        headers = factory.headers(mentee)
        url = f"/api/v1/mentee/sessions/{done.id}/feedback"
        response = await client.post(url, headers=headers,
                                     json={"rating": 5, "comment": "Great"})
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["rating"], body["comment"], body["mentor_id"]) == (5, "Great",
                                                                        str(mentor.id))
        again = await client.post(url, headers=headers, json={"rating": 1})
        assert again.status_code == 409 and again.json()["code"] == "feedback_exists"

    @pytest.mark.parametrize("status", ["scheduled", "cancelled", "no_show"])
    async def test_not_completed_is_409(self, client, factory, status):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        row = await factory.session(mentor, mentee, status=status,
                                    starts_at=datetime.now(UTC) - timedelta(days=1))
        response = await client.post(f"/api/v1/mentee/sessions/{row.id}/feedback",
                                     headers=factory.headers(mentee), json={"rating": 3})
        assert response.status_code == 409
        assert response.json()["code"] == "session_not_completed"

    @pytest.mark.parametrize("body", [{"rating": 0}, {"rating": 6}, {"comment": "no rating"},
                                      {"rating": "five"}, {"rating": 3, "comment": "x" * 4001}])
    async def test_bad_feedback_is_422(self, client, factory, body):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        row = await factory.session(mentor, mentee, status="completed",
                                    starts_at=datetime.now(UTC) - timedelta(days=1))
        response = await client.post(f"/api/v1/mentee/sessions/{row.id}/feedback",
                                     headers=factory.headers(mentee), json=body)
        assert response.status_code == 422

    async def test_concurrent_feedback_is_stored_once(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        row = await factory.session(mentor, mentee, status="completed",
                                    starts_at=datetime.now(UTC) - timedelta(days=1))
        headers = factory.headers(mentee)
        responses = await asyncio.gather(*(
            client.post(f"/api/v1/mentee/sessions/{row.id}/feedback", headers=headers,
                        json={"rating": r}) for r in (1, 2, 3, 4, 5, 1, 2, 3)))
        assert sorted(r.status_code for r in responses) == [201] + [409] * 7
        assert {r.json()["code"] for r in responses if r.status_code == 409} \
            == {"feedback_exists"}

        async def stored(session):
            return await session.scalar(select(func.count()).select_from(SessionFeedback)
                                        .where(SessionFeedback.session_id == row.id))

        assert await factory.run(stored) == 1


class TestCapacityCheckAfterBooking:
    async def test_booking_and_reschedule_enqueue_the_deferred_capacity_check(
            self, client, factory, settings, redis):
        from app.core.redis import queue_name
        from tests.support.session_helpers import book, week_start

        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        # One job per mentor and day of the session's start: it checks that session's week.
        day = week_start().date().isoformat()
        job_id = f"capacity-check:{mentor.id}:{day}"
        job_key = f"{settings.redis_prefix}arq:job:{job_id}"  # arq's key, under the prefix
        response = await book(client, factory.headers(mentor), mentee,
                              week_start() + timedelta(hours=10))
        assert response.status_code == 201, response.text
        assert await redis.exists(job_key)  # queued, deferred by CAPACITY_CHECK_DELAY_SECONDS
        queued = await redis.zscore(queue_name(settings), job_id)
        assert queued is not None

        # A reschedule to another day queues that day's check (the same day's is still
        # waiting: app/core/jobqueue.py remembers it and sends nothing).
        next_day = (week_start() + timedelta(days=1)).date().isoformat()
        next_key = f"{settings.redis_prefix}arq:job:capacity-check:{mentor.id}:{next_day}"
        moved = await client.patch(f"/api/v1/mentor/sessions/{response.json()['id']}",
                                   headers=factory.headers(mentor),
                                   json={"starts_at": (week_start() + timedelta(days=1, hours=12))
                                         .isoformat()})
        assert moved.status_code == 200, moved.text
        assert await redis.exists(next_key)
