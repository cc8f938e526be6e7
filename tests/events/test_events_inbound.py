"""POST /api/v1/events and PUT /api/v1/users/{id}: each inbound type's effect, exactly-once
under repeats and concurrency, all-or-nothing batches and the unhappy paths."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from arq import Worker
from sqlalchemy import select, text

from app.core.auth import Principal
from app.models import WorkItem
from app.workers import worker_options
from tests.support.events_helpers import event, mission_submitted, rows, scalar, service_headers

URL = "/api/v1/events"


async def post(client, factory, body, headers=None):
    return await client.post(URL, json=body, headers=headers or (await service_headers(factory)))


async def outbox_for_item(system_db, item_id) -> list:
    return await rows(system_db, "select type, recipients, refresh_priority from outbox_events "
                                 "where data->>'item_id' = :i", i=str(item_id))


class TestMissionSubmitted:
    async def test_stores_submission_and_high_review_item_due_48h_after_submission(
        self, client, factory, system_db
    ):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        submitted = datetime.now(UTC) - timedelta(hours=2)
        body = mission_submitted(mentee.id, submitted_at=submitted)
        response = await post(client, factory, body)
        assert response.status_code == 202, response.text
        assert response.json() == {"accepted": 1, "duplicates": 0, "duplicate_ids": []}

        submission_id = body["data"]["submission_id"]
        sub = (await rows(system_db, "select mentee_id, status, title from mission_submissions "
                                     "where id = :i", i=submission_id))[0]
        assert (sub.mentee_id, sub.status) == (mentee.id, "pending")
        item = (await rows(system_db, "select * from work_items where source_key = :k",
                           k=f"mission.submitted:{submission_id}"))[0]
        assert (item.kind, item.priority, item.status, item.mentee_id) == (
            "mission_review", "high", "open", mentee.id)
        assert abs(item.due_at - (submitted + timedelta(hours=48))) < timedelta(seconds=1)
        [(type_, recipients, priority)] = await outbox_for_item(system_db, item.id)
        assert (type_, recipients, priority) == ("workqueue.item_created", [mentor.id], "normal")
        assert await scalar(system_db, "select count(*) from inbox_events where id = :i",
                            i=body["id"]) == 1

    async def test_same_event_100_times_some_concurrently_applies_once(
        self, client, factory, system_db
    ):
        _, (mentee,) = await factory.mentor_with_mentees(1)
        body = mission_submitted(mentee.id)
        headers = (await service_headers(factory))
        statuses, accepted = [], 0
        # 10 sequential, then 3 waves of 30 concurrent requests (each its own transaction).
        for _ in range(10):
            response = await post(client, factory, body, headers)
            statuses.append(response.status_code)
            accepted += response.json()["accepted"]
        for _ in range(3):
            responses = await asyncio.gather(
                *(post(client, factory, body, headers) for _ in range(30)))
            statuses += [r.status_code for r in responses]
            accepted += sum(r.json()["accepted"] for r in responses)
        assert statuses == [202] * 100
        assert accepted == 1

        submission_id = body["data"]["submission_id"]
        assert await scalar(system_db, "select count(*) from mission_submissions where id = :i",
                            i=submission_id) == 1
        items = await rows(system_db, "select id from work_items where source_key = :k",
                           k=f"mission.submitted:{submission_id}")
        assert len(items) == 1
        assert len(await outbox_for_item(system_db, items[0].id)) == 1

    async def test_concurrent_first_deliveries_of_one_event_apply_once(
        self, client, factory, system_db
    ):
        """No request has seen the id before: all race on the inbox insert at once."""
        _, (mentee,) = await factory.mentor_with_mentees(1)
        body = mission_submitted(mentee.id)
        responses = await asyncio.gather(*(post(client, factory, body) for _ in range(20)))
        assert [r.status_code for r in responses] == [202] * 20
        assert sum(r.json()["accepted"] for r in responses) == 1
        assert await scalar(system_db, "select count(*) from work_items where source_key = :k",
                            k=f"mission.submitted:{body['data']['submission_id']}") == 1

    async def test_another_event_for_the_same_submission_creates_nothing_more(
        self, client, factory, system_db
    ):
        _, (mentee,) = await factory.mentor_with_mentees(1)
        first = mission_submitted(mentee.id)
        again = {**first, "id": str(uuid.uuid4())}
        assert (await post(client, factory, first)).status_code == 202
        response = await post(client, factory, again)
        assert response.status_code == 202 and response.json()["accepted"] == 1
        assert await scalar(system_db, "select count(*) from work_items where source_key = :k",
                            k=f"mission.submitted:{first['data']['submission_id']}") == 1

    async def test_a_replayed_submission_keeps_its_stored_row(self, client, factory, system_db):
        """A submission stored without its item (e.g. by an earlier version, or items
        purged): a replay naming another mentee creates the item for the stored mentee (and
        addresses its event to that mentee's mentor); a decided one gets no item."""
        mentor, (mentee, other) = await factory.mentor_with_mentees(2)
        pending, decided = uuid.uuid4(), uuid.uuid4()
        async with system_db.transaction(None) as session:
            for submission_id, status in ((pending, "pending"), (decided, "approved")):
                await session.execute(text(
                    "insert into mission_submissions (id, mentee_id, mission_id, title, "
                    "submitted_at, status) values (:i, :m, :mi, 'Stored', now(), :s)"),
                    {"i": submission_id, "m": mentee.id, "mi": uuid.uuid4(), "s": status})
        response = await post(client, factory, {"events": [
            mission_submitted(other.id, submission_id=pending),
            mission_submitted(other.id, submission_id=decided)]})
        assert response.status_code == 202 and response.json()["accepted"] == 2
        [item] = await rows(system_db, "select id, mentee_id from work_items "
                                       "where source_key = any(:k)",
                            k=[f"mission.submitted:{pending}", f"mission.submitted:{decided}"])
        assert item.mentee_id == mentee.id
        [created] = await rows(system_db, "select data, recipients from outbox_events "
                                          "where data->>'item_id' = :i", i=str(item.id))
        assert created.data["mentee_id"] == str(mentee.id)
        assert created.recipients == [mentor.id]

    async def test_item_for_unassigned_mentee_lands_in_the_queue_of_the_later_mentor(
        self, client, factory, system_db, app_db
    ):
        mentee = await factory.mentee()
        body = mission_submitted(mentee.id)
        assert (await post(client, factory, body)).status_code == 202
        key = f"mission.submitted:{body['data']['submission_id']}"
        item_id = await scalar(system_db, "select id from work_items where source_key = :k", k=key)
        [(_, recipients, _)] = await outbox_for_item(system_db, item_id)
        assert recipients == []  # nobody's stream yet, but the item is kept

        mentor = await factory.mentor()
        async with app_db.transaction(Principal(mentor.id, "mentor")) as session:
            assert await session.scalar(select(WorkItem.id).where(WorkItem.id == item_id)) is None
        await factory.assign(mentor, mentee)
        async with app_db.transaction(Principal(mentor.id, "mentor")) as session:
            assert await session.scalar(
                select(WorkItem.id).where(WorkItem.id == item_id)) == item_id

    async def test_future_submitted_at_is_capped_at_now(self, client, factory, system_db):
        _, (mentee,) = await factory.mentor_with_mentees(1)
        body = mission_submitted(mentee.id, submitted_at=datetime.now(UTC) + timedelta(days=3))
        assert (await post(client, factory, body)).status_code == 202
        due = await scalar(system_db, "select due_at from work_items where source_key = :k",
                           k=f"mission.submitted:{body['data']['submission_id']}")
        assert due < datetime.now(UTC) + timedelta(hours=48, minutes=1)


class TestOtherInboundTypes:
    async def test_habit_streak_broken_records_signal_and_risk_assessment(
        self, client, factory, system_db
    ):
        _, (mentee,) = await factory.mentor_with_mentees(1)
        body = event("habit.streak_broken",
                     {"mentee_id": str(mentee.id), "habit": "daily coding", "streak_days": 12})
        assert (await post(client, factory, body)).status_code == 202
        [signal] = await rows(system_db, "select kind, data from mentee_signals "
                                         "where event_id = :e", e=body["id"])
        assert signal.kind == "habit_streak_broken"
        assert signal.data == {"habit": "daily coding", "streak_days": 12}
        [item] = await rows(system_db, "select kind, priority, due_at, created_at "
                                       "from work_items where source_key = :k",
                            k=f"habit.streak_broken:{body['id']}")
        assert (item.kind, item.priority) == ("risk_assessment", "normal")
        assert item.due_at - item.created_at == timedelta(hours=72)

    @pytest.mark.parametrize(("tier", "gets_item"), [("7", True), ("3", False), (None, False)])
    async def test_goal_overdue_item_only_for_tiers_with_goal_feedback(
        self, client, factory, system_db, tier, gets_item
    ):
        mentor = await factory.mentor()
        mentee = await factory.mentee(tier=tier)
        await factory.assign(mentor, mentee)
        goal_id = uuid.uuid4()
        body = event("goal.overdue", {"mentee_id": str(mentee.id), "goal_id": str(goal_id),
                                      "title": "Finish CV",
                                      "due_at": datetime.now(UTC).isoformat()})
        assert (await post(client, factory, body)).status_code == 202
        assert await scalar(system_db, "select kind from mentee_signals where event_id = :e",
                            e=body["id"]) == "goal_overdue"
        items = await rows(system_db, "select kind, priority, due_at, created_at "
                                      "from work_items where source_key = :k",
                           k=f"goal.overdue:{goal_id}")
        assert len(items) == int(gets_item)
        if gets_item:
            assert (items[0].kind, items[0].priority) == ("goal_feedback", "normal")
            assert items[0].due_at - items[0].created_at == timedelta(hours=168)

    async def test_readiness_updated_builds_the_trend(self, client, factory, system_db):
        _, (mentee,) = await factory.mentor_with_mentees(1)
        first = event("readiness.updated", {"mentee_id": str(mentee.id), "score": 70,
                                            "previous_score": 65},
                      occurred_at=datetime.now(UTC) - timedelta(days=1))
        second = event("readiness.updated", {"mentee_id": str(mentee.id), "score": 55})
        response = await post(client, factory, {"events": [first, second]})
        assert response.status_code == 202 and response.json()["accepted"] == 2
        trend = await rows(system_db, "select score, previous_score from readiness_history "
                                      "where mentee_id = :m order by recorded_at", m=mentee.id)
        # The second event omitted previous_score: taken from the last record.
        assert [(r.score, r.previous_score) for r in trend] == [(70, 65), (55, 70)]

    async def test_user_upserted_creates_then_updates_only_what_is_sent(
        self, client, factory, system_db
    ):
        user_id = uuid.uuid4()
        data = {"id": str(user_id), "email": f"m{user_id.hex[:8]}@example.com", "name": "Ada",
                "role": "mentor", "timezone": "Europe/London", "tier": "7",
                "interests": ["python"], "mentor_capacity_weekly": 8, "mentor_max_mentees": 12,
                "mentor_specialties": ["backend"],
                "mentor_availability": {"timezone": "Europe/London", "windows": [
                    {"weekday": 0, "start": "09:00", "end": "12:00"}]}}
        assert (await post(client, factory, event("user.upserted", data))).status_code == 202
        user = (await rows(system_db, "select * from users where id = :i", i=user_id))[0]
        assert (user.name, user.is_mentor, user.mentor_capacity_weekly, user.timezone) == (
            "Ada", True, 8, "Europe/London")
        assert user.mentor_availability["windows"][0]["start"] == "09:00"

        # Same content under a new event id: nothing changes, not even updated_at.
        assert (await post(client, factory, event("user.upserted", data))).status_code == 202
        assert await scalar(system_db, "select updated_at from users where id = :i",
                            i=user_id) == user.updated_at

        renamed = {"id": str(user_id), "email": data["email"], "name": "Ada L.", "role": "mentor"}
        assert (await post(client, factory, event("user.upserted", renamed))).status_code == 202
        after = (await rows(system_db, "select * from users where id = :i", i=user_id))[0]
        assert after.name == "Ada L."
        assert after.mentor_capacity_weekly == 8 and after.mentor_availability == \
            user.mentor_availability  # not sent: kept

    async def test_user_upserted_then_mission_in_the_same_batch(self, client, factory, system_db):
        mentee_id = uuid.uuid4()
        batch = {"events": [
            event("user.upserted", {"id": str(mentee_id), "email": f"{mentee_id}@example.com",
                                    "name": "New Mentee", "role": "mentee"}),
            mission_submitted(mentee_id),
        ]}
        response = await post(client, factory, batch)
        assert response.status_code == 202, response.text
        assert await scalar(system_db, "select count(*) from work_items where mentee_id = :m",
                            m=mentee_id) == 1


class TestBatches:
    async def test_duplicate_ids_inside_a_batch_apply_once(self, client, factory, system_db):
        _, (mentee,) = await factory.mentor_with_mentees(1)
        one = mission_submitted(mentee.id)
        response = await post(client, factory, {"events": [one, one, mission_submitted(mentee.id)]})
        assert response.status_code == 202
        assert response.json()["accepted"] == 2
        assert response.json()["duplicate_ids"] == [one["id"]]

    async def test_a_batch_of_500_is_accepted(self, client, factory, system_db):
        _, (mentee,) = await factory.mentor_with_mentees(1)
        batch = [mission_submitted(mentee.id) for _ in range(500)]
        response = await post(client, factory, {"events": batch})
        assert response.status_code == 202 and response.json()["accepted"] == 500
        assert await scalar(system_db, "select count(*) from work_items where mentee_id = :m",
                            m=mentee.id) == 500

    async def test_batch_over_500_is_422(self, client, factory, system_db):
        _, (mentee,) = await factory.mentor_with_mentees(1)
        batch = [mission_submitted(mentee.id) for _ in range(501)]
        response = await post(client, factory, {"events": batch})
        assert response.status_code == 422
        assert response.json()["errors"][0]["loc"] == ["body", "events"]
        assert await scalar(system_db, "select count(*) from work_items where mentee_id = :m",
                            m=mentee.id) == 0

    async def test_unknown_type_is_422_with_the_index_and_nothing_is_applied(
        self, client, factory, system_db
    ):
        _, (mentee,) = await factory.mentor_with_mentees(1)
        good = mission_submitted(mentee.id)
        batch = {"events": [good, mission_submitted(mentee.id),
                            event("mission.exploded", {"mentee_id": str(mentee.id)})]}
        response = await post(client, factory, batch)
        assert response.status_code == 422
        body = response.json()
        assert response.headers["content-type"].startswith("application/problem+json")
        assert body["code"] == "validation_error"
        assert body["errors"][0]["loc"][:3] == ["body", "events", 2]
        assert body["errors"][0]["type"] == "union_tag_invalid"
        assert await scalar(system_db, "select count(*) from inbox_events where id = :i",
                            i=good["id"]) == 0

    async def test_bad_payload_is_422_with_the_index_and_field(self, client, factory):
        _, (mentee,) = await factory.mentor_with_mentees(1)
        bad = mission_submitted(mentee.id)
        bad["data"]["submitted_at"] = "yesterday"
        response = await post(client, factory, {"events": [mission_submitted(mentee.id), bad]})
        assert response.status_code == 422
        [error] = response.json()["errors"]
        assert error["loc"] == ["body", "events", 1, "mission.submitted", "data", "submitted_at"]

    @pytest.mark.parametrize(("path", "value"), [
        (("data", "title"), "nul\x00byte"),
        (("data", "title"), ""),
        (("data", "submitted_at"), "0001-01-01T00:00:00+01:00"),
        (("occurred_at",), "9999-12-31T23:59:59-05:00"),
        (("data", "mentee_id"), "not-a-uuid"),
        (("data", "url"), "ftp://files.example.com/x"),
        (("source",), "x" * 129),
        (("id",), None),
    ])
    async def test_bad_values_are_422_never_500(self, client, factory, path, value):
        _, (mentee,) = await factory.mentor_with_mentees(1)
        body = mission_submitted(mentee.id)
        target = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        response = await post(client, factory, body)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"][:3] == ["body", "events", 0]

    async def test_nan_score_is_422(self, client, factory):
        body = event("readiness.updated", {"mentee_id": str(uuid.uuid4()), "score": 1})
        raw = json.dumps(body).replace('"score": 1', '"score": NaN')
        response = await client.post(URL, content=raw, headers={
            **(await service_headers(factory)), "content-type": "application/json"})
        assert response.status_code == 422

    async def test_single_bad_event_reports_index_0(self, client, factory):
        body = event("readiness.updated", {"mentee_id": str(uuid.uuid4()), "score": 140})
        response = await post(client, factory, body)
        assert response.status_code == 422
        assert response.json()["errors"][0]["loc"][:3] == ["body", "events", 0]

    async def test_naive_timestamp_is_422(self, client, factory):
        body = mission_submitted(uuid.uuid4())
        body["occurred_at"] = "2026-01-01T10:00:00"
        assert (await post(client, factory, body)).status_code == 422

    async def test_unknown_mentee_refuses_the_whole_batch_with_the_index(
        self, client, factory, system_db
    ):
        _, (mentee,) = await factory.mentor_with_mentees(1)
        good = mission_submitted(mentee.id)
        response = await post(client, factory,
                              {"events": [good, mission_submitted(uuid.uuid4())]})
        assert response.status_code == 422
        body = response.json()
        assert body["code"] == "unknown_mentee"
        assert body["errors"][0]["loc"] == ["body", "events", 1, "data", "mentee_id"]
        assert await scalar(system_db, "select count(*) from mission_submissions where id = :i",
                            i=good["data"]["submission_id"]) == 0
        # Nothing was recorded, so the corrected batch applies in full.
        response = await post(client, factory, {"events": [good]})
        assert response.json()["accepted"] == 1

    async def test_a_mentor_id_is_not_a_mentee(self, client, factory):
        mentor = await factory.mentor()
        response = await post(client, factory, mission_submitted(mentor.id))
        assert response.status_code == 422 and response.json()["code"] == "unknown_mentee"

    @pytest.mark.parametrize("role", ["mentor", "mentee", "director"])
    async def test_wrong_role_is_403(self, client, factory, role):
        response = await post(client, factory, mission_submitted(uuid.uuid4()),
                              headers=(await factory.role_headers(role)))
        assert response.status_code == 403

    async def test_admin_may_post_events(self, client, factory):
        _, (mentee,) = await factory.mentor_with_mentees(1)
        response = await post(client, factory, mission_submitted(mentee.id),
                              headers=(await factory.role_headers("admin")))
        assert response.status_code == 202

    async def test_no_token_is_401(self, client):
        assert (await client.post(URL, json=mission_submitted(uuid.uuid4()))).status_code == 401


class TestPutUser:
    def body(self, **fields):
        return {"email": f"u{uuid.uuid4().hex[:8]}@example.com", "name": "Grace",
                "role": "mentee", "timezone": "America/New_York", "tier": "7",
                "interests": ["design"], **fields}

    async def test_creates_201_then_updates_200(self, client, factory):
        user_id = uuid.uuid4()
        headers = (await service_headers(factory))
        body = self.body()
        created = await client.put(f"/api/v1/users/{user_id}", json=body, headers=headers)
        assert created.status_code == 201, created.text
        assert created.json()["id"] == str(user_id)
        assert created.json()["is_mentor"] is False
        again = await client.put(f"/api/v1/users/{user_id}", json=body, headers=headers)
        assert again.status_code == 200
        assert again.json()["updated_at"] == created.json()["updated_at"]
        promoted = await client.put(f"/api/v1/users/{user_id}", headers=headers,
                                    json={**body, "role": "mentor", "mentor_max_mentees": 5})
        assert promoted.status_code == 200
        assert (promoted.json()["is_mentor"], promoted.json()["mentor_max_mentees"]) == (True, 5)

    @pytest.mark.parametrize("fields", [
        {"timezone": "Mars/Olympus"},
        {"timezone": "../etc/passwd"},
        {"mentor_availability": {"timezone": "UTC",
                                 "windows": [{"weekday": 7, "start": "09:00", "end": "10:00"}]}},
        {"mentor_availability": {"timezone": "UTC",
                                 "windows": [{"weekday": 1, "start": "12:00", "end": "09:00"}]}},
        {"mentor_availability": {"timezone": "UTC",
                                 "windows": [{"weekday": 1, "start": "9am", "end": "10:00"}]}},
        {"mentor_availability": {"timezone": "Nowhere/City", "windows": []}},
        {"role": "superuser"},
        {"email": "not-an-email"},
    ])
    async def test_invalid_fields_are_422(self, client, factory, fields):
        response = await client.put(f"/api/v1/users/{uuid.uuid4()}", json=self.body(**fields),
                                    headers=(await service_headers(factory)))
        assert response.status_code == 422, response.text

    async def test_another_users_email_is_409(self, client, factory):
        other = await factory.mentee(email=f"Taken{uuid.uuid4().hex[:8]}@example.com")
        response = await client.put(f"/api/v1/users/{uuid.uuid4()}",
                                    json=self.body(email=other.email.upper()),
                                    headers=(await service_headers(factory)))
        assert response.status_code == 409 and response.json()["code"] == "email_taken"

    async def test_mentor_may_not_provision_users(self, client, factory):
        mentor = await factory.mentor()
        response = await client.put(f"/api/v1/users/{uuid.uuid4()}", json=self.body(),
                                    headers=factory.headers(mentor))
        assert response.status_code == 403


@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_arq_job_creates_the_review_item_once(settings, factory, system_db, redis):
    """The replay/backfill job calls the same service function as the route."""
    from app.core.jobqueue import arq_client

    _, (mentee,) = await factory.mentor_with_mentees(1)
    data = mission_submitted(mentee.id)["data"]
    pool = arq_client(settings)
    try:
        replay = await pool.enqueue_job("create_mission_review_queue_item", data=data)
        worker = Worker(**{**worker_options(settings, loops=False), "cron_jobs": []},
                        burst=True, poll_delay=0.05)
        await worker.main()
        await worker.close()
        item_id = await replay.result(timeout=5)
        assert item_id is not None

        backfill = await pool.enqueue_job("create_mission_review_queue_item",
                                          submission_id=data["submission_id"])
        worker = Worker(**{**worker_options(settings, loops=False), "cron_jobs": []},
                        burst=True, poll_delay=0.05)
        await worker.main()
        assert await backfill.result(timeout=5) is None  # exists already: nothing new
        await worker.close()
    finally:
        await pool.aclose()
    assert await scalar(system_db, "select count(*) from work_items where source_key = :k",
                        k=f"mission.submitted:{data['submission_id']}") == 1


async def test_submission_from_an_event_is_reviewed_and_its_item_completed_once(
    client, factory, system_db
):
    """The path other areas rely on: ingestion's item key is what the review completes, and
    a replay of the event after the review creates nothing."""
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    body = mission_submitted(mentee.id)
    submission_id = body["data"]["submission_id"]
    assert (await post(client, factory, body)).status_code == 202
    review = await client.post(f"/api/v1/mentor/missions/{submission_id}/review",
                               json={"decision": "approved", "feedback": "Nice", "score": 90},
                               headers=factory.headers(mentor))
    assert review.status_code in (200, 201), review.text
    [item] = await rows(system_db, "select status from work_items where source_key = :k",
                        k=f"mission.submitted:{submission_id}")
    assert item.status == "done"

    replay = {**body, "id": str(uuid.uuid4())}  # same submission, new event id
    assert (await post(client, factory, replay)).json()["accepted"] == 1
    [item] = await rows(system_db, "select status from work_items where source_key = :k",
                        k=f"mission.submitted:{submission_id}")
    assert item.status == "done"
    assert await scalar(system_db, "select status from mission_submissions where id = :i",
                        i=submission_id) == "approved"
