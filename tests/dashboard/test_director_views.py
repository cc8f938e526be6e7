"""The director's cockpit of any mentee, the mentee's review feedback, and stored time
zones that are not valid IANA names (they count as UTC in every reader, never a 500)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter

from app.models import MissionReview, MissionSubmission, ReadinessRecord
from app.services.mentors.capacity_checker import check_capacity
from app.services.ops.metrics import refresh_programme_metrics
from tests.relationships.test_director import count_queries
from tests.support.workspace_support import submission, work_item

COCKPIT_TABLES = ("readiness_history", "sessions", "work_items", "flags", "mission_submissions")


def COCKPIT(mentee_id):  # noqa: N802
    return f"/api/v1/director/mentees/{mentee_id}/cockpit"


@pytest.fixture
async def director(factory):
    return factory.headers(await factory.user("director"))


class TestDirectorCockpit:
    async def test_any_mentee_in_the_mentor_cockpits_shape(self, client, factory, director):
        first, (mentee,) = await factory.mentor_with_mentees(1)
        old = await factory.session(first, mentee, status="completed",
                                    starts_at=datetime.now(UTC) - timedelta(days=2))
        second = await factory.mentor()
        await client.post("/api/v1/director/assignments", headers=director, json={
            "mentee_id": str(mentee.id), "mentor_id": str(second.id)})
        upcoming = await factory.session(second, mentee)
        flag = await factory.flag(first, mentee, note="private")

        response = await client.get(COCKPIT(mentee.id), headers=director)
        assert response.status_code == 200, response.text
        body = response.json()
        mentor_view = await client.get(f"/api/v1/mentor/mentees/{mentee.id}/cockpit",
                                       headers=factory.headers(second))
        assert body.keys() == mentor_view.json().keys()
        assert body["assignment"]["mentor_id"] == str(second.id)
        # Sessions with every mentor, flags with their notes.
        assert [s["id"] for s in body["recent_sessions"]] == [str(old.id)]
        assert [s["id"] for s in body["upcoming_sessions"]] == [str(upcoming.id)]
        assert body["flags"][0]["id"] == str(flag.id) and body["flags"][0]["note"] == "private"

    async def test_every_section_in_one_statement(self, app, client, factory, director):
        """One statement reads the whole cockpit (JSON lists built by Postgres): the same
        rules and shapes as the mentor's cockpit, instants rendered as the API renders
        them, ties in a list's order broken by id."""
        now = datetime.now(UTC)
        first, (mentee,) = await factory.mentor_with_mentees(1)
        second = await factory.mentor()
        await client.post("/api/v1/director/assignments", headers=director, json={
            "mentee_id": str(mentee.id), "mentor_id": str(second.id)})
        start = (now - timedelta(days=3)).replace(microsecond=0)
        cancelled = await factory.session(first, mentee, starts_at=start, status="cancelled")
        done = await factory.session(second, mentee, starts_at=start, status="completed")
        upcoming = await factory.session(second, mentee, starts_at=now + timedelta(days=2))
        escalated = await factory.flag(second, mentee, severity="medium",
                                       escalated_at=now - timedelta(hours=1),
                                       created_at=now - timedelta(days=2))
        fresh = await factory.flag(second, mentee, created_at=now - timedelta(days=1))
        resolved = await factory.flag(second, mentee, status="resolved", resolved_at=now,
                                      created_at=now - timedelta(hours=2))
        late = await work_item(factory, mentee, priority="low", due_in=-timedelta(hours=2))
        low = await work_item(factory, mentee, priority="low", due_in=timedelta(hours=3))
        urgent = await work_item(factory, mentee, priority="urgent", due_in=timedelta(hours=9))
        await work_item(factory, mentee, status="done")
        await factory.add(*[ReadinessRecord(mentee_id=mentee.id, score=80 - 20 * i,
                                            previous_score=None if i == 0 else 100 - 20 * i,
                                            recorded_at=now - timedelta(days=3 - i))
                            for i in range(3)])
        submitted = now - timedelta(hours=5)
        subs = [MissionSubmission(id=uuid.uuid4(), mentee_id=mentee.id, mission_id=uuid.uuid4(),
                                  title=f"Mission {i}", submitted_at=submitted)
                for i in range(2)]
        await factory.add(*subs)
        await factory.add(MissionReview(submission_id=subs[0].id, mentee_id=mentee.id,
                                        mentor_id=second.id, decision="approved", score=77))

        with count_queries(app) as statements:
            response = await client.get(COCKPIT(mentee.id), headers=director)
        assert response.status_code == 200, response.text
        assert len([s for s in statements if any(t in s for t in COCKPIT_TABLES)]) == 1
        body = response.json()
        assert [s["id"] for s in body["recent_sessions"]] == [
            str(s.id) for s in sorted((cancelled, done), key=lambda s: s.id, reverse=True)]
        assert [s["id"] for s in body["upcoming_sessions"]] == [str(upcoming.id)]
        [shown] = [s for s in body["recent_sessions"] if s["id"] == str(done.id)]
        for field in ("starts_at", "ends_at", "created_at", "updated_at"):
            assert shown[field] == TypeAdapter(datetime).dump_json(
                getattr(done, field)).decode().strip('"'), field
        assert [(f["id"], f["status"]) for f in body["flags"]] == [
            (str(fresh.id), "open"), (str(escalated.id), "escalated"),
            (str(resolved.id), "resolved")]
        items = body["open_work_items"]
        assert [i["id"] for i in items] == [str(late.id), str(urgent.id), str(low.id)]
        assert [i["overdue"] for i in items] == [True, False, False]
        assert items[0]["sla_remaining_minutes"] in (-120, -121)
        assert {i["mentee_name"] for i in items} == {mentee.name}
        assert [(p["score"], p["previous_score"]) for p in body["readiness_trend"]] == [
            (80, None), (60, 80), (40, 60)]
        assert body["risk"]["reasons"] == ["open_flag", "readiness_drop", "overdue_work"]
        assert [(s["id"], s["decision"], s["review_score"])
                for s in body["recent_submissions"]] == sorted(
            [(str(subs[0].id), "approved", 77), (str(subs[1].id), None, None)], reverse=True)

        mentor_view = (await client.get(f"/api/v1/mentor/mentees/{mentee.id}/cockpit",
                                        headers=factory.headers(second))).json()
        for section in ("profile", "assignment", "risk", "readiness_trend", "flags",
                        "recent_submissions"):
            assert body[section] == mentor_view[section], section
        assert [i["id"] for i in mentor_view["open_work_items"]] == [i["id"] for i in items]
        assert [s["id"] for s in mentor_view["recent_sessions"]] == [str(done.id)]

    async def test_a_waiting_mentee_has_no_assignment(self, client, factory, director):
        mentee = await factory.mentee()
        response = await client.get(COCKPIT(mentee.id), headers=director)
        assert response.status_code == 200
        assert response.json()["assignment"] is None

    async def test_not_a_mentee_is_404_and_roles(self, client, factory, director):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        for user_id in (mentor.id, uuid.uuid4()):
            response = await client.get(COCKPIT(user_id), headers=director)
            assert response.status_code == 404
        for user in (mentor, mentee):
            assert (await client.get(COCKPIT(mentee.id), headers=factory.headers(user))
                    ).status_code == 403


