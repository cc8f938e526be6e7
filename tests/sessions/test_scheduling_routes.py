"""Slots, mentee booking / reschedule / cancel, buffers, minimum notice and time off, through
the real routes (RLS applies: the mentee's view of the mentor's calendar comes only through
the scheduling functions)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.models import OutboxEvent
from tests.support.session_helpers import book, week_start

MENTEE_SLOTS = "/api/v1/mentee/slots"
MENTEE_SESSIONS = "/api/v1/mentee/sessions"
TIME_OFF = "/api/v1/mentor/time-off"


def mentor_slots(mentee) -> str:
    return f"/api/v1/mentor/mentees/{mentee.id}/slots"


def window(start: datetime, days: int = 7, duration: int = 60) -> dict:
    return {"from": start.isoformat(), "to": (start + timedelta(days=days)).isoformat(),
            "duration_minutes": duration}


def starts(response) -> list[datetime]:
    assert response.status_code == 200, response.text
    return [datetime.fromisoformat(s["starts_at"]) for s in response.json()["slots"]]


async def mentee_book(client, factory, mentee, at: datetime, duration: int = 60):
    return await client.post(MENTEE_SESSIONS, headers=factory.headers(mentee), json={
        "starts_at": at.isoformat(), "duration_minutes": duration, "agenda": "CV review"})


async def events_of(factory, session_id) -> list[OutboxEvent]:
    async def load(session):
        return list(await session.scalars(
            select(OutboxEvent).where(OutboxEvent.data["session_id"].astext == str(session_id))
            .order_by(OutboxEvent.created_at)))
    return await factory.run(load)


NINE_TO_FIVE = {"timezone": "UTC", "windows": [
    {"weekday": d, "start": "09:00", "end": "17:00"} for d in range(5)]}


class TestSlots:
    async def test_mentee_without_mentor_gets_409_no_mentor(self, client, factory):
        mentee = await factory.mentee()
        for response in (
            await client.get(MENTEE_SLOTS, headers=factory.headers(mentee)),
            await mentee_book(client, factory, mentee, week_start() + timedelta(hours=10)),
        ):
            assert response.status_code == 409
            assert response.json()["code"] == "no_mentor"

    async def test_range_and_duration_are_validated(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        headers = factory.headers(mentee)
        start = week_start()
        for params in (window(start, days=32), {**window(start), "to": start.isoformat()},
                       window(start, duration=10), window(start, duration=241),
                       {"from": "2027-01-01T10:00:00", "to": "2027-01-02T10:00:00+00:00"}):
            response = await client.get(MENTEE_SLOTS, headers=headers, params=params)
            assert response.status_code == 422, params
            assert response.json()["code"] == "validation_error"
        assert (await client.get(MENTEE_SLOTS, headers=headers,
                                 params=window(start, days=31))).status_code == 200

    async def test_far_dates_and_bad_text_are_never_500(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        headers = factory.headers(mentee)
        for params, status in (
            ({"from": "0001-01-01T00:00:00+00:00", "to": "0001-01-05T00:00:00+00:00"}, 200),
            ({"from": "9999-12-30T00:00:00+00:00"}, 422),
            ({"from": "9999-12-01T00:00:00+00:00", "to": "9999-12-30T00:00:00+00:00"}, 200),
        ):
            response = await client.get(MENTEE_SLOTS, headers=headers, params=params)
            assert response.status_code == status, (params, response.text)
            if status == 200:
                assert response.json()["slots"] == []
        at = week_start(3) + timedelta(hours=10)
        for agenda in (r"nul \u0000 byte", r"lone \ud800 surrogate"):  # JSON escapes
            body = ('{"starts_at": "' + at.isoformat() + '", "duration_minutes": 60, '
                    '"agenda": "' + agenda + '"}')
            response = await client.post(MENTEE_SESSIONS, content=body.encode(), headers={
                **headers, "Content-Type": "application/json"})
            assert response.status_code == 422, response.text
        response = await client.post(TIME_OFF, headers=factory.headers(mentor), json={
            "starts_at": at.isoformat(), "ends_at": (at + timedelta(hours=1)).isoformat(),
            "reason": "a\x00b"})
        assert response.status_code == 422

    async def test_mentor_slots_only_for_their_own_mentees(self, client, factory):
        mentor, _ = await factory.mentor_with_mentees(1)
        stranger = await factory.mentee()
        response = await client.get(mentor_slots(stranger), headers=factory.headers(mentor))
        assert response.status_code == 404
        assert response.json()["code"] == "not_assigned"
        # Other roles are refused by role.
        assert (await client.get(MENTEE_SLOTS, headers=factory.headers(mentor))
                ).status_code == 403

    async def test_windows_in_the_mentors_zone_across_dst(self, client, factory):
        zone = ZoneInfo("America/New_York")
        mentor, (mentee,) = await factory.mentor_with_mentees(1, mentor_availability={
            "timezone": "America/New_York",
            "windows": [{"weekday": 6, "start": "09:00", "end": "10:00"}]})
        # Sundays around the next US DST change: 09:00 local is 13:00Z or 14:00Z.
        day = datetime.now(UTC).date() + timedelta(days=8)
        offsets = {}
        for _ in range(400):
            day += timedelta(days=1)
            if day.weekday() == 6:
                local = datetime(day.year, day.month, day.day, 9, tzinfo=zone)
                offsets.setdefault(local.utcoffset(), local)
            if len(offsets) == 2:
                break
        for local in offsets.values():
            got = starts(await client.get(
                MENTEE_SLOTS, headers=factory.headers(mentee),
                params=window(local.astimezone(UTC) - timedelta(hours=12), days=1)))
            assert got == [local.astimezone(UTC)]
            assert (await mentee_book(client, factory, mentee, got[0])).status_code == 201

    async def test_offered_slot_books_then_is_gone_and_events_reach_both(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1, mentor_availability=NINE_TO_FIVE)
        monday = week_start(3)
        offered = starts(await client.get(MENTEE_SLOTS, headers=factory.headers(mentee),
                                          params=window(monday, days=1)))
        assert offered[0] == monday + timedelta(hours=9)
        assert offered[-1] == monday + timedelta(hours=16)
        assert all(s.minute % 15 == 0 for s in offered) and len(offered) == 29
        response = await mentee_book(client, factory, mentee, offered[4])
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["mentor_id"] == str(mentor.id) and body["meeting_url"]
        after = starts(await client.get(mentor_slots(mentee), headers=factory.headers(mentor),
                                        params=window(monday, days=1)))
        assert not any(offered[4] - timedelta(minutes=59) <= s < offered[4] + timedelta(hours=1)
                       for s in after)
        (event,) = await events_of(factory, body["id"])
        assert event.type == "session.scheduled"
        assert set(event.recipients) == {mentor.id, mentee.id}
        assert event.data["changed_by_role"] == "mentee"

    async def test_weekly_capacity_per_iso_week_and_next_week(self, client, factory):
        mentor, (a, b) = await factory.mentor_with_mentees(
            2, mentor_capacity_weekly=2, mentor_availability=NINE_TO_FIVE)
        monday = week_start(3)
        next_monday = monday + timedelta(days=7)
        for i, mentee in enumerate((a, b)):
            assert (await book(client, factory.headers(mentor), mentee,
                               next_monday + timedelta(days=i, hours=10))).status_code == 201
        got = starts(await client.get(MENTEE_SLOTS, headers=factory.headers(a),
                                      params=window(monday, days=14)))
        assert got and all(s < next_monday for s in got)  # next week is full
        response = await mentee_book(client, factory, a, next_monday + timedelta(days=3,
                                                                                hours=9))
        assert response.status_code == 409 and response.json()["code"] == "capacity_exceeded"

    async def test_the_mentees_sessions_with_someone_else_block(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1, mentor_availability=NINE_TO_FIVE)
        other = await factory.mentor()
        monday = week_start(3)
        await factory.session(other, mentee, starts_at=monday + timedelta(hours=12))
        got = starts(await client.get(mentor_slots(mentee), headers=factory.headers(mentor),
                                      params=window(monday, days=1)))
        assert monday + timedelta(hours=11) in got and monday + timedelta(hours=13) in got
        assert not any(monday + timedelta(hours=11) < s < monday + timedelta(hours=13)
                       for s in got)
        response = await book(client, factory.headers(mentor), mentee,
                              monday + timedelta(hours=12, minutes=30), 30)
        assert response.status_code == 409 and response.json()["code"] == "double_booking"


class TestNoticeAndBuffer:
    async def test_profile_fields_are_validated_and_returned(self, client, factory):
        mentor = await factory.mentor()
        headers = factory.headers(mentor)
        profile = (await client.get("/api/v1/mentor/profile", headers=headers)).json()
        assert profile["mentor_buffer_minutes"] == 0 and profile["mentor_min_notice_hours"] == 0
        body = {k: profile[k] for k in ("mentor_capacity_weekly", "mentor_max_mentees",
                                        "mentor_specialties", "mentor_availability")}
        for bad in ({"mentor_buffer_minutes": 121}, {"mentor_buffer_minutes": -1},
                    {"mentor_min_notice_hours": 337}):
            response = await client.put("/api/v1/mentor/profile", headers=headers,
                                        json={**body, **bad})
            assert response.status_code == 422, bad
        response = await client.put("/api/v1/mentor/profile", headers=headers, json={
            **body, "mentor_buffer_minutes": 120, "mentor_min_notice_hours": 336})
        assert response.status_code == 200
        assert response.json()["mentor_buffer_minutes"] == 120
        # Omitted: unchanged.
        response = await client.put("/api/v1/mentor/profile", headers=headers, json=body)
        assert response.json()["mentor_min_notice_hours"] == 336

    async def test_min_notice_binds_the_mentee_not_the_mentor(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1, mentor_min_notice_hours=48)
        soon = (datetime.now(UTC) + timedelta(hours=30)).replace(minute=0, second=0,
                                                                 microsecond=0)
        got = starts(await client.get(MENTEE_SLOTS, headers=factory.headers(mentee),
                                      params=window(datetime.now(UTC), days=4)))
        assert got and min(got) >= datetime.now(UTC) + timedelta(hours=48) - timedelta(
            minutes=1)
        response = await mentee_book(client, factory, mentee, soon)
        assert response.status_code == 409 and response.json()["code"] == "notice_too_short"
        mentor_view = starts(await client.get(mentor_slots(mentee),
                                              headers=factory.headers(mentor),
                                              params=window(datetime.now(UTC), days=4)))
        assert soon in mentor_view
        assert (await book(client, factory.headers(mentor), mentee, soon)).status_code == 201

    async def test_buffer_binds_both_routes(self, client, factory):
        mentor, (a, b) = await factory.mentor_with_mentees(2, mentor_buffer_minutes=30)
        at = week_start(3) + timedelta(hours=10)
        assert (await book(client, factory.headers(mentor), a, at)).status_code == 201
        for response in (
            await book(client, factory.headers(mentor), b, at + timedelta(minutes=75)),
            await mentee_book(client, factory, b, at - timedelta(minutes=80)),
        ):
            assert response.status_code == 409 and response.json()["code"] == "double_booking"
            assert "30 minutes" in response.json()["detail"]
        assert (await mentee_book(client, factory, b, at + timedelta(minutes=90))
                ).status_code == 201


    async def test_buffers_are_the_mentors_own_not_the_mentees(self, client, factory):
        """A buffer keeps a mentor's own calendar free around their sessions: the mentee's
        session with another mentor blocks by overlap only, whoever's buffer it is."""
        mentor, (mentee,) = await factory.mentor_with_mentees(
            1, mentor_availability=NINE_TO_FIVE, mentor_buffer_minutes=30)
        other = await factory.mentor(mentor_buffer_minutes=60)
        noon = week_start(3) + timedelta(hours=12)
        await factory.session(other, mentee, starts_at=noon)  # 12:00-13:00
        got = starts(await client.get(MENTEE_SLOTS, headers=factory.headers(mentee),
                                      params=window(noon - timedelta(hours=3), days=1)))
        assert noon - timedelta(hours=1) in got and noon + timedelta(hours=1) in got
        assert (await mentee_book(client, factory, mentee, noon + timedelta(hours=1))
                ).status_code == 201  # back to back after the other mentor's session
        assert (await book(client, factory.headers(mentor), mentee, noon - timedelta(hours=1))
                ).status_code == 201  # and before it