class TestMenteeReviews:
    async def test_decided_reviews_newest_first(self, client, factory):
        mentor, (mentee, other) = await factory.mentor_with_mentees(2)
        rows = []
        for i, who in enumerate((mentee, mentee, other, mentee)):
            sub, _ = await submission(factory, who, with_item=False, title=f"Mission {i}")
            rows.append(sub)
        now = datetime.now(UTC)
        await factory.add(
            MissionReview(submission_id=rows[0].id, mentee_id=mentee.id, mentor_id=mentor.id,
                          decision="approved", feedback="Great", score=90,
                          created_at=now - timedelta(hours=2)),
            MissionReview(submission_id=rows[1].id, mentee_id=mentee.id, mentor_id=mentor.id,
                          decision="changes_requested", feedback="Add tests",
                          created_at=now - timedelta(hours=1)),
            MissionReview(submission_id=rows[2].id, mentee_id=other.id, mentor_id=mentor.id,
                          decision="rejected", feedback="not yours"),
        )  # rows[3] is pending: not listed
        response = await client.get("/api/v1/mentee/reviews", headers=factory.headers(mentee),
                                    params={"limit": 1})
        assert response.status_code == 200, response.text
        [latest] = response.json()["items"]
        assert latest == {"submission_id": str(rows[1].id), "mission_id": str(rows[1].mission_id),
                          "title": "Mission 1", "decision": "changes_requested",
                          "feedback": "Add tests", "score": None,
                          "reviewed_at": latest["reviewed_at"]}
        rest = await client.get("/api/v1/mentee/reviews", headers=factory.headers(mentee),
                                params={"cursor": response.json()["next_cursor"]})
        assert [r["submission_id"] for r in rest.json()["items"]] == [str(rows[0].id)]
        assert rest.json()["next_cursor"] is None

    async def test_only_mentees(self, client, factory):
        mentor = await factory.mentor()
        response = await client.get("/api/v1/mentee/reviews", headers=factory.headers(mentor))
        assert response.status_code == 403


class TestBadStoredTimeZones:
    @pytest.mark.parametrize("zone", ["Mars/Base", "", "../../etc/passwd", "UTC+3"])
    async def test_every_reader_degrades_to_utc(self, client, factory, system_db, director,
                                                zone):
        availability = {"timezone": zone, "windows": [
            {"weekday": d, "start": "00:00", "end": "24:00"} for d in range(7)]}
        mentor, (mentee,) = await factory.mentor_with_mentees(
            1, timezone=zone, mentor_availability=availability)
        await factory.session(mentor, mentee)
        mentors = await client.get("/api/v1/director/mentors", headers=director,
                                   params={"limit": 200})
        assert mentors.status_code == 200, mentors.text
        assert str(mentor.id) in {m["mentor_id"] for m in mentors.json()["items"]}
        for sort in ("load", "-load"):
            assert (await client.get("/api/v1/director/mentors", headers=director,
                                     params={"sort": sort})).status_code == 200
        headers = factory.headers(mentor)
        for path in ("/api/v1/mentor/dashboard", "/api/v1/mentor/profile",
                     "/api/v1/mentor/mentees", f"/api/v1/mentor/mentees/{mentee.id}/cockpit"):
            response = await client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.text)
        dashboard = await client.get("/api/v1/mentor/dashboard", headers=headers)
        assert dashboard.json()["capacity"]["weekly_slots_used"] == 1
        assert (await client.get(f"/api/v1/director/mentees/{mentee.id}/cockpit",
                                 headers=director)).status_code == 200
        # Booking: the windows cannot be read in an unknown zone -> a 409, never a 500.
        starts = (datetime.now(UTC) + timedelta(days=4)).replace(minute=0, second=0,
                                                                 microsecond=0)
        booked = await client.post("/api/v1/mentor/sessions", headers=headers, json={
            "mentee_id": str(mentee.id), "starts_at": starts.isoformat(),
            "duration_minutes": 30})
        assert booked.status_code in (201, 409), booked.text
        # The capacity checker (every mentor, then this one) and the metrics still run.
        async with system_db.transaction(None) as session:
            await check_capacity(session)
            await check_capacity(session, mentor_id=mentor.id)
            await refresh_programme_metrics(session, now=datetime.now(UTC))