class TestTimeOff:
    async def test_time_off_lists_conflicts_blocks_bookings_and_can_be_removed(
            self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        headers = factory.headers(mentor)
        monday = week_start(3)
        existing = await book(client, headers, mentee, monday + timedelta(days=1, hours=10))
        response = await client.post(TIME_OFF, headers=headers, json={
            "starts_at": monday.isoformat(), "ends_at": (monday + timedelta(days=3)).isoformat(),
            "reason": "Conference"})
        assert response.status_code == 201, response.text
        created = response.json()
        assert [c["session_id"] for c in created["conflicts"]] == [existing.json()["id"]]
        inside = monday + timedelta(days=2, hours=10)
        for attempt in (await book(client, headers, mentee, inside),
                        await book(client, headers, mentee, monday - timedelta(minutes=30)),
                        await mentee_book(client, factory, mentee, inside)):
            assert attempt.status_code == 409
            assert attempt.json()["code"] == "outside_availability"
        got = starts(await client.get(MENTEE_SLOTS, headers=factory.headers(mentee),
                                      params=window(monday, days=4)))
        assert got and all(s >= monday + timedelta(days=3) for s in got)
        listed = (await client.get(TIME_OFF, headers=headers)).json()
        assert [i["id"] for i in listed["items"]] == [created["id"]]
        other = await factory.mentor()
        assert (await client.delete(f"{TIME_OFF}/{created['id']}",
                                    headers=factory.headers(other))).status_code == 404
        assert (await client.get(TIME_OFF, headers=factory.headers(other))).json()["items"] == []
        assert (await client.delete(f"{TIME_OFF}/{created['id']}", headers=headers)
                ).status_code == 204
        assert (await book(client, headers, mentee, inside)).status_code == 201

    async def test_time_off_body_is_validated(self, client, factory):
        mentor = await factory.mentor()
        at = week_start(3)
        for body in ({"starts_at": at.isoformat(), "ends_at": at.isoformat()},
                     {"starts_at": "2027-01-01T10:00:00", "ends_at": at.isoformat()},
                     {"starts_at": at.isoformat()}):
            response = await client.post(TIME_OFF, headers=factory.headers(mentor), json=body)
            assert response.status_code == 422, body
        mentee = await factory.mentee()
        assert (await client.get(TIME_OFF, headers=factory.headers(mentee))).status_code == 403


class TestMenteeChanges:
    async def test_reschedule_and_cancel_with_notice_policy(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        at = week_start(3) + timedelta(hours=10)
        created = (await mentee_book(client, factory, mentee, at)).json()
        url = f"{MENTEE_SESSIONS}/{created['id']}"
        moved = await client.patch(url, headers=factory.headers(mentee), json={
            "starts_at": (at + timedelta(hours=2)).isoformat(), "duration_minutes": 45})
        assert moved.status_code == 200, moved.text
        assert moved.json()["duration_minutes"] == 45 and moved.json()["sequence"] == 1
        cancelled = await client.patch(url, headers=factory.headers(mentee), json={
            "status": "cancelled", "reason": "Exam"})
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        events = await events_of(factory, created["id"])
        assert [e.type for e in events] == ["session.scheduled", "session.rescheduled",
                                            "session.cancelled"]
        assert all(set(e.recipients) == {mentor.id, mentee.id} for e in events)
        again = await client.patch(url, headers=factory.headers(mentee),
                                   json={"status": "cancelled"})
        assert again.status_code == 409 and again.json()["code"] == "invalid_transition"

    async def test_too_late_to_change_inside_the_notice_period(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        soon = await factory.session(mentor, mentee,
                                     starts_at=datetime.now(UTC) + timedelta(hours=20))
        url = f"{MENTEE_SESSIONS}/{soon.id}"
        for body in ({"status": "cancelled"},
                     {"starts_at": (datetime.now(UTC) + timedelta(days=5)).isoformat()}):
            response = await client.patch(url, headers=factory.headers(mentee), json=body)
            assert response.status_code == 409, body
            assert response.json()["code"] == "too_late_to_change"
        # The mentor still may.
        response = await client.patch(f"/api/v1/mentor/sessions/{soon.id}",
                                      headers=factory.headers(mentor),
                                      json={"status": "cancelled"})
        assert response.status_code == 200

    async def test_mentee_may_not_complete_nor_touch_others(self, client, factory):
        mentor, (mentee, other) = await factory.mentor_with_mentees(2)
        row = await factory.session(mentor, other, starts_at=week_start(3))
        url = f"{MENTEE_SESSIONS}/{row.id}"
        response = await client.patch(url, headers=factory.headers(mentee),
                                      json={"status": "cancelled"})
        assert response.status_code == 404
        for body in ({"status": "completed"}, {"status": "cancelled", "starts_at":
                                                week_start(4).isoformat()}, {}):
            response = await client.patch(url, headers=factory.headers(other), json=body)
            assert response.status_code == 422, body


    async def test_far_off_starts_are_422_never_500(self, client, factory):
        """A mentee's booking takes the lock before its time is checked (so `no_mentor`
        comes first); widening year 1 or 9999 by the busy-time margin was an
        OverflowError (500) there. Found by schemathesis (tests/contract/test_fuzz.py)."""
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        row = await factory.session(mentor, mentee, starts_at=week_start(3))
        for at in ("0001-01-01T01:00:00+00:15", "0001-01-01T00:00:00+00:00",
                   "9999-12-31T22:00:00+00:00", "9999-12-31T23:00:00-05:00"):
            for who, method, url, body in (
                (mentee, "POST", MENTEE_SESSIONS, {}),
                (mentee, "PATCH", f"{MENTEE_SESSIONS}/{row.id}", {}),
                (mentor, "POST", "/api/v1/mentor/sessions", {"mentee_id": str(mentee.id)}),
                (mentor, "PATCH", f"/api/v1/mentor/sessions/{row.id}", {}),
            ):
                response = await client.request(method, url, headers=factory.headers(who),
                                                json={**body, "starts_at": at,
                                                      "duration_minutes": 15})
                assert response.status_code == 422, (at, method, url, response.text)
                assert response.json()["code"] == "validation_error"


class TestRaces:
    async def test_mentee_and_mentor_book_the_same_slot_at_once_one_wins(self, client, factory):
        for round_ in range(5):
            mentor, (mentee, other) = await factory.mentor_with_mentees(2)
            at = week_start(3) + timedelta(days=round_ % 5, hours=10)
            responses = await asyncio.gather(
                mentee_book(client, factory, mentee, at),
                book(client, factory.headers(mentor), other, at + timedelta(minutes=15)),
            )
            assert Counter(r.status_code for r in responses) == {201: 1, 409: 1}, \
                [r.text for r in responses]
            (loser,) = [r for r in responses if r.status_code == 409]
            assert loser.json()["code"] == "double_booking"

    async def test_capacity_holds_when_mentees_and_mentor_book_at_once(self, client, factory):
        mentor, mentees = await factory.mentor_with_mentees(8, mentor_capacity_weekly=3)
        monday = week_start(4)
        calls = [mentee_book(client, factory, m, monday + timedelta(days=i % 5, hours=8 + i))
                 for i, m in enumerate(mentees[:5])]
        calls += [book(client, factory.headers(mentor), m,
                       monday + timedelta(days=i % 5, hours=14 + i))
                  for i, m in enumerate(mentees[5:])]
        responses = await asyncio.gather(*calls)
        assert Counter(r.status_code for r in responses) == {201: 3, 409: 5}
        assert {r.json()["code"] for r in responses if r.status_code == 409} \
            == {"capacity_exceeded"}
